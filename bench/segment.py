"""Dense segmentation of one image (the branch's labels of every pixel, what `segment` and exports run), at 256 and
512 px, against a bare generator pass.

    python bench/segment.py                         # this checkout
    python bench/segment.py --tree /path/to/other   # another checkout's editgan_core, for a before/after

Random weights (seed 0) in the NVIDIA paper256 and config-f layouts, a random 12-class branch with the paper's
ensemble (10 members, 128-32 hidden), batch 1, torch threads as given.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tree", type=Path, default=ROOT, help="checkout whose editgan_core is measured")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    sys.path.insert(0, str(args.tree))
    sys.path.insert(1, str(ROOT))
    import torch

    from bench.generator import CONFIGS
    from editgan_core import Generator, GeneratorConfig
    from editgan_core.models.segbranch import BranchConfig, SegBranch

    torch.set_num_threads(args.threads)
    print(f"editgan_core from {args.tree}; {torch.get_num_threads()} threads")
    for name in ["paper256", "f512"]:
        torch.manual_seed(0)
        G = Generator(GeneratorConfig(**CONFIGS[name])).eval().requires_grad_(False)
        cfg = BranchConfig(G.feature_channels(), G.feature_resolutions(), G.img_resolution,
                           [f"c{i}" for i in range(12)], [(i * 20, 0, 0) for i in range(12)])
        b = SegBranch(cfg).eval()
        ws = G.mapping_ws(torch.randn(1, G.z_dim))
        with torch.no_grad():
            _, feats = G.synthesis(ws, return_features=True)
            b.predict(feats)                                     # warm-up
            t = time.perf_counter()
            b.predict(feats)
            tp = time.perf_counter() - t
            t = time.perf_counter()
            G.synthesis(ws)
            tg = time.perf_counter() - t
        print(f"{name} ({G.img_resolution} px): dense segmentation {tp:.2f} s = {tp / tg:.1f} bare passes "
              f"({tg:.2f} s)", flush=True)


if __name__ == "__main__":
    main()
