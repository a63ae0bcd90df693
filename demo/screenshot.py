"""Drive the app in headless Chromium and save screenshots (for docs/ and for looking at the UI).

    python demo/screenshot.py --out docs/screenshots/app.png

Needs Debian's chromium (/usr/bin/chromium) and the playwright Python package (never `playwright install`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs/screenshots/app.png")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--model", default=None, help="type this model reference into the Model box first")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    import app

    demo = app.build_ui()
    demo.queue()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("http://127.0.0.1", "data:",
                                                                                     "blob:")) else r.abort())
            page.goto(demo.local_url)
            page.wait_for_selector("button:has-text('Generate')", timeout=60_000)
            if args.model:
                box = page.get_by_label("Model")
                box.fill(args.model)
                box.press("Enter")
            seed = page.get_by_label("Seed")
            seed.fill(str(args.seed))
            page.get_by_role("button", name="Generate").click()
            page.wait_for_selector("img[src*='/file=']", timeout=120_000)
            page.wait_for_timeout(1000)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.out, full_page=True)
            browser.close()
        print(f"wrote {args.out}")
    finally:
        demo.close()


if __name__ == "__main__":
    main()
