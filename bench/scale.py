"""Scale (issue #25): `editgan dataset` items per second as 1 process x 2 threads and as 2 torchrun ranks x 1
thread on this machine, for the built-in model and a 256-px stand-in (random weights, a random 10-member branch
over 19 classes beside it), with each run's peak RSS (GNU time: the largest process of the run); then the
GPU-free costs per image (PNG encoding, Parquet writing) that the cost model on paper needs.

    python bench/scale.py
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def stand_in_256(folder: Path) -> Path:
    """A native 256-px model folder with a random branch beside it (bound to its identity)."""
    from editgan_core.loaders.checkpoints import save_native
    from editgan_core.loaders.hub import load_model
    from editgan_core.models.segbranch import save_branch
    from editgan_core.storage.identity import model_identity
    from fakes import standins

    save_native(standins.full_size_generator(256), folder)
    ident = model_identity(load_model(str(folder)))
    branch = standins.random_face_branch(load_model(str(folder)).G)
    branch.cfg.generator = ident
    save_branch(branch, folder / "branch.safetensors")
    return folder


def run(model: str, seeds: str, out: Path, ranks: int) -> dict:
    job = ["-m", "editgan_core", "dataset", "--model", model, "--seeds", seeds, "--chunk", "8", "--out", str(out)]
    cmd = ["/usr/bin/time", "-f", "PEAK %M", sys.executable]
    cmd += (["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks)] + job if ranks > 1
            else job + ["--threads", "2"])
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(p.stderr[-3000:])
    m = re.search(r"(\d+) items: (\d+) made now.*?; ([\d.]+) s on (\d+) rank", p.stderr)
    rows = int(re.search(r"(\d+) rows in", p.stdout).group(1))
    return {"rows": rows, "loop_s": float(m.group(3)), "wall_s": wall,
            "peak_mib": int(re.search(r"PEAK (\d+)", p.stderr).group(1)) / 1024}


def overheads(res: int, n: int = 64) -> dict:
    """Seconds per image of what is not the generator: PNG-encoding an image and its mask, writing the shard."""
    from editgan_core.scale.dataset import png, write_shard

    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (n, res, res, 3), dtype=np.uint8)
    masks = rng.integers(0, 19, (n, res, res), dtype=np.uint8)
    t0 = time.perf_counter()
    rows = {"seed": list(range(n)), "truncation": [0.7] * n,
            "image": [{"bytes": png(i), "path": None} for i in imgs], "mask": [{"bytes": png(m), "path": None}
                                                                           for m in masks]}
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        write_shard(Path(d) / "s.parquet", rows, 14, 512)
    t2 = time.perf_counter()
    return {"png_s": (t1 - t0) / n, "parquet_s": (t2 - t1) / n}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    os.environ["EDITGAN_HOME"] = str(work / "home")
    m256 = stand_in_256(work / "m256")
    print("| model | items | 1 process x 2 threads | 2 ranks x 1 thread | speed-up | peak RSS (1 / 2) |")
    print("|---|---|---|---|---|---|")
    for name, model, seeds, n in (("built-in 64 px", "toyfaces", "0-511", 512), ("256-px stand-in", str(m256),
                                                                                  "0-47", 48)):
        one = run(model, seeds, work / f"{name[:3]}-1", 1)
        two = run(model, seeds, work / f"{name[:3]}-2", 2)
        assert one["rows"] == two["rows"] == n
        a, b = n / one["loop_s"], n / two["loop_s"]
        print(f"| {name} | {n} | {a:.1f} items/s ({one['loop_s']:.1f} s; {one['wall_s']:.1f} s with start-up) "
              f"| {b:.1f} items/s ({two['loop_s']:.1f} s; {two['wall_s']:.1f} s) | {b / a:.2f}x "
              f"| {one['peak_mib']:.0f} / {two['peak_mib']:.0f} MiB |", flush=True)
    for res in (256, 1024):
        o = overheads(res, 64 if res == 256 else 16)
        print(f"GPU-free work per image at {res} px: PNG image + mask {1000 * o['png_s']:.1f} ms, Parquet "
              f"{1000 * o['parquet_s']:.1f} ms")


if __name__ == "__main__":
    main()
