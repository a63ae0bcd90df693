"""Commands about photos and latents: embed, segment."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..models.generator import images_to_uint8
from ..models.segbranch import segment
from ..pipeline.embed import save_tuning
from ..scale import engine
from ..storage.identity import model_identity
from ..storage.latents import photo_record, save_latent
from ..storage.masks import encode_mask
from .common import (LATENT_SUFFIX, TUNING_SUFFIX, branch_for, distance_for, editing_args, embed_images, embed_photo,
                     embed_steps, encoder_for, generator_for, is_latent_file, job_done, latent_stem, load, read_latent,
                     save_png)


def cmd_embed(args: argparse.Namespace) -> int:
    """Every image embedded, on the batch engine (one process, or each torchrun rank its share); the latent is
    written last, so a rerun with the same settings skips the images already embedded."""
    r = engine.ranks()
    loaded = load(args)
    ident = model_identity(loaded)
    out = Path(args.out)
    items = engine.named_items((path.stem, path) for path in map(Path, args.images))
    engine.claim(out, {"command": "embed", "model": args.model, "generator": ident.get("sha256"),
                       "steps": args.steps, "tune": args.tune, "cut": args.cut, "fit": args.fit,
                       "encoder": args.encoder, "perceptual": args.perceptual})
    enc, dist = encoder_for(loaded, args.encoder), distance_for(loaded, args.perceptual)

    def process(item):
        path, prep, res, dname, tuning = embed_photo(loaded, item.value, args, enc, dist)
        extra = {}
        if tuning is not None:
            extra["tuning"] = save_tuning(out / f"{item.key}{TUNING_SUFFIX}", tuning, ident).name
            extra["tuned_psnr"] = round(tuning.psnr, 2)
        save_png(out / f"{item.key}_input.png", prep.array)
        recon = res.image if tuning is None else tuning.G.synthesis(res.ws)
        save_png(out / f"{item.key}_recon.png", images_to_uint8(recon)[0].cpu().numpy())
        latent = save_latent(out / f"{item.key}{LATENT_SUFFIX}", res.ws, ident,
                             {"source": path.name, "steps": res.steps, "psnr": round(res.psnr.item(), 2),
                              "perceptual": dname, "prepare": prep.note,
                              **photo_record(prep.crop, prep.original_size, path), **extra})
        psnr = res.psnr.item() if tuning is None else tuning.psnr
        print(f"{latent}  PSNR {psnr:.2f} dB  ({res.seconds + (tuning.seconds if tuning else 0):.1f} s)")

    summary = engine.run(items, process, lambda it: (out / f"{it.key}{LATENT_SUFFIX}").is_file(), out,
                         desc="images", threads=args.threads)
    job_done(summary, r)
    return 0


def cmd_segment(args: argparse.Namespace) -> int:
    loaded = load(args)
    branch = branch_for(loaded, args.branch)
    src = Path(args.input)
    ident = model_identity(loaded)
    if is_latent_file(src.name):     # rendered as edit and apply render it: with its photo's tuning, if any
        ws, meta = read_latent(src, ident, meta=True)
        G = generator_for(loaded, src, meta, ident)
        stem = latent_stem(src.name)
    else:
        _, _, res, _, tuning = next(iter(embed_images(loaded, [src], args)))
        ws, G = res.ws, loaded.G if tuning is None else tuning.G
        stem = src.stem
    if len(ws) > 1:
        print(f"note: {src.name} holds {len(ws)} latents; segmenting the first", file=sys.stderr)
    labels = segment(G, branch, ws[:1])[0]
    out = save_png(Path(args.out) if args.out else Path(f"{stem}_mask.png"), encode_mask(labels, branch.cfg.palette))
    present = [branch.cfg.class_names[c] for c in sorted(set(labels.ravel().tolist()))]
    print(f"{out}: classes {', '.join(present)}")
    return 0


def add_parsers(sub, fmt) -> None:
    """The embed, segment subcommands, their options beside the code above."""
    e = sub.add_parser("embed", help="embed images into W+ (latent file + what the model sees + reconstruction)",
                       formatter_class=fmt)
    e.add_argument("images", nargs="+", help="image files (any size or mode)")
    e.add_argument("--out", default="embedded", help="output folder (NAME.latent.safetensors, NAME_input.png, "
                   "NAME_recon.png)")
    editing_args(e)
    embed_steps(e)
    e.set_defaults(func=cmd_embed, writes="folder")

    s = sub.add_parser("segment", help="segment a latent or an image into a palette mask PNG", formatter_class=fmt)
    s.add_argument("input", help="a latent file (.latent.safetensors / .npy) or an image (embedded first)")
    s.add_argument("--out", default=None, help="mask PNG to write (default: NAME_mask.png in this folder)")
    s.add_argument("--branch", default=None, help="branch file (default: the model's branch.safetensors)")
    editing_args(s)
    embed_steps(s)
    s.set_defaults(func=cmd_segment, writes="file")
