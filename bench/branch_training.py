"""Speed of one few-shot branch training step at full size: sampled-pixel path vs the dense first layer.

    python bench/branch_training.py --res 256 1024 --images 4 --steps 5

For each resolution: a config-f StyleGAN2 with random weights (channel_base 32768, up to 512 channels), a
10-member branch with 32 classes, ``--images`` images' features stored as the trainer stores them (float16 when
large), and one training step as ``fewshot.train_branch`` runs it (4 images x 1024 pixels, forward and backward
through the branch). Reported: seconds per step on the path the trainer uses (first layer at the sampled
pixels' bilinear taps), the same step with the dense first layer of the earlier version (every level projected
over its whole area, features converted to float32 per image), and one generator forward of the same batch of
images -- the ratio is what to compare across machines.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from editgan_core.fewshot import synthesis_features  # noqa: E402
from editgan_core.generator import Generator, GeneratorConfig  # noqa: E402
from editgan_core.runtime import tune_allocator  # noqa: E402
from editgan_core.segbranch import BranchConfig, SegBranch  # noqa: E402
from editgan_core.settings import BRANCH  # noqa: E402


def step(branch, feats, labels, imgs, R, sparse: bool, gen):
    """One optimiser step of train_branch on ``imgs`` (the trainer's loop body)."""
    per_img = BRANCH.pixels_per_step // len(imgs)
    C, K = branch.cfg.num_classes, branch.cfg.members
    for i in imgs:
        pix = torch.randint(0, R * R, (per_img,), generator=gen)
        if sparse:
            f = [t[i:i + 1] for t in feats]
            logits = branch.member_logits_at(f, pix)[0]
        else:   # the earlier version: float32 copies, every level projected over its whole area
            f = [t[i:i + 1].float() for t in feats]
            logits = branch._members(branch._project(f), pix)[0]
        loss = F.cross_entropy(logits.reshape(-1, C), labels[i, pix].repeat_interleave(K)) / len(imgs)
        loss.backward()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--no-dense", action="store_true", help="skip the earlier (dense) path")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args()
    tune_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    print("| resolution | generator forward, batch of the step's images | training step (sampled pixels) | ratio "
          "| training step (dense first layer, earlier) | speed-up |")
    print("|---|---|---|---|---|---|")
    for R in args.res:
        torch.manual_seed(0)
        G = Generator(GeneratorConfig(z_dim=512, w_dim=512, img_resolution=R, channel_base=32768,
                                      channel_max=512)).eval().requires_grad_(False)
        ws = G.mapping_ws(torch.randn(args.images, 512))
        feats = synthesis_features(G, ws)
        labels = torch.randint(0, 32, (args.images, R * R))
        cfg = BranchConfig(G.feature_channels(), G.feature_resolutions(), R, [f"c{i}" for i in range(32)],
                           [(i, 2 * i, 3 * i) for i in range(32)])
        branch = SegBranch(cfg).train()
        imgs = list(range(min(4, args.images)))
        with torch.no_grad():
            G.synthesis(ws[:len(imgs)])
            t = []
            for _ in range(3):
                t0 = time.perf_counter()
                G.synthesis(ws[:len(imgs)])
                t.append(time.perf_counter() - t0)
        fwd = statistics.median(t)
        gen = torch.Generator().manual_seed(0)
        res = {}
        for sparse in ([True] if args.no_dense else [True, False]):
            step(branch, feats, labels, imgs, R, sparse, gen)      # warm-up
            t = []
            for _ in range(args.steps):
                t0 = time.perf_counter()
                step(branch, feats, labels, imgs, R, sparse, gen)
                t.append(time.perf_counter() - t0)
            res[sparse] = statistics.median(t)
        dense = f"{res[False]:.2f} s | {res[False] / res[True]:.1f}x" if False in res else "- | -"
        print(f"| {R} | {fwd:.2f} s | {res[True]:.2f} s | {res[True] / fwd:.2f}x | {dense} |", flush=True)
        del G, feats


if __name__ == "__main__":
    main()
