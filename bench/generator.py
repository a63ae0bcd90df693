"""Generator speed and memory: ms per image at batch 1 and 8, peak memory, CPU (and CUDA when present).

    python bench/generator.py                 # both configs, CPU (+ CUDA if available), markdown table
    python bench/generator.py --configs f512 --batches 1 --repeats 5

Random weights (seed 0), W+ from the mapping of random z, const noise, float32. Each (config, device, batch)
runs in its own subprocess so that its peak resident memory is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONFIGS = {
    # NVIDIA 'paper256' (fmaps 0.5): channel_base 16384, 8 mapping layers.
    "paper256": dict(img_resolution=256, channel_base=16384, channel_max=512, mapping_layers=8, conv_clamp=256),
    # StyleGAN2 config-f at 512 px (e.g. LSUN cars, AFHQ): channel_base 32768.
    "f512": dict(img_resolution=512, channel_base=32768, channel_max=512, mapping_layers=8, conv_clamp=256),
}
# Official NVIDIA code running its reference ops on these 2 cores (figures quoted in issue #2).
OFFICIAL_CPU_MS = {"paper256": 240.0, "f512": 1000.0}


def run_one(config: str, device: str, batch: int, repeats: int, fp16: bool) -> dict:
    import torch

    from editgan_core import Generator, GeneratorConfig
    from editgan_core.runtime import tune_allocator

    tune_allocator()
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(**CONFIGS[config])).eval().requires_grad_(False).to(device)
    ws = G.mapping_ws(torch.randn(batch, G.z_dim, device=device))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times, singles = [], []
    with torch.no_grad():
        for i in range(repeats + 1):
            sync()
            t0 = time.perf_counter()
            G.synthesis(ws, fp16=fp16)
            sync()
            t1 = time.perf_counter()
            if batch > 1:  # the same images one by one, interleaved so that machine noise hits both alike
                for j in range(batch):
                    G.synthesis(ws[j:j + 1], fp16=fp16)
                sync()
            t2 = time.perf_counter()
            if i:  # first run is warm-up
                times.append(t1 - t0)
                singles.append(t2 - t1)
    out = {"config": config, "device": device, "batch": batch, "fp16": fp16,
           "ms_per_image": 1000 * statistics.median(times) / batch,
           "ms_per_image_min": 1000 * min(times) / batch,
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "params": G.num_parameters(),
           "batch_vs_singles": (sum(times) / sum(singles)) if batch > 1 else None}
    if device == "cuda":
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
        out["gpu"] = torch.cuda.get_device_name()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    p.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up (median reported)")
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_one(**json.loads(args.one))))
        return
    import torch

    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    rows = []
    for device in devices:
        for fp16 in ([False, True] if device == "cuda" else [False]):
            for config in args.configs:
                for batch in args.batches:
                    spec = dict(config=config, device=device, batch=batch, repeats=args.repeats, fp16=fp16)
                    res = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True,
                                         text=True, check=True, cwd=ROOT)
                    rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
                    print(rows[-1], file=sys.stderr)
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}\n")
    print("| config | device | batch | ms / image (median) | vs official CPU batch 1 | batch / same images one by one "
          "| peak RSS MiB | peak CUDA MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ref = OFFICIAL_CPU_MS.get(r["config"]) if r["device"] == "cpu" else None
        ratio = f"{r['ms_per_image'] / ref:.2f}x" if ref else "-"
        dev = r["device"] + (" fp16" if r["fp16"] else "")
        bvs = f"{r['batch_vs_singles']:.2f}" if r["batch_vs_singles"] else "-"
        print(f"| {r['config']} | {dev} | {r['batch']} | {r['ms_per_image']:.1f} | {ratio} | {bvs} | "
              f"{r['peak_rss_mib']:.0f} | {r.get('peak_cuda_mib', 0):.0f} |")


if __name__ == "__main__":
    main()
