"""Studio responsiveness on this machine: cold start of `python app.py` to a served page, and slider latency
end-to-end through the HTTP API while other users drag sliders and one user runs a mask edit.

    python bench/studio.py                  # 8 slider clients + 1 editing client, 15 moves each
    python bench/studio.py --clients 8 --moves 15 --no-edit

Latency = wall time of one gradio_client predict("/set_scales") call (request, queue, one generator pass, PNG
encode, file download). Figures go to docs/results.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cold_start(port: int, threads: str = "auto") -> tuple:
    """Seconds from `python app.py` to the first HTTP 200 of the page; the process is left running."""
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_SERVER_PORT": str(port),
           "EDITGAN_THREADS": str(threads)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return time.perf_counter() - t0, proc
        except Exception:
            if proc.poll() is not None:
                raise SystemExit("app.py exited before serving")
            time.sleep(0.1)


def slider_user(url: str, k: int, moves: int) -> tuple:
    """One user: sample a face, then drag one slider from -2 to 2 in ``moves`` steps. -> (latencies, errors)."""
    from gradio_client import Client

    times, errors = [], []
    try:
        c = Client(url, verbose=False)
        c.predict(model="toyfaces", seed=100 + k, truncation=0.7, class_idx=0, overlay=False, api_name="/sample")
    except Exception as e:  # noqa: BLE001
        return times, [f"setup: {e}"]
    vals = [0.0] * 12
    for j in range(moves):
        vals[k % 5] = round(-2 + 4 * j / max(moves - 1, 1), 2)
        t = time.perf_counter()
        try:
            c.predict(0, *vals, api_name="/set_scales")
            times.append(time.perf_counter() - t)
        except Exception as e:  # noqa: BLE001
            errors.append(f"slider: {e}")
    return times, errors


def browser_user(url: str, moves: int) -> list:
    """A person in headless chromium: generate, open Vectors, press ArrowRight on the smile slider ``moves`` times,
    each time waiting until the new image is on the page. -> latencies (s)."""
    from playwright.sync_api import sync_playwright

    from demo.screenshot import image_src, open_page, wait_new_image

    times = []
    with sync_playwright() as pw:
        browser, page = open_page(pw, url)
        page.get_by_role("button", name="Generate").click()
        wait_new_image(page, "")
        page.get_by_role("tab", name="Vectors").click()
        slider = page.locator(".block", has_text="smile (skin").locator("input[type=range]").first
        slider.focus()
        for _ in range(moves):
            before = image_src(page, "Current image")
            t = time.perf_counter()
            page.keyboard.press("ArrowRight")
            wait_new_image(page, before, timeout=30_000)
            times.append(time.perf_counter() - t)
        browser.close()
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--moves", type=int, default=15)
    p.add_argument("--no-edit", action="store_true")
    p.add_argument("--threads", default="auto", help="the app's torch threads: auto (the default) or a number")
    p.add_argument("--browser", action="store_true",
                   help="one more user in headless chromium: key presses on a slider, timed to the new image")
    args = p.parse_args()
    from gradio_client import Client, handle_file
    import numpy as np
    from PIL import Image

    port = free_port()
    secs, proc = cold_start(port, args.threads)
    print(f"cold start: python app.py -> page served in {secs:.1f} s", flush=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        lat, errors = [], []
        edit_done = threading.Event()

        def editor():
            import tempfile
            c = Client(url, verbose=False)
            c.predict(model="toyfaces", seed=5, truncation=0.7, class_idx=0, overlay=False, api_name="/sample")
            layer = np.zeros((64, 64, 4), np.uint8)
            layer[44:46, 24:41] = (0, 200, 120, 255)          # widen the mouth
            d = Path(tempfile.mkdtemp())
            Image.fromarray(layer).save(d / "l.png")
            Image.fromarray(np.zeros((64, 64, 4), np.uint8)).save(d / "b.png")
            while not edit_done.is_set():   # keep an edit running for the whole measurement
                try:
                    c.predict("toyfaces", {"background": handle_file(str(d / "b.png")),
                                           "layers": [handle_file(str(d / "l.png"))], "composite": None}, 100, False,
                              api_name="/edit")
                except Exception as e:  # noqa: BLE001
                    errors.append(f"edit: {e}")
                    return

        ed = None
        if not args.no_edit:
            ed = threading.Thread(target=editor, daemon=True)
            ed.start()
            time.sleep(4)
        # Each slider user is its own process (as browsers would be): gradio_client threads in one process
        # would mostly measure the client's own GIL contention.
        import multiprocessing as mp

        blat = []
        with mp.get_context("spawn").Pool(max(args.clients, 1)) as pool:
            pending = pool.starmap_async(slider_user, [(url, k, args.moves) for k in range(args.clients)])
            if args.browser:
                blat = browser_user(url, args.moves)
            for times, errs in pending.get():
                lat.extend(times)
                errors.extend(errs)
        edit_done.set()
        if blat:
            blat.sort()
            print(f"browser user (chromium, slider key press -> new image shown), app torch threads "
                  f"{args.threads}, with {args.clients} API clients"
                  f"{'' if args.no_edit else ' and an edit running'}: median {1000 * statistics.median(blat):.0f} ms, "
                  f"p90 {1000 * blat[int(0.9 * len(blat))]:.0f} ms over {len(blat)} moves", flush=True)
        if not lat:
            return
        lat.sort()
        print(f"{args.clients} slider clients x {args.moves} moves{'' if args.no_edit else ' while an edit runs'}"
              f", app torch threads {args.threads}: "
              f"median {1000 * statistics.median(lat):.0f} ms, p90 {1000 * lat[int(0.9 * len(lat))]:.0f} ms, "
              f"max {1000 * lat[-1]:.0f} ms over {len(lat)} calls; errors: {len(errors)} {errors[:3]}", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
