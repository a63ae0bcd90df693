"""Build the default model's companions: the encoder and the few-shot segmentation branch.

    python -m editgan_core.toyfaces.build_assets encoder --minutes 12     # -> checkpoints/toyfaces/encoder.safetensors
    python -m editgan_core.toyfaces.build_assets branch                   # -> checkpoints/toyfaces/branch.safetensors

The encoder trains on generator samples (latent + image loss) and on ToyFaces renders (image loss), seeds from
SEEDS['encoder_train']. The branch follows the paper: exactly 16 annotated renders (seeds SEEDS['annotated']
onwards, image + exact mask) are embedded (encoder + optimisation, as any user photo would be) and the branch
trains on the generator's features of those embeddings. The judge is never used.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from ..loaders.hub import load_model
from ..loaders.registry import CHECKPOINTS_DIR, DEFAULT_MODEL, REGISTRY
from ..models.segbranch import save_branch
from ..pipeline.embed import load_encoder, save_encoder, train_encoder
from ..pipeline.fewshot import train_branch_on_images
from ..runtime import tune_allocator
from ..storage.identity import model_identity
from .dataset import SEEDS, render_set
from .palette import CLASSES

MODEL_DIR = CHECKPOINTS_DIR / (REGISTRY[DEFAULT_MODEL].local_dir or "toyfaces")
N_ANNOTATED = 16


def _load():
    loaded = load_model(DEFAULT_MODEL)
    loaded.G.eval()
    return loaded, model_identity(loaded)


def build_encoder(minutes: float, steps: int, batch: int) -> None:
    loaded, ident = _load()
    G = loaded.G
    t0 = time.time()
    imgs, _, _ = render_set(range(SEEDS["encoder_train"], SEEDS["encoder_train"] + 5000), G.img_resolution)
    enc = train_encoder(G, steps=steps, batch=batch, real_images=imgs, minutes=minutes,
                        log=lambda r: print(json.dumps(r), flush=True))
    save_encoder(enc, MODEL_DIR / "encoder.safetensors", ident,
                 {"training": {"steps": steps, "batch": batch, "renders": len(imgs),
                               "minutes": round((time.time() - t0) / 60, 1)}})
    print(f"wrote {MODEL_DIR / 'encoder.safetensors'}")


def annotated_set(res: int):
    seeds = range(SEEDS["annotated"], SEEDS["annotated"] + N_ANNOTATED)
    return render_set(seeds, res)


def build_branch(steps: int, max_steps: int) -> None:
    loaded, ident = _load()
    G = loaded.G
    imgs, masks, _ = annotated_set(G.img_resolution)
    enc = load_encoder(MODEL_DIR / "encoder.safetensors", expect_generator=ident)
    target = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1
    branch, report, res = train_branch_on_images(G, target, masks, [n for n, _ in CLASSES], [c for _, c in CLASSES],
                                                 encoder=enc, embed_steps=steps, generator_id=ident,
                                                 max_steps=max_steps,
                                                 progress=lambda r: print(json.dumps(r), flush=True))
    print(f"embedded {len(imgs)} annotated renders: PSNR {res.psnr.mean():.2f} dB", flush=True)
    save_branch(branch, MODEL_DIR / "branch.safetensors",
                extra={"training": {"annotated_images": N_ANNOTATED, "seeds": f"{SEEDS['annotated']}+0..15",
                                    "embed_steps": steps, "val_miou": round(report.val_miou, 4),
                                    "steps": report.steps, "best_step": report.best_step,
                                    "seconds": round(report.seconds, 1)}})
    print(json.dumps({"val_miou": report.val_miou, "per_class": report.per_class_iou, "steps": report.steps}))
    print(f"wrote {MODEL_DIR / 'branch.safetensors'}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m editgan_core.toyfaces.build_assets", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    e = sub.add_parser("encoder")
    e.add_argument("--minutes", type=float, default=12)
    e.add_argument("--steps", type=int, default=4000)
    e.add_argument("--batch", type=int, default=16)
    b = sub.add_parser("branch")
    b.add_argument("--steps", type=int, default=100, help="embedding steps per annotated image")
    b.add_argument("--max-steps", type=int, default=1000)
    args = p.parse_args(argv)

    tune_allocator()
    torch.manual_seed(0)
    np.random.seed(0)
    if args.what == "encoder":
        build_encoder(args.minutes, args.steps, args.batch)
    else:
        build_branch(args.steps, args.max_steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
