"""Cost of one mask-edit step and one refinement step, in bare generator passes measured in the same run (issue #14).

    python bench/edit_step.py                  # the built-in model, three strokes, 100-step edits
    python bench/edit_step.py --steps 50 --threads 1
    python bench/edit_step.py --res 1024 --steps 100   # a full-size stand-in: exact vs working resolutions (#20)

Full size (``--res``): a config-f generator with random weights of the real configuration (tests/fakes/standins.py) and
a random 10-member branch with 19 classes (a random network costs what a trained one does). A box of 1/6 of the
side is painted over the branch's own segmentation of a sample. Reported, in one run: a bare forward at full size,
one edit step at each working resolution (``--work``; the model's own = the exact optimisation), each as a ratio
to the bare forward, then one whole ``--steps``-step edit at the default working resolution (including the
segmentation before, the full-size render, segmentation and quality readout after), with the peak RSS.

A bare pass is G.synthesis of one latent without gradients (what a slider move costs). Each stroke is painted on
the branch's own segmentation of a sample, as in the app: "mouth" widens the mouth of seed 1 (the README's
6 x 20 rectangle; the region is the face: skin, lips and mouth), "mouth over background" paints the same
rectangle where seed 7 has background (the region is then most of the image), "hair" paints two bands down to the
shoulders. Bare passes are timed before and after the edits and averaged, so machine noise hits both.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from editgan_core import apply_vectors, edit_from_mask, segment  # noqa: E402
from editgan_core.pipeline.editing import changed_classes, edit_region  # noqa: E402
from editgan_core.loaders.hub import load_model  # noqa: E402
from editgan_core.storage.identity import model_identity  # noqa: E402
from editgan_core.runtime import configure_threads, tune_allocator  # noqa: E402
from editgan_core.models.segbranch import load_branch  # noqa: E402


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


def full_size(res: int, steps: int, works) -> None:
    """A full-size stand-in: bare forward, one step per working resolution, one whole edit (EDIT's default)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fakes import standins
    from editgan_core.pipeline.editing import optimise_region, work_resolution_for
    from editgan_core.settings import EDIT

    G = standins.full_size_generator(res)
    names = standins.FACE_LABELS
    branch = standins.random_face_branch(G)
    ws = G.mapping_ws(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0)), truncation_psi=0.7)
    old = segment(G, branch, ws)[0]
    new = old.copy()
    a, b = res // 2 - res // 12, res // 2 + res // 12
    new[a:b, a:b] = (int(np.bincount(old[a:b, a:b].ravel()).argmax()) + 1) % len(names)
    region = edit_region(old, new, changed_classes(old, new))
    bare = [bare_ms(G, ws, n=3)]
    rows = []
    for work in works:
        optimise_region(G, branch, ws, new, region, steps=1, work_resolution=work)          # warm-up
        n = 3 if work_resolution_for(G, work) == res else 10
        t = time.perf_counter()
        optimise_region(G, branch, ws, new, region, steps=n, work_resolution=work)
        rows.append((work_resolution_for(G, work), (time.perf_counter() - t) / n * 1e3))
    bare.append(bare_ms(G, ws, n=3))
    fwd = statistics.mean(bare)
    t = time.perf_counter()
    res_edit = edit_from_mask(G, branch, ws, new, steps=steps)
    whole = time.perf_counter() - t
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {res} px; bare forward {fwd:.0f} ms "
          f"(before {bare[0]:.0f}, after {bare[1]:.0f}); edit region {int(region.sum())} of {res * res} pixels")
    print("| working resolution | ms per edit step | bare forwards per step |")
    print("|---|---|---|")
    for work, ms in rows:
        label = f"{work} (exact)" if work == res else str(work)
        print(f"| {label} | {ms:.0f} | {ms / fwd:.2f} |")
    print(f"\nwhole {steps}-step edit at working resolution {work_resolution_for(G, EDIT.work_resolution)}: "
          f"{whole:.1f} s ({whole * 1e3 / fwd:.0f} bare forwards); quality: {res_edit.quality.summary()}; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--threads", default=None, help="torch threads (default: auto, editgan_core/runtime.py)")
    p.add_argument("--res", type=int, default=None, help="a full-size stand-in at this resolution")
    p.add_argument("--work", type=int, nargs="+", default=[0, 512, 256, 128],
                   help="working resolutions timed with --res (0: exact)")
    args = p.parse_args()
    tune_allocator()
    configure_threads(args.threads)
    if args.res:
        full_size(args.res, args.steps, args.work)
        return
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
