"""Few-shot branch training at full size: the cost of a step, and the memory of a whole training run.

    python bench/branch_training.py --res 256 512 1024 --images 4 --steps 5     # a step: in memory vs the store
    python bench/branch_training.py --memory --res 512 --images 4 16 64        # peak RSS of train_branch

For each resolution: a config-f StyleGAN2 with random weights (channel_base 32768, up to 512 channels), a
10-member branch with 32 classes.

Step mode: ``--images`` images' features, and one training step as ``fewshot.train_branch`` runs it (4 images x
1024 pixels, forward and backward through the branch), read two ways on the same pixels: from features held in
memory (float16 when large: the trainer before issue #20) and from the trainer's disk store (``FeatureStore``: each
step maps its images' files and reads the rows it needs). Also one generator forward of the same images: the ratio
is what to compare across machines.

Memory mode: each (resolution, images) pair in a fresh process: the model, ``train_branch`` over that many
labelled images for ``--steps`` steps (evaluated once, at the end), and the process's peak RSS (ru_maxrss) with
the model alone and after training; seconds to write the store and per step.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from editgan_core.pipeline.fewshot import FeatureStore, synthesis_features, train_branch  # noqa: E402
from editgan_core.models.generator import Generator, GeneratorConfig  # noqa: E402
from editgan_core.runtime import tune_allocator  # noqa: E402
from editgan_core.models.segbranch import BranchConfig, SegBranch  # noqa: E402
from editgan_core.settings import BRANCH  # noqa: E402


def step(branch, read, labels, imgs, R, gen):
    """One optimiser step of train_branch on ``imgs`` (the trainer's loop body); ``read(i)`` gives image i's
    features."""
    per_img = BRANCH.pixels_per_step // len(imgs)
    C, K = branch.cfg.num_classes, branch.cfg.members
    for i in imgs:
        pix = torch.randint(0, R * R, (per_img,), generator=gen)
        logits = branch.member_logits_at(read(i), pix)[0]
        loss = F.cross_entropy(logits.reshape(-1, C), labels[i, pix].repeat_interleave(K)) / len(imgs)
        loss.backward()


def config_f(R: int) -> Generator:
    torch.manual_seed(0)
    return Generator(GeneratorConfig(z_dim=512, w_dim=512, img_resolution=R, channel_base=32768,
                                     channel_max=512)).eval().requires_grad_(False)


def branch_config(G) -> BranchConfig:
    R = G.img_resolution
    return BranchConfig(G.feature_channels(), G.feature_resolutions(), R, [f"c{i}" for i in range(32)],
                        [(i, 2 * i, 3 * i) for i in range(32)])


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_run(R: int, n: int, steps: int) -> dict:
    """train_branch over n labelled images at R px, in this (fresh) process."""
    import numpy as np

    G = config_f(R)
    ws = G.mapping_ws(torch.randn(n, 512, generator=torch.Generator().manual_seed(1)))
    masks = np.random.default_rng(0).integers(0, 32, (n, R, R), dtype=np.uint8)
    model = peak_mib()
    cfg = branch_config(G)
    t0 = time.perf_counter()
    _, report = train_branch(G, ws, masks, cfg.class_names, cfg.palette, max_steps=steps, eval_every=steps)
    return {"res": R, "images": n, "steps": report.steps, "model_peak_mib": round(model),
            "peak_mib": round(peak_mib()), "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--images", type=int, nargs="+", default=[4])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--memory", action="store_true", help="peak RSS of whole training runs (fresh processes)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--one", nargs=2, type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    tune_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        print("RESULT " + json.dumps(memory_run(*args.one, args.steps)), flush=True)
        return
    if args.memory:
        print("| resolution | labelled images | steps | model alone: peak RSS | training: peak RSS | wall s |")
        print("|---|---|---|---|---|---|")
        for R in args.res:
            for n in args.images:
                cmd = [sys.executable, __file__, "--one", str(R), str(n), "--steps", str(args.steps),
                       "--threads", str(args.threads)]
                out = subprocess.run(cmd, capture_output=True, text=True)
                line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
                if line is None:
                    raise SystemExit(f"{R} px, {n} images failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
                r = json.loads(line[7:])
                print(f"| {R} | {n} | {r['steps']} | {r['model_peak_mib']} MiB | {r['peak_mib']} MiB "
                      f"| {r['seconds']} |", flush=True)
        return
    n = args.images[0]
    print("| resolution | generator forward, batch of the step's images | step, features in memory (before) "
          "| step / forward | step, disk store (now) | step / forward | store / memory |")
    print("|---|---|---|---|---|---|---|")
    for R in args.res:
        G = config_f(R)
        ws = G.mapping_ws(torch.randn(n, 512))
        feats = synthesis_features(G, ws)
        labels = torch.randint(0, 32, (n, R * R))
        branch = SegBranch(branch_config(G)).train()
        imgs = list(range(min(4, n)))
        with torch.no_grad():
            G.synthesis(ws[:len(imgs)])
            t = []
            for _ in range(3):
                t0 = time.perf_counter()
                G.synthesis(ws[:len(imgs)])
                t.append(time.perf_counter() - t0)
        fwd = statistics.median(t)
        res = {}
        with FeatureStore(G, ws, half=feats[0].dtype == torch.float16) as store:
            readers = {"memory": lambda i: [t[i:i + 1] for t in feats], "store": store.image}
            for _ in range(args.steps):       # alternated, so both see the machine in the same state
                for name, read in readers.items():
                    gen = torch.Generator().manual_seed(len(res.get(name, [])))
                    t0 = time.perf_counter()
                    step(branch, read, labels, imgs, R, gen)
                    res.setdefault(name, []).append(time.perf_counter() - t0)
        mem, disk = statistics.median(res["memory"][1:]), statistics.median(res["store"][1:])
        print(f"| {R} | {fwd:.2f} s | {mem:.3f} s | {mem / fwd:.2f}x | {disk:.3f} s | {disk / fwd:.2f}x "
              f"| {disk / mem:.2f}x |", flush=True)
        del G, feats


if __name__ == "__main__":
    main()
