"""Drive the app in headless Chromium through one whole session and save a screenshot of each tab: sample with
the segmentation overlay, a "wider mouth" stroke (the lips' colour) applied and saved as a vector, the smile slider
moved with the preview grid open, the history, an image added for annotation, a wide photo uploaded, cropped and
embedded, and a real photo (scikit-image's astronaut) cut as an aligned face, embedded, smiled with the starter
vector and handed back to the photo (the region it changes shown over it).

    python -m demo.screenshot --out docs/screenshots
    python -m demo.screenshot --out docs/screenshots/kit --first-only --model my-kit/

Needs Debian's chromium (/usr/bin/chromium) and the playwright Python package (never `playwright install`).
The same steps are the browser test (tests/test_browser.py).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import app
from demo.session import Session
from editgan_core.toyfaces import render_seed

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def open_page(pw, url: str, width: int = 1400, height: int = 1000):
    browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": width, "height": height})
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("http://127.0.0.1", "data:", "blob:"))
               else r.abort())
    page.goto(url)
    page.wait_for_selector("button:has-text('Generate')", timeout=60_000)
    page.wait_for_selector("text=/step 0: sample seed/", timeout=120_000)    # the first screen shows a sample
    wait_new_image(page, "")
    return browser, page


def wait_new_image(page, old: str, label: str = "Current image", timeout: float = 120_000) -> str:
    page.wait_for_function("""([label, old]) => {
        const blocks = [...document.querySelectorAll('.block')].filter(b => b.innerText.includes(label));
        for (const b of blocks) {
            const i = b.querySelector('img');
            if (i && i.src && i.src !== old && i.complete) return true;
        }
        return false; }""", arg=[label, old], timeout=timeout)
    return image_src(page, label)


def image_src(page, label: str) -> str:
    return page.evaluate("""(label) => {
        const blocks = [...document.querySelectorAll('.block')].filter(b => b.innerText.includes(label));
        for (const b of blocks) { const i = b.querySelector('img'); if (i && i.src) return i.src; }
        return ''; }""", label)


def move_smile_slider(page, presses: int = 30) -> None:
    """On the Vectors tab, move the smile slider ``presses`` steps right (+1.5 at 30) and wait for the new image."""
    page.get_by_role("tab", name="Vectors").click()
    slider = page.locator(".block", has_text="smile (skin").locator("input[type=range]").first
    slider.focus()
    before = image_src(page, "Current image")
    for _ in range(presses):
        page.keyboard.press("ArrowRight")
    wait_new_image(page, before)


def paint_stroke(page, rgb=(0, 200, 120), y_frac: float = 0.72, x_from: float = 0.38, x_to: float = 0.62) -> None:
    """Pick the palette colour ``rgb`` and draw a horizontal stroke across the sketch pad (default: "mouth" green
    across the lower face)."""
    canvas = page.locator("canvas").filter(visible=True).first       # the sketch pad of the open tab
    box = canvas.bounding_box()
    page.get_by_label("Color").filter(visible=True).first.click()
    page.locator(f"button.color[style*='rgb({rgb[0]}, {rgb[1]}, {rgb[2]})']").filter(visible=True).first.click()
    y = box["y"] + box["height"] * y_frac
    page.mouse.move(box["x"] + box["width"] * x_from, y)
    page.mouse.down()
    for k in range(1, 11):
        page.mouse.move(box["x"] + box["width"] * (x_from + (x_to - x_from) * k / 10), y, steps=2)
    page.mouse.up()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs/screenshots")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--model", default=None, help="open the page on this model (as app.py --model)")
    p.add_argument("--first-only", action="store_true", help="only the first screen (as 'first_screen.png')")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright  # here: a development tool (requirements-dev.txt)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    s = Session(app.STUDIO)
    s.set_model("toyfaces")
    rows, cols = np.nonzero(np.isin(s.sample(args.seed, 0.7).labels, [8, 9]))   # aim a "wider mouth" stroke
    R = 64
    demo = app.build_ui(args.model)
    demo.queue()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)

    def shot(name):
        page.wait_for_timeout(700)
        page.screenshot(path=str(out / f"{name}.png"), full_page=True)

    try:
        with sync_playwright() as pw:
            browser, page = open_page(pw, demo.local_url)
            shot("first_screen")
            if args.first_only:
                return
            opened = image_src(page, "Current image")
            page.get_by_label("Seed").fill(str(args.seed))
            page.get_by_role("button", name="Generate").click()
            first = wait_new_image(page, opened)
            page.get_by_label("Show segmentation overlay").check()
            shot("image_tab")
            page.get_by_role("tab", name="Edit").click()
            page.wait_for_selector("canvas")
            page.wait_for_timeout(500)
            paint_stroke(page, rgb=(220, 0, 0), y_frac=(rows.mean() + 0.5) / R, x_from=(cols.min() - 2) / R,
                         x_to=(cols.max() + 3) / R)                 # wider lips: the natural stroke for it
            page.get_by_role("button", name="Apply edit").click()
            page.wait_for_selector("text=/edited \\d+ classes/", timeout=180_000)
            wait_new_image(page, first)
            page.get_by_label("Vector name").fill("wider mouth")
            page.get_by_role("button", name="Save as editing vector").click()
            page.wait_for_selector("text=saved vector", timeout=60_000)
            shot("edit_tab")
            move_smile_slider(page)
            page.get_by_text("Preview on 8 other images").click()
            page.get_by_role("button", name="Preview", exact=True).click()
            page.wait_for_selector(".grid-container img, .gallery img", timeout=60_000)
            shot("vectors_tab")
            page.get_by_role("tab", name="History").click()
            shot("history_tab")
            page.get_by_role("tab", name="Annotate").click()
            page.get_by_role("button", name="Add current image").click()
            page.wait_for_selector("text=image 0 added", timeout=60_000)
            shot("annotate_tab")
            # A "photo": a 208x128 picture (a ToyFaces render, widened at the edges) uploaded, cropped, embedded.
            face = render_seed(424242, 128)[0]
            photo = Path(tempfile.mkdtemp()) / "photo.png"
            Image.fromarray(np.pad(face, ((0, 0), (40, 40), (0, 0)), mode="edge")).save(photo)
            page.get_by_role("tab", name="Image").click()
            page.locator("input[type=file]").first.set_input_files(str(photo))
            page.wait_for_selector("text=Prepared for the model", timeout=60_000)
            page.get_by_role("button", name="Embed photo").click()
            page.wait_for_selector("text=Reconstruction PSNR", timeout=180_000)
            page.wait_for_timeout(2500)          # the images arrive after the text
            shot("image_tab_photo")
            # A real photo (scikit-image's astronaut, 512x512) cut as an aligned face: the crop box on the photo.
            try:
                from skimage.data import astronaut
            except ImportError:
                astronaut = None
            if astronaut is not None:
                real = Path(tempfile.mkdtemp()) / "astronaut.png"
                Image.fromarray(astronaut()).save(real)
                page.get_by_label("aligned face").check()
                page.wait_for_timeout(1500)
                page.locator(".block", has_text="Photo to edit").locator("button[aria-label='Clear']").first.click()
                page.wait_for_timeout(500)
                page.locator("input[type=file]").first.set_input_files(str(real))
                page.wait_for_selector("text=/1 face found/", timeout=60_000)
                page.wait_for_timeout(2500)
                shot("image_tab_astronaut")
                # embedded, smiled with the starter vector, handed back to the photo with the region shown
                shown = image_src(page, "Current image")
                page.get_by_role("button", name="Embed photo").click()
                wait_new_image(page, shown, timeout=180_000)
                move_smile_slider(page)
                page.wait_for_selector("text=/sliders smile \\+1\\.50/", timeout=60_000)
                page.get_by_role("tab", name="Image").click()
                page.get_by_text("Your photo, edited").click()
                page.get_by_role("button", name="Hand the edit back to my photo").click()
                page.wait_for_selector("text=/Handed back to your photo/", timeout=120_000)
                page.wait_for_timeout(1500)
                page.get_by_text("Your photo, edited").scroll_into_view_if_needed()
                shot("image_tab_handback")
                page.get_by_label("Show the region handed back").check()
                page.wait_for_timeout(2500)
                shot("image_tab_handback_region")
            browser.close()
        print(f"wrote screenshots to {out}")
    finally:
        demo.close()


if __name__ == "__main__":
    main()
