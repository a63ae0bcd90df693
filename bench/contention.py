"""How much competing CPU-bound processes slow the studio's work, per thread policy (issue #14).

    python bench/contention.py                          # policies auto and 2 against 0, 1 and 2 competitors
    python bench/contention.py --policies auto 1 2 --competitors 0 2

Each competitor is a separate process running 2-thread float32 matrix products without a pause (another torch
program on the same cores). Each measurement runs in a fresh process whose ``EDITGAN_THREADS`` is the policy
(``auto`` or a number; see editgan_core/runtime.py) and times, on the built-in model:

* ``embed``: a 100-step embedding of one render (the issue's measurement);
* ``edit``: a 100-step mask edit (the smile stroke of the README);
* ``slider``: the median of 20 slider moves (one vector applied, the image made and encoded as PNG).

The slowdown of a task is its time with competitors over its time with none, for the same policy (with
``--repeats``, medians of that many fresh measurements: this machine's speed varies from run to run). A fair share
with two 2-thread competitors is ~3x (the goal: at most 3.5x), with one ~2x. The competitors are started before
and killed after each measurement, also on errors.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COMPETITOR = ("import torch\ntorch.set_num_threads(2)\na = torch.randn(768, 768)\n"
              "while True:\n    a = (a @ a).tanh_()\n")


def worker(task: str) -> dict:
    from editgan_core.runtime import configure_threads

    policy = configure_threads()
    import numpy as np
    import torch
    from PIL import Image

    from editgan_core import apply_vectors, edit_from_mask, images_to_uint8, segment

    from editgan_core import embed
    from editgan_core.pipeline.embed import load_encoder
    from editgan_core.loaders.hub import load_model
    from editgan_core.storage.identity import model_identity
    from editgan_core.models.segbranch import load_branch
    from editgan_core.storage.vectors import load_vector

    model = ROOT / "checkpoints" / "toyfaces"
    loaded = load_model("toyfaces")
    G = loaded.G.eval()
    ident = model_identity(loaded)
    ws = G.mapping_ws(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(7)), truncation_psi=0.7)
    out = {}
    if task == "embed":
        enc = load_encoder(model / "encoder.safetensors", expect_generator=ident)
        with torch.no_grad():
            target = G.synthesis(ws)
        t = time.perf_counter()
        embed(G, target, encoder=enc, steps=100)
        out["seconds"] = time.perf_counter() - t
    elif task == "edit":
        branch = load_branch(model / "branch.safetensors", expect_generator=ident)
        old = segment(G, branch, ws)[0]
        new = old.copy()
        new[40:46, 22:42] = branch.cfg.class_names.index("mouth")
        t = time.perf_counter()
        edit_from_mask(G, branch, ws, new, steps=100)
        out["seconds"] = time.perf_counter() - t
    elif task == "slider":
        vec = load_vector(sorted((model / "vectors").glob("*.safetensors"))[0])
        times = []
        for i in range(23):
            t = time.perf_counter()
            img = images_to_uint8(apply_vectors(G, ws, [(vec, 0.1 * i)], fast=True).image)[0].numpy()
            Image.fromarray(img).save(io.BytesIO(), format="PNG")
            times.append(time.perf_counter() - t)
        out["seconds"] = float(np.median(times[3:]))
    else:
        raise SystemExit(f"unknown task {task}")
    out["policy"] = policy.describe()
    return out


OMP_VARS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def measure(task: str, policy: str, competitors: int, timeout: float) -> dict:
    """``policy``: an EDITGAN_THREADS value, optionally with OpenMP settings for the measured process only:
    ``auto:passive`` (OMP_WAIT_POLICY=PASSIVE), ``2:spin=10000`` (GOMP_SPINCOUNT). Competitors always run with
    OpenMP's defaults."""
    clean = {k: v for k, v in os.environ.items() if k not in OMP_VARS}
    threads, *omp = policy.split(":")
    env = dict(clean, EDITGAN_THREADS=threads)
    for o in omp:
        if o == "passive":
            env["OMP_WAIT_POLICY"] = "PASSIVE"
        elif o.startswith("spin="):
            env["GOMP_SPINCOUNT"] = o[5:]
        else:
            raise SystemExit(f"unknown OpenMP setting {o!r} in policy {policy!r}")
    rivals = [subprocess.Popen([sys.executable, "-c", COMPETITOR], env=dict(clean, OMP_NUM_THREADS="2"))
              for _ in range(competitors)]
    try:
        time.sleep(1.0 if competitors else 0.0)     # let them reach their loop
        r = subprocess.run([sys.executable, __file__, "--worker", task], env=env, capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode:
            raise RuntimeError(r.stderr[-2000:])
        return json.loads(r.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        return {"seconds": float("inf"), "policy": policy}
    finally:
        for p in rivals:
            p.kill()
        for p in rivals:
            p.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--policies", nargs="+", default=["auto", "2"])
    p.add_argument("--competitors", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--tasks", nargs="+", default=["embed", "edit", "slider"])
    p.add_argument("--timeout", type=float, default=240.0, help="seconds per measurement (inf when exceeded)")
    p.add_argument("--repeats", type=int, default=1, help="measurements per cell; the median is reported")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "contention.json")
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker)))
        return
    rows = []
    for policy in args.policies:
        for task in args.tasks:
            base = None
            for n in args.competitors:
                runs = [measure(task, policy, n, args.timeout) for _ in range(args.repeats)]
                m = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
                base = m["seconds"] if n == 0 else base
                ratio = m["seconds"] / base if base else float("nan")
                rows.append({"policy": policy, "task": task, "competitors": n, "seconds": m["seconds"],
                             "slowdown": ratio, "threads": m.get("policy")})
                print(f"policy {policy:>4}  {task:6}  competitors {n}: {m['seconds'] * 1e3:9.1f} ms  "
                      f"x{ratio:5.2f}  ({m.get('policy')})", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
