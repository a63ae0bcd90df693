"""ToyFaces figures for docs/results.md and the model card.

    python bench/toyfaces.py render                 # renderer images/s (1 process and 2 workers)
    python bench/toyfaces.py generator              # default model: forward ms at batch 1, sample grids
    python bench/toyfaces.py train                  # training images/s of the CPU preset (10 steps)
    python bench/toyfaces.py quality --n 1000       # judge accuracy; valid-face rate and Frechet distances
    python bench/toyfaces.py all

The judge scores only; seeds: renders for evaluation come from 20,000,000 upwards (disjoint from training).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from editgan_core.runtime import tune_allocator  # noqa: E402

MODEL = ROOT / "checkpoints" / "toyfaces"


def bench_render() -> None:
    from editgan_core.toyfaces import render_seed
    from editgan_core.toyfaces.dataset import render_set

    print("| resolution | supersampling | images/s, 1 process | images/s, 2 workers |\n|---|---|---|---|")
    for res in (64, 128):
        t = time.perf_counter()
        for s in range(50):
            render_seed(s, res)
        one = 50 / (time.perf_counter() - t)
        t = time.perf_counter()
        render_set(range(1000, 1400), res, workers=2)
        two = 400 / (time.perf_counter() - t)
        print(f"| {res} | 4x4 | {one:.0f} | {two:.0f} |")


def _sample_images(G, n: int, psi: float, seed0: int = 0, batch: int = 50) -> np.ndarray:
    from editgan_core import images_to_uint8
    from editgan_core.models.generator import seeds_to_z

    out = []
    with torch.no_grad():
        for i in range(0, n, batch):
            z = seeds_to_z(range(seed0 + i, seed0 + i + min(batch, n - i)), G.z_dim)
            out.append(images_to_uint8(G(z, truncation_psi=psi)).numpy())
    return np.concatenate(out)


def bench_generator() -> None:
    from PIL import Image

    from editgan_core.loaders.hub import load_model

    G = load_model("toyfaces").G
    ws = G.mapping_ws(torch.randn(1, G.z_dim))
    with torch.no_grad():
        for _ in range(3):
            G.synthesis(ws)
        times = []
        for _ in range(30):
            t = time.perf_counter()
            G.synthesis(ws)
            times.append(time.perf_counter() - t)
    print(f"default model: {G.img_resolution}px, {G.num_parameters():,} parameters; synthesis at batch 1: "
          f"median {1000 * statistics.median(times):.1f} ms, min {1000 * min(times):.1f} ms (30 runs)")
    for psi in (0.7, 1.0):
        imgs = _sample_images(G, 64, psi, seed0=0)
        grid = np.concatenate([np.concatenate(list(imgs[r * 8:(r + 1) * 8]), 1) for r in range(8)], 0)
        path = ROOT / "docs" / f"toyfaces_samples_psi{psi}.png"
        Image.fromarray(grid).save(path)
        print(f"wrote {path.relative_to(ROOT)} (seeds 0-63, truncation {psi})")


def _seconds_per_step(step, n: int) -> float:
    """One warm-up call, then the mean wall time of n calls."""
    step()
    t = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t) / n


def bench_train() -> None:
    from editgan_core.toyfaces import distill as Dst
    from editgan_core.toyfaces import render_seed
    from editgan_core.training.gan import PRESETS, TrainConfig, Trainer

    data = np.stack([render_seed(s, 64)[0] for s in range(256)])
    cfg = TrainConfig(res=64, **PRESETS["cpu"])
    tr = Trainer(cfg, ROOT / "out", data, torch.device("cpu"))
    dt = _seconds_per_step(tr.train_step, 10)
    print(f"training, CPU preset at 64px, batch {cfg.batch}: {dt:.2f} s/step = {cfg.batch / dt:.1f} images/s "
          f"(G {tr.G.num_parameters():,} + D {sum(p.numel() for p in tr.D.parameters()):,} parameters)")
    dcfg = Dst.DistillConfig(data_size=224, val_size=32)
    d = Dst.Distiller(dcfg, torch.randn(256, dcfg.z_dim), data)
    dt = _seconds_per_step(d.train_step, 20)
    print(f"renderer distillation (the default model's trainer) at 64px, batch {dcfg.batch}: {dt:.3f} s/step = "
          f"{dcfg.batch / dt:.1f} images/s (G {d.G.num_parameters():,} parameters)")


def bench_quality(n: int, n_fd: int) -> None:
    from editgan_core.loaders.hub import load_model
    from editgan_core.toyfaces import judge as J
    from editgan_core.toyfaces.dataset import SEEDS, render_set

    judge = J.load_judge(MODEL / "judge.safetensors")
    m = J.evaluate(judge, n=n)
    print(f"judge on {n} held-out renders at {m['res']}px: mIoU {m['miou']:.4f}, pixel accuracy "
          f"{m['pixel_accuracy']:.4f}, valid-face rate of the true masks {m['valid_face_rate_renders']:.3f}")
    print("per-class IoU: " + ", ".join(f"{k} {v:.3f}" for k, v in m["iou"].items()))
    print("attribute MAE (attributes in [0, 1]): " + ", ".join(f"{k} {v:.3f}" for k, v in m["attribute_mae"].items()))
    G = load_model("toyfaces").G
    base = SEEDS["eval"] + 100_000
    r1 = render_set(range(base, base + n_fd), G.img_resolution)[0]
    r2 = render_set(range(base + n_fd, base + 2 * n_fd), G.img_resolution)[0]
    f1 = J.predict(judge, J.to_input(r1))[2]
    f2 = J.predict(judge, J.to_input(r2))[2]
    print(f"\nFrechet distance of judge features, renders vs renders ({n_fd} each): {J.frechet_distance(f1, f2):.3f}")
    print("| truncation | valid faces (of %d samples) | Frechet distance to %d renders | top failure reasons |" % (n, n_fd))
    print("|---|---|---|---|")
    from collections import Counter
    for psi in (1.0, 0.7):
        imgs = _sample_images(G, max(n, n_fd), psi, seed0=0)
        masks, _, feats = J.predict(judge, J.to_input(imgs))
        checks = [J.is_valid_face(mk) for mk in masks[:n]]
        why = Counter(w.split(" ")[0] if w[0].isdigit() else w for ok, ws in checks for w in ws)
        rate = np.mean([ok for ok, _ in checks])
        fd = J.frechet_distance(feats[:n_fd], f1)
        print(f"| {psi} | {100 * rate:.1f}% | {fd:.3f} | {dict(why.most_common(3))} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["render", "generator", "train", "quality", "all"])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--n-fd", type=int, default=2000)
    args = p.parse_args()
    tune_allocator()
    if args.what in ("render", "all"):
        bench_render()
    if args.what in ("generator", "all"):
        bench_generator()
    if args.what in ("train", "all"):
        bench_train()
    if args.what in ("quality", "all"):
        bench_quality(args.n, args.n_fd)


if __name__ == "__main__":
    main()
