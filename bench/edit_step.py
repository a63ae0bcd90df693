"""Cost of one mask-edit step and one refinement step, in bare generator passes measured in the same run (issue #14).

    python bench/edit_step.py                  # the built-in model, three strokes, 100-step edits
    python bench/edit_step.py --steps 50 --threads 1

A bare pass is G.synthesis of one latent without gradients (what a slider move costs). Each stroke is painted on
the branch's own segmentation of a sample, as in the app: "mouth" widens the mouth of seed 1 (the README's
6 x 20 rectangle; the region is the face: skin, lips and mouth), "mouth over background" paints the same
rectangle where seed 7 has background (the region is then most of the image), "hair" paints two bands down to the
shoulders. Bare passes are timed before and after the edits and averaged, so machine noise hits both.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from editgan_core import apply_vectors, edit_from_mask, segment  # noqa: E402
from editgan_core.editing import changed_classes, edit_region  # noqa: E402
from editgan_core.hub import load_model  # noqa: E402
from editgan_core.identity import model_identity  # noqa: E402
from editgan_core.runtime import configure_threads, tune_allocator  # noqa: E402
from editgan_core.segbranch import load_branch  # noqa: E402


def strokes(names):
    mouth, hair = names.index("mouth"), names.index("hair")

    def rect(m):
        m[40:46, 22:42] = mouth
        return m

    def bands(m):
        m[20:60, 8:14] = hair
        m[20:60, 50:56] = hair
        return m

    return {"mouth (seed 1)": (1, rect), "mouth over background (seed 7)": (7, rect), "hair bands (seed 2)": (2, bands)}


def bare_ms(G, ws, n=100) -> float:
    with torch.no_grad():
        for _ in range(5):
            G.synthesis(ws)
        t = time.perf_counter()
        for _ in range(n):
            G.synthesis(ws)
    return (time.perf_counter() - t) / n * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--threads", default=None, help="torch threads (default: auto, editgan_core/runtime.py)")
    args = p.parse_args()
    tune_allocator()
    configure_threads(args.threads)
    loaded = load_model("toyfaces")
    G = loaded.G.eval()
    branch = load_branch(ROOT / "checkpoints" / "toyfaces" / "branch.safetensors",
                         expect_generator=model_identity(loaded))
    names = branch.cfg.class_names
    rows, bares = [], []
    probe = G.mapping_ws(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0)), truncation_psi=0.7)
    bares.append(bare_ms(G, probe))
    vec = None
    for label, (seed, paint) in strokes(names).items():
        z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).float()
        ws = G.mapping_ws(z, truncation_psi=0.7)
        old = segment(G, branch, ws)[0]
        new = paint(old.copy())
        region = edit_region(old, new, changed_classes(old, new))
        edit_from_mask(G, branch, ws, new, steps=3)                           # warm-up
        t = time.perf_counter()
        res = edit_from_mask(G, branch, ws, new, steps=args.steps)
        sec = time.perf_counter() - t
        vec = vec or res.vector
        rows.append((label, int(region.sum()), sec / args.steps * 1e3))
    # refinement: 30 steps on 4 other samples (the benchmark's batch), per image and step
    ws4 = G.mapping_ws(torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(9)), truncation_psi=0.7)
    t = time.perf_counter()
    apply_vectors(G, ws4, [(vec, 1.0)], branch=branch, refine_steps=30, batch=4)
    refine_ms = (time.perf_counter() - t) / 30 / 4 * 1e3
    bares.append(bare_ms(G, probe))
    bare = statistics.mean(bares)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; bare generator pass {bare:.2f} ms "
          f"(before {bares[0]:.2f}, after {bares[1]:.2f})")
    print("| stroke | edit region (pixels of 4096) | ms per edit step | bare passes per step |")
    print("|---|---|---|---|")
    for label, px, ms in rows:
        print(f"| {label} | {px} | {ms:.1f} | {ms / bare:.1f} |")
    print(f"| refinement, 4 images x 30 steps (per image and step) | | {refine_ms:.1f} | {refine_ms / bare:.1f} |")


if __name__ == "__main__":
    main()
