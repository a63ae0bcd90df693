"""The memory budget's estimates against measured peaks: each long action alone in a fresh process, full size.

    python bench/budget.py --res 256 512 1024

For each resolution, a stand-in of the real configuration (tests/fakes/standins.py: random weights, config-f above 256)
and a random 10-member branch with 19 classes. Each action runs in its own process after the model is built; the
table gives the peak RSS above the model-only process (ru_maxrss after minus before), the estimate
``editgan_core/budget.py`` makes for it, their ratio (>= 1: the estimate is on the safe side) and the wall time.
Actions: a mask edit of 3 steps (with the segmentation it starts from), exact and at the working resolution;
refinement of 4 images (2 steps); embedding one image (3 steps); branch training over 4 images (10 steps, one
evaluation).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

ACTIONS = ["edit exact", "edit working", "refine 4", "embed 1", "train 4"]


def peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run(res: int, action: str) -> dict:
    import numpy as np
    import torch

    from fakes import standins
    from editgan_core import budget
    from editgan_core.pipeline.editing import edit_from_mask, refine
    from editgan_core.pipeline.embed import embed
    from editgan_core.pipeline.fewshot import train_branch
    from editgan_core.runtime import tune_allocator
    from editgan_core.models.segbranch import segment
    from editgan_core.settings import BRANCH, EDIT

    tune_allocator()
    G = standins.full_size_generator(res)
    names = standins.FACE_LABELS
    branch = standins.random_face_branch(G)
    ws = G.mapping_ws(torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(0)), truncation_psi=0.7)
    base = peak()
    t = time.perf_counter()
    if action.startswith("edit"):     # the edit's own segmentation before it counts, as in the app
        old = segment(G, branch, ws[:1])[0]
        new = old.copy()
        a, b = res // 2 - res // 12, res // 2 + res // 12
        new[a:b, a:b] = (int(old[a, a]) + 1) % len(names)
        work = 0 if action == "edit exact" else EDIT.work_resolution
        edit_from_mask(G, branch, ws[:1], new, old_mask=old, steps=3, work_resolution=work)
        est = budget.edit_bytes(G, budget_work(G, work))
    elif action == "refine 4":
        refine(G, branch, ws, ws + 0.1, [1, 2], steps=2, batch=4)
        est = budget.edit_bytes(G, budget_work(G, EDIT.work_resolution), 4)
    elif action == "embed 1":
        with torch.no_grad():
            img = G.synthesis(ws[1:2])
        base = peak()
        t = time.perf_counter()
        embed(G, img, steps=3)
        est = budget.embed_bytes(G, 1)
    else:
        masks = np.random.default_rng(0).integers(0, len(names), (4, res, res), dtype=np.uint8)
        train_branch(G, ws, masks, names, branch.cfg.palette, max_steps=10, eval_every=10)
        est = budget.training_bytes(G, BRANCH.members, BRANCH.hidden)
    return {"res": res, "action": action, "seconds": round(time.perf_counter() - t, 1), "base_mib": base >> 20,
            "used_mib": (peak() - base) >> 20, "estimate_mib": int(est) >> 20}


def budget_work(G, work):
    from editgan_core.pipeline.editing import work_resolution_for

    return work_resolution_for(G, work)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--actions", nargs="+", default=ACTIONS)
    p.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print("RESULT " + json.dumps(run(int(args.one[0]), args.one[1])), flush=True)
        return
    print("| resolution | action | model process: peak RSS | action: peak RSS above it | estimate | estimate / "
          "measured | wall s |")
    print("|---|---|---|---|---|---|---|")
    for res in args.res:
        for action in args.actions:
            out = subprocess.run([sys.executable, __file__, "--one", str(res), action], capture_output=True,
                                 text=True)
            line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                raise SystemExit(f"{res} {action} failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
            r = json.loads(line[7:])
            print(f"| {res} | {action} | {r['base_mib']} MiB | {r['used_mib']} MiB | {r['estimate_mib']} MiB | "
                  f"{r['estimate_mib'] / max(r['used_mib'], 1):.2f} | {r['seconds']} |", flush=True)


if __name__ == "__main__":
    main()
