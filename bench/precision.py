"""The bf16 fast path (editgan_core/models/fast.py) against float32: speed and image difference, at 64 to 1024 px.

    python bench/precision.py                       # the built-in model (64 px) and paper256 / f512 stand-ins
    python bench/precision.py --batches 1 8 --repeats 10
    python bench/precision.py --res 1024 --batches 1      # a slider move at 1024 px (config-f)

64 px: the built-in ToyFaces generator (trained weights), 32 samples at psi 0.7. 256 / 512 px: NVIDIA 'paper256'
and config-f layouts with random weights (seed 0): no trained weights can be downloaded here; the bench says so
in its output. The bf16 figures are what fast_synthesis runs (the bf16 copy, activation scaling, float32 out).
Each (resolution, batch) times float32 and bf16 alternately in one process (so machine noise hits
both alike) and reports the median speed-up; PSNR is of the uint8 images (what the app shows), over 8 images.
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

from bench.generator import CONFIGS  # noqa: E402
from editgan_core import Generator, GeneratorConfig  # noqa: E402
from editgan_core.models.fast import bf16_synthesis, cpu_has_bf16  # noqa: E402
from editgan_core.models.generator import images_to_uint8  # noqa: E402
from editgan_core.runtime import configure_threads, tune_allocator  # noqa: E402


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def generator(res: int):
    if res == 64:
        from editgan_core.loaders.hub import load_model

        return load_model("toyfaces").G.eval().requires_grad_(False), "ToyFaces (trained)"
    name = {256: "paper256", 512: "f512", 1024: "f1024"}[res]
    config = CONFIGS.get(name) or dict(CONFIGS["f512"], img_resolution=res)     # config-f at 1024 px (FFHQ)
    torch.manual_seed(0)
    return Generator(GeneratorConfig(**config)).eval().requires_grad_(False), f"{name} (random weights)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", type=int, nargs="+", default=[64, 256, 512])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--repeats", type=int, default=6)
    p.add_argument("--threads", default=None, help="torch threads (default: auto, editgan_core/runtime.py)")
    args = p.parse_args()
    tune_allocator()
    configure_threads(args.threads)
    print(f"CPU bf16 instructions (avx512_bf16 / amx_bf16): {'yes' if cpu_has_bf16() else 'NO'}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if not cpu_has_bf16():
        print("this CPU has no bf16 dot products: the app keeps float32 here (editgan_core/models/fast.py); the figures "
              "below show what bf16 would cost")
    print("| model | batch | float32 ms/img | bf16 ms/img | speed-up | PSNR bf16 vs float32 (8 images) |")
    print("|---|---|---|---|---|---|")
    for res in args.res:
        G, label = generator(res)
        fast = bf16_synthesis(G)
        psi = 0.7
        ws_all = G.mapping_ws(torch.randn(max(args.batches + [8]), G.z_dim, generator=torch.Generator().manual_seed(1)),
                              truncation_psi=psi)
        with torch.no_grad():
            a = images_to_uint8(G.synthesis(ws_all[:8])).numpy()
            b = images_to_uint8(fast(ws_all[:8].to(torch.bfloat16), fused=False).float()).numpy()
        quality = statistics.median(psnr(x, y) for x, y in zip(a, b))
        for batch in args.batches:
            ws = ws_all[:batch]
            t32, t16 = [], []
            with torch.no_grad():
                G.synthesis(ws), fast(ws.to(torch.bfloat16), fused=False)          # warm-up
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    G.synthesis(ws)
                    t32.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    fast(ws.to(torch.bfloat16), fused=False).float()
                    t16.append(time.perf_counter() - t)
            m32, m16 = statistics.median(t32) / batch, statistics.median(t16) / batch
            print(f"| {res} px {label} | {batch} | {m32 * 1e3:.1f} | {m16 * 1e3:.1f} | {m32 / m16:.2f}x | "
                  f"{quality:.1f} dB |", flush=True)


if __name__ == "__main__":
    main()
