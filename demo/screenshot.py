"""Drive the app in headless Chromium through one whole edit and save a screenshot of each tab.

    python demo/screenshot.py --out docs/screenshots

Needs Debian's chromium (/usr/bin/chromium) and the playwright Python package (never `playwright install`).
The same steps are the browser test (tests/test_browser.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def open_page(pw, url: str, width: int = 1400, height: int = 1000):
    browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": width, "height": height})
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("http://127.0.0.1", "data:", "blob:"))
               else r.abort())
    page.goto(url)
    page.wait_for_selector("button:has-text('Generate')", timeout=60_000)
    return browser, page


def current_src(page) -> str:
    img = page.locator("[data-testid='image'] img, .image-container img").first
    return img.get_attribute("src") or ""


def wait_new_image(page, old: str, label: str = "Current image", timeout: float = 120_000) -> str:
    sel = f"div[id] >> text={label}"
    page.wait_for_function("""([label, old]) => {
        const blocks = [...document.querySelectorAll('.block')].filter(b => b.innerText.includes(label));
        for (const b of blocks) { const i = b.querySelector('img'); if (i && i.src && i.src !== old) return true; }
        return false; }""", arg=[label, old], timeout=timeout)
    return image_src(page, label)


def image_src(page, label: str) -> str:
    return page.evaluate("""(label) => {
        const blocks = [...document.querySelectorAll('.block')].filter(b => b.innerText.includes(label));
        for (const b of blocks) { const i = b.querySelector('img'); if (i && i.src) return i.src; }
        return ''; }""", label)


def paint_stroke(page, rgb=(0, 200, 120), y_frac: float = 0.72, x_from: float = 0.38, x_to: float = 0.62) -> None:
    """Pick the palette colour ``rgb`` and draw a horizontal stroke across the sketch pad (default: "mouth" green
    across the lower face)."""
    canvas = page.locator("canvas").first
    box = canvas.bounding_box()
    page.get_by_label("Color").first.click()
    page.locator(f"button.color[style*='rgb({rgb[0]}, {rgb[1]}, {rgb[2]})']").first.click()
    y = box["y"] + box["height"] * y_frac
    page.mouse.move(box["x"] + box["width"] * x_from, y)
    page.mouse.down()
    for k in range(1, 11):
        page.mouse.move(box["x"] + box["width"] * (x_from + (x_to - x_from) * k / 10), y, steps=2)
    page.mouse.up()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs/screenshots")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    import app

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    demo = app.build_ui()
    demo.queue()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    try:
        with sync_playwright() as pw:
            browser, page = open_page(pw, demo.local_url)
            page.get_by_label("Seed").fill(str(args.seed))
            page.get_by_role("button", name="Generate").click()
            wait_new_image(page, "")
            page.wait_for_timeout(500)
            page.screenshot(path=str(out / "image_tab.png"), full_page=True)
            for tab in ("Edit", "Vectors", "History", "Annotate"):
                page.get_by_role("tab", name=tab).click()
                page.wait_for_timeout(700)
                page.screenshot(path=str(out / f"{tab.lower()}_tab.png"), full_page=True)
            browser.close()
        print(f"wrote screenshots to {out}")
    finally:
        demo.close()


if __name__ == "__main__":
    main()
