"""Studio responsiveness on this machine: cold start of `python app.py` to a served page, and slider latency
end-to-end through the HTTP API while other users drag sliders and one user runs a mask edit.

    python bench/studio.py                  # 8 slider users + 1 editing client, 15 moves each
    python bench/studio.py --clients 8 --moves 15 --no-edit
    python bench/studio.py --gradio-client  # each user a gradio_client process instead
    python bench/studio.py --clients 7 --browser    # and one person in headless chromium
    python bench/studio.py --clients 0 --edit-alone 25  # the repeated edit's own time, nobody else

Latency = wall time of one slider move as a page makes it: the POST of the slider values to the app's
``/gradio_api/run/set_scales`` route (the event is not queued), then the GET of the image file it names. By default
the users are threads of one process that make exactly these two HTTP requests (what a browser elsewhere sends; its
own work is ~1 ms a move). ``--gradio-client`` makes each user a gradio_client process calling
``predict("/set_scales")``, as the issue-#6 figures did: on the same 2 cores those 8 processes' own work (httpx,
the client's threads, JSON, the download) is most of what is measured. Figures go to docs/results.md.
"""

from __future__ import annotations

import argparse
import json
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


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
            c.predict("0", *vals, api_name="/set_scales")
            times.append(time.perf_counter() - t)
        except Exception as e:  # noqa: BLE001
            errors.append(f"slider: {e}")
    return times, errors


def http_user(url: str, k: int, moves: int, ready: threading.Barrier) -> tuple:
    """One user as a page: sample a face once (gradio_client), then per move the two requests a browser makes: POST
    the slider values to /gradio_api/run/set_scales, GET the image it returns. -> (latencies, errors)."""
    from gradio_client import Client

    times, errors = [], []
    try:
        c = Client(url, verbose=False)
        c.predict(model="toyfaces", seed=100 + k, truncation=0.7, class_idx=0, overlay=False, api_name="/sample")
    except Exception as e:  # noqa: BLE001
        ready.abort()
        return times, [f"setup: {e}"]
    ready.wait()
    vals = [0.0] * 12
    for j in range(moves):
        vals[k % 5] = round(-2 + 4 * j / max(moves - 1, 1), 2)
        body = json.dumps({"data": [None, "0", *vals], "session_hash": c.session_hash}).encode()
        t = time.perf_counter()
        try:
            req = urllib.request.Request(url + "gradio_api/run/set_scales", data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as r:
                image = json.loads(r.read())["data"][0]
            with urllib.request.urlopen(image["url"], timeout=60) as r:
                r.read()
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
    p.add_argument("--gradio-client", action="store_true",
                   help="each slider user a gradio_client process (default: the page's two HTTP requests per move, "
                        "from threads of this process)")
    p.add_argument("--edit-alone", type=float, default=20.0,
                   help="with --clients 0 and no --browser: seconds to let the edit repeat alone (its own time)")
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
        lat, errors, edits = [], [], []
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
                    t = time.perf_counter()
                    c.predict("toyfaces", {"background": handle_file(str(d / "b.png")),
                                           "layers": [handle_file(str(d / "l.png"))], "composite": None}, 100, False,
                              api_name="/edit")
                    edits.append(time.perf_counter() - t)
                    c.predict(False, api_name="/undo")     # the next edit paints the same mouth on the same face
                except Exception as e:  # noqa: BLE001
                    errors.append(f"edit: {e}")
                    return

        ed = None
        if not args.no_edit:
            ed = threading.Thread(target=editor, daemon=True)
            ed.start()
            time.sleep(4)
        blat = []
        cpu0 = cpu_seconds(proc.pid), time.process_time(), time.perf_counter()
        if args.gradio_client:
            # Each gradio_client user is its own process: its threads in one process would mostly measure the
            # client's own GIL contention.
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(max(args.clients, 1)) as pool:
                pending = pool.starmap_async(slider_user, [(url, k, args.moves) for k in range(args.clients)])
                if args.browser:
                    blat = browser_user(url, args.moves)
                results = pending.get()
        else:
            from concurrent.futures import ThreadPoolExecutor

            ready = threading.Barrier(args.clients + 1)       # the users' setup done: the moves are timed
            with ThreadPoolExecutor(max(args.clients, 1)) as pool:
                pending = [pool.submit(http_user, url, k, args.moves, ready) for k in range(args.clients)]
                try:
                    ready.wait(timeout=120)
                except threading.BrokenBarrierError:
                    pass
                cpu0 = cpu_seconds(proc.pid), time.process_time(), time.perf_counter()
                if args.browser:
                    blat = browser_user(url, args.moves)
                elif not args.clients:
                    time.sleep(args.edit_alone)     # nobody moves a slider: the edit's own time
                results = [f.result() for f in pending]
        cpu = [cpu_seconds(proc.pid) - cpu0[0], time.process_time() - cpu0[1], time.perf_counter() - cpu0[2]]
        for times, errs in results:
            lat.extend(times)
            errors.extend(errs)
        edit_done.set()
        if blat:
            blat.sort()
            print(f"browser user (chromium, slider key press -> new image shown), app torch threads "
                  f"{args.threads}, with {args.clients} API clients"
                  f"{'' if args.no_edit else ' and an edit running'}: median {1000 * statistics.median(blat):.0f} ms, "
                  f"p90 {1000 * blat[int(0.9 * len(blat))]:.0f} ms over {len(blat)} moves", flush=True)
        if edits:
            print(f"the 100-step edit, repeated: {len(edits)} done, median {statistics.median(edits):.1f} s "
                  f"(each from the request to its last streamed frame)", flush=True)
        if not lat:
            return
        lat.sort()
        kind = "gradio_client processes" if args.gradio_client else "HTTP users"
        print(f"{args.clients} slider {kind} x {args.moves} moves{'' if args.no_edit else ' while an edit runs'}"
              f", app torch threads {args.threads}: "
              f"median {1000 * statistics.median(lat):.0f} ms, p90 {1000 * lat[int(0.9 * len(lat))]:.0f} ms, "
              f"max {1000 * lat[-1]:.0f} ms over {len(lat)} calls; errors: {len(errors)} {errors[:3]}", flush=True)
        # Where the cores went while the users moved (the app's figure includes the edit, when one runs).
        clients = "" if args.gradio_client else f", the users' {1000 * cpu[1] / len(lat):.1f} ms (this process)"
        cores = len(os.sched_getaffinity(0))
        print(f"CPU per slider move: the app {1000 * cpu[0] / len(lat):.1f} ms{clients}; the machine's {cores} cores "
              f"offered {1000 * cores * cpu[2] / len(lat):.1f} ms per move", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
