"""Render ToyFaces sets in parallel: images, masks and attribute vectors for ranges of seeds.

Seed ranges are kept disjoint by use (see SEEDS): the GAN trains on seeds from 0, the judge on seeds from
10,000,000, and every evaluation draws from 20,000,000 upwards, so no score is measured on training data.
The annotated renders of the branch (and of the editing benchmark's vectors) start at 30,000,000, the encoder's
renders at 40,000,000 and the ToyFaces parser's (toyfaces/parser.py) at 50,000,000. Each use draws fewer than
SEED_SPAN seeds from its start (the benchmarks' offsets of SEEDS['eval'] go up to +500,000 and some hundreds),
so the ranges [start, start + SEED_SPAN) never overlap (tests/test_toyfaces.py checks it).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
from typing import Iterable, Tuple

import numpy as np

from ..storage import files
from .render import render_seed

SEEDS = {"gan_train": 0, "judge_train": 10_000_000, "eval": 20_000_000, "annotated": 30_000_000,
         "encoder_train": 40_000_000, "parser": 50_000_000}
SEED_SPAN = 10_000_000   # every use draws fewer seeds than this from its start


def _one(args: Tuple[int, int, int]):
    seed, res, supersample = args
    img, mask, p = render_seed(seed, res, supersample=supersample)
    return img, mask, p.vector()


def render_set(seeds: Iterable[int], res: int, *, workers: int = 2, supersample: int = 4
               ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> images uint8 [N, res, res, 3], masks uint8 [N, res, res], attributes float32 [N, A]."""
    jobs = [(int(s), res, supersample) for s in seeds]
    if workers > 1 and len(jobs) > 64:
        with mp.get_context("fork").Pool(workers) as pool:
            out = pool.map(_one, jobs, chunksize=64)
    else:
        out = [_one(j) for j in jobs]
    imgs = np.stack([o[0] for o in out])
    masks = np.stack([o[1] for o in out])
    attrs = np.stack([o[2] for o in out])
    return imgs, masks, attrs


def render_images(seeds: Iterable[int], res: int, *, workers: int = 2) -> np.ndarray:
    return render_set(seeds, res, workers=workers)[0]


def main(argv=None) -> int:
    """``python -m editgan_core.toyfaces.dataset --res 64 --n 30000 --out data.npy``: ToyFaces renders of seeds
    0..n-1 as one uint8 [n, res, res, 3] array, the GAN trainer's ``--data``."""
    p = argparse.ArgumentParser(prog="python -m editgan_core.toyfaces.dataset", description=main.__doc__)
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--n", type=int, default=30000)
    p.add_argument("--out", required=True)
    p.add_argument("--workers", type=int, default=2, help="rendering processes")
    args = p.parse_args(argv)
    imgs = render_images(range(args.n), args.res, workers=args.workers)

    def write(path):
        with open(path, "wb") as f:
            np.save(f, imgs)
    files.atomic_write(args.out, write)
    print(f"{args.out}: {imgs.shape}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
