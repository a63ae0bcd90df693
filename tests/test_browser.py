"""The studio in a real browser (headless Debian chromium via Playwright): generate, paint a stroke with a palette
colour, apply the edit, see the image change, save a vector, move its slider, see the image change again.
Screenshots of every stage go to $EDITGAN_SHOTS (default: pytest's tmp dir) to be looked at."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() or shutil.which("chromium") is None,
                                reason="needs Debian chromium at /usr/bin/chromium: apt-get install chromium "
                                       "(Playwright drives it; never `playwright install`; .ci/run installs it)")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    os.environ["EDITGAN_HOME"] = str(tmp_path_factory.mktemp("home"))   # the user library goes to a temp dir
    import app

    demo = app.build_ui()
    demo.queue()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    yield demo
    demo.close()


def sample_labels(seed):
    """The branch's segmentation of a sample, computed here (same model, same process) to aim the stroke."""
    import app
    from demo.session import Session

    s = Session(app.STUDIO)
    s.set_model("toyfaces")
    return s.sample(seed, 0.7).labels


def test_generate_paint_edit_save_slide(served, tmp_path):
    from playwright.sync_api import sync_playwright

    from demo.screenshot import image_src, open_page, paint_stroke, wait_new_image

    shots = Path(os.environ.get("EDITGAN_SHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser, page = open_page(pw, served.local_url)
        try:
            opened = image_src(page, "Current image")      # the first screen: a sample already, and a hint
            assert opened and page.locator("text=Start here").count() >= 1
            page.screenshot(path=str(shots / "0_first_screen.png"), full_page=True)
            page.get_by_label("Seed").fill("5")
            page.get_by_role("button", name="Generate").click()
            first = wait_new_image(page, opened)
            assert first.startswith(("http", "data:", "/"))
            page.screenshot(path=str(shots / "1_generated.png"), full_page=True)

            page.get_by_role("tab", name="Edit").click()
            page.wait_for_selector("canvas")
            page.wait_for_timeout(500)
            # A wider mouth: a "mouth" green stroke along the mouth's row, a few pixels past both corners.
            rows, cols = np.nonzero(np.isin(sample_labels(5), [8, 9]))     # lips, mouth
            R = 64
            paint_stroke(page, y_frac=(rows.mean() + 0.5) / R, x_from=(cols.min() - 2) / R, x_to=(cols.max() + 3) / R)
            page.screenshot(path=str(shots / "2_painted.png"), full_page=True)
            steps = page.get_by_label("Optimisation steps").first
            steps.fill("30")
            steps.press("Enter")
            page.get_by_role("button", name="Apply edit").click()
            page.wait_for_selector("text=/edited \\d+ classes/", timeout=180_000)
            assert page.locator("text=/mask edit of .*mouth/").count() >= 1
            edited = wait_new_image(page, first)
            assert edited != first
            page.screenshot(path=str(shots / "3_edited.png"), full_page=True)

            page.get_by_label("Vector name").fill("browser smile")
            page.get_by_role("button", name="Save as editing vector").click()
            page.wait_for_selector("text=saved vector", timeout=60_000)

            page.get_by_role("tab", name="Vectors").click()
            slider = page.locator(".block", has_text="browser smile").locator("input[type=range]").first
            slider.wait_for(timeout=30_000)
            before = image_src(page, "Current image")
            slider.focus()
            for _ in range(20):                            # +1.0 in steps of 0.05, as a keyboard user would
                page.keyboard.press("ArrowRight")
            after = wait_new_image(page, before, timeout=60_000)
            assert after != before
            page.wait_for_selector("text=/sliders browser smile \\+/", timeout=30_000)
            page.screenshot(path=str(shots / "4_slider.png"), full_page=True)
        finally:
            browser.close()


def test_assisted_annotation_then_training(served, tmp_path):
    """The bring-your-own-model path in the browser: each added image comes with a proposed mask (here from the
    built-in ToyFaces parser, and the page says so); keeping or correcting it and saving; training a branch."""
    from playwright.sync_api import sync_playwright

    from demo.screenshot import image_src, open_page, paint_stroke, wait_new_image

    shots = Path(os.environ.get("EDITGAN_SHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser, page = open_page(pw, served.local_url)
        try:
            image = image_src(page, "Current image")           # the first screen's sample
            for k, seed in enumerate((3, 4)):
                page.get_by_role("tab", name="Image").click()
                page.get_by_label("Seed").fill(str(seed))
                page.get_by_role("button", name="Generate").click()
                image = wait_new_image(page, image)
                page.get_by_role("tab", name="Annotate").click()
                page.get_by_role("button", name="Add current image").click()
                page.wait_for_selector(f"text=/image {k} added; proposed mask: parser toyfaces-parser/",
                                       timeout=120_000)
                if k == 1:      # correct the second proposal by hand: a stroke of hair colour
                    page.wait_for_timeout(500)
                    paint_stroke(page, rgb=(140, 70, 20), y_frac=0.2, x_from=0.3, x_to=0.7)
                page.get_by_role("button", name="Save annotation").click()
                page.wait_for_selector(f"text=/annotation {k} saved \\({k + 1} annotated\\)/", timeout=60_000)
            page.screenshot(path=str(shots / "5_annotated.png"), full_page=True)
            steps = page.get_by_label("Training steps (max)").first
            steps.fill("100")
            steps.press("Enter")
            page.get_by_role("button", name="Train branch").click()
            page.wait_for_selector("text=/branch trained: held-out mIoU/", timeout=180_000)
            page.screenshot(path=str(shots / "6_trained.png"), full_page=True)
        finally:
            browser.close()


def test_the_page_opens_on_a_kit_with_a_sample_and_example_photos(tmp_path):
    """`python app.py --model KIT`: the first screen shows a sample of the kit's model, the kit's card, its
    vectors as sliders, and example photos that a click prepares for embedding."""
    import app
    from editgan_core.commands import main
    from playwright.sync_api import sync_playwright

    from demo.screenshot import open_page

    kit = tmp_path / "kit"
    assert main(["kit", "--out", str(kit), "--no-library"]) == 0
    demo = app.build_ui(str(kit))
    demo.queue()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    shots = Path(os.environ.get("EDITGAN_SHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser, page = open_page(pw, demo.local_url)        # waits for the first screen's sample
            try:
                assert page.locator("text=/native, 64x64/").count() >= 1
                page.get_by_text("Model card").click()
                page.wait_for_selector("text=/Held-out mIoU: 0.769/", timeout=30_000)
                page.locator("img[src*='toyface_']").first.click()        # an example photo
                page.wait_for_selector("text=/Prepared for the model/", timeout=60_000)
                page.screenshot(path=str(shots / "kit_first_screen.png"), full_page=True)
                page.get_by_role("tab", name="Vectors").click()
                page.locator(".block", has_text="smile (skin").locator("input[type=range]").first.wait_for(
                    timeout=30_000)
            finally:
                browser.close()
    finally:
        demo.close()
