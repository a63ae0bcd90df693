"""Commands that edit: edit (a mask edit -> an editing vector) and apply (vectors on latents or photos)."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import glob
import math
import os
import sys
from pathlib import Path
from typing import List, Tuple

import numpy as np

from ..errors import CLIError, EditGANError
from ..loaders.assets import vector_folders
from ..models.generator import images_to_uint8
from ..pipeline.apply import apply_vectors
from ..pipeline.editing import edit_from_mask
from ..scale import engine
from ..settings import EDIT, REFINE, check_scale
from ..storage import files
from ..storage.identity import model_identity
from ..storage.imageio import open_image
from ..storage.masks import decode_mask, encode_mask
from ..storage.vectors import check_name, file_stem, library_dir, list_library, load_vector, save_vector
from .common import (EMBED_SIDE_SUFFIXES, IMAGE_EXTS, LATENT_SUFFIX, SIDE_SUFFIXES, STEPS, about, branch_for,
                     branch_or_none, common, distance_for, editing_args, embed_photo, embed_steps, encoder_for,
                     first_missing, generator_for, hand_back_to_photo, is_latent_file, job_done, latent_stem, load,
                     photo_of, prog_name, read_latent, remove_empty, save_png)


def cmd_edit(args: argparse.Namespace) -> int:
    name = check_name(args.name)     # before any work: a bad name must not cost an optimisation
    loaded = load(args)
    ident = model_identity(loaded)
    out = Path(args.out) if args.out else library_dir(ident)
    _check_new_vector(loaded, ident, name, out, args.overwrite)
    branch = branch_for(loaded, args.branch)
    ws, meta = read_latent(args.latent, ident, meta=True)
    source = photo_of(meta, Path(args.latent).name)
    G = generator_for(loaded, args.latent, meta, ident)
    R = G.img_resolution
    with about(args.mask):
        m = open_image(args.mask).convert("RGBA")
    if m.size != (R, R):
        raise CLIError(f"{args.mask}: the mask is {m.size[0]}x{m.size[1]}; this model needs {R}x{R} (a mask from "
                       f"segment, repainted)")
    arr = np.asarray(m)
    labels, msg = decode_mask(arr[..., :3], branch.cfg.palette, alpha=arr[..., 3])
    if msg:
        print(f"note: {args.mask}: {msg}", file=sys.stderr)

    def progress(step, steps, loss, img):
        if step == steps or step % max(1, steps // 10) == 0:
            print(f"  step {step}/{steps} loss {loss:.4f}", file=sys.stderr)

    with about(args.mask):
        res = edit_from_mask(G, branch, ws[:1], labels, name=name, generator=ident, steps=args.steps,
                             progress=progress, work_resolution=0 if args.exact else EDIT.work_resolution)
    for line in res.notes:
        print(f"note: {line}", file=sys.stderr)
    fidelity = meta.get("tuned_psnr") if G is not loaded.G else meta.get("psnr")
    if fidelity is not None:          # the embedding's fidelity to its photo, recorded by embed
        res.quality = dataclasses.replace(res.quality, embedding_psnr=float(fidelity))
    created = first_missing(out)     # main() knows --out, not the library: clean that up here
    res.vector.extra["quality"] = res.quality.as_dict()      # the readout travels with the vector (kit cards)
    try:
        path = save_vector(res.vector, out)
        stem = file_stem(name)
        handed = {}
        if source is not None:     # the photo at its own size, the model-size crop beside it
            back = hand_back_to_photo(G, branch, source, ws[:1], res.ws, res.vector.thumb_after, res.vector.classes)
            save_png(out / f"{stem}_edited.png", back.photo)
            save_png(out / f"{stem}_edited_crop.png", res.vector.thumb_after)
            handed = {"photo_changed_share": back.changed_share, "photo_blend": back.blend,
                      "photo_psnr_outside_db": None if math.isinf(back.psnr_outside) else back.psnr_outside}
        else:
            save_png(out / f"{stem}_edited.png", res.vector.thumb_after)
        save_png(out / f"{stem}_edited_mask.png", encode_mask(res.labels, branch.cfg.palette))
        files.write_json(out / f"{stem}_quality.json", {"vector": name, "classes": res.vector.classes,
                                                        "steps": res.steps, **res.quality.as_dict(), **handed,
                                                        "advice": res.quality.advice()})
    except BaseException:
        remove_empty(created)
        raise
    print(f"{path}  classes {', '.join(res.vector.classes)}  ({res.steps} steps, {res.seconds:.1f} s)")
    print(f"quality: {res.quality.summary()}")
    if res.quality.advice():
        print(f"advice: {res.quality.advice()}")
    if not args.out:
        print(f"saved in the model's library: apply it by name, e.g. {prog_name()} apply {_quoted(name)}:1 "
              f"--inputs ...")
    return 0


def _quoted(name: str) -> str:
    return f'"{name}"' if " " in name else name


def parse_vector_arg(text: str) -> Tuple[str, float]:
    """'smile:1.5' -> ('smile', 1.5); 'vectors/smile.safetensors' -> (that, 1.0); a bare name or a path."""
    ref, sep, scale = text.rpartition(":")
    if sep and ref:
        try:
            return ref, float(scale)
        except ValueError:
            pass
    return text, 1.0


def _check_new_vector(loaded, ident, name: str, out: Path, overwrite: bool) -> None:
    """A new vector's name: not a starter vector's (apply would find the starter first), and not an existing
    vector's in ``out`` unless ``overwrite``."""

    stem = file_stem(name).lower()
    for folder in vector_folders(loaded, ident):
        if folder != library_dir(ident) and any(p.stem.lower() == stem for p in folder.glob("*.safetensors")):
            raise CLIError(f"{name!r} is the name of one of this model's starter vectors (in {folder}); "
                           f"choose another --name")
    if (out / f"{file_stem(name)}.safetensors").exists() and not overwrite:
        raise CLIError(f"a vector named {name!r} is already in {out}; choose another --name, or pass --overwrite "
                       f"to replace it")


def find_vector(loaded, ident, ref: str):
    """A vector by file path, or by name (``smile``, ``bigger eyes`` or ``bigger_eyes``) in the model's folders."""

    p = Path(ref)
    if p.is_file():
        with about(p):
            return load_vector(p, expect_generator=ident)
    if p.suffix == ".safetensors" or os.sep in ref or "/" in ref:
        raise CLIError(f"no such vector file: {ref}")
    try:
        stem = file_stem(ref).lower()
    except EditGANError:
        raise CLIError(f"{ref!r} is neither a vector file nor a vector name") from None
    folders = vector_folders(loaded, ident)
    for folder in folders:
        path = folder / f"{file_stem(ref)}.safetensors"
        if path.is_file():
            with about(path):
                return load_vector(path, expect_generator=ident)
    available = []
    for folder in folders:   # names that differ from their file name, or in another case
        vecs, _ = list_library(folder, expect_generator=ident)
        for v in vecs:
            if v.name.lower() == ref.strip().lower() or file_stem(v.name).lower() == stem:
                return v
        available.append(f"  {folder}: {', '.join(sorted(v.name for v in vecs)) or '(none)'}")
    raise CLIError(f"no editing vector named {ref!r} for {ident.get('name')}; looked in\n" + "\n".join(available) +
                   "\npass one of these names (spaces or underscores) or a vector file")


def dataset_images(shards: List[Path]) -> List[Tuple[str, tuple]]:
    """The images of a datasets folder's Parquet shards, named by their ``seed`` column when it has one."""
    import pyarrow.parquet as pq  # here: only datasets inputs need pyarrow (2 s to import with datasets)

    out = []
    for shard in shards:
        with about(shard):
            table = pq.read_table(shard, columns=[c for c in ("seed", "image")
                                                  if c in pq.ParquetFile(shard).schema_arrow.names])
        if "image" not in table.column_names:
            raise CLIError(f"{shard}: a dataset to edit needs an 'image' column")
        seeds = table.column("seed").to_pylist() if "seed" in table.column_names else None
        for i in range(table.num_rows):
            name = f"seed{seeds[i]:07d}" if seeds else f"{shard.stem}-{i:06d}"
            out.append((name, (shard, i)))
    return out


@functools.lru_cache(maxsize=2)
def shard_images(shard: Path) -> list:
    import pyarrow.parquet as pq  # here: as in dataset_images

    return pq.read_table(shard, columns=["image"]).column("image").to_pylist()


def dataset_image(shard: Path, row: int) -> bytes:
    """The image bytes of one row of a Parquet shard (a datasets ``Image`` cell: {"bytes", "path"})."""
    cell = shard_images(shard)[row]
    if not isinstance(cell, dict) or not cell.get("bytes"):
        raise EditGANError(f"{shard.name} row {row}: no image bytes")
    return cell["bytes"]


def collect_inputs(text: str) -> Tuple[List[Tuple[str, Path]], List[Tuple[str, object]], List[str]]:
    """What ``apply --inputs`` works on: (latents, images, skipped), each input as (output name, path) -- from a
    file, a folder, a glob (``photos/*.jpg``) or a Hugging Face datasets folder (its Parquet shards' ``image``
    column: each image as (name, (shard, row)); see :func:`dataset_image`).

    A folder's own side files are not inputs: embed's NAME_input.png and NAME_recon.png (and the photo NAME.png)
    are the same image as NAME.latent.safetensors; segment's NAME_mask.png and edit's NAME_edited*.png are not
    pictures to edit; other EditGAN files (editing vectors, branches) are not latents."""

    src = Path(text)
    if not src.exists() and any(c in str(text) for c in "*?["):
        found = sorted(Path(p) for p in glob.glob(str(text)))
        if not found:
            raise CLIError(f"no file matches {text}")
        latents = [(latent_stem(p.name), p) for p in found if is_latent_file(p.name)]
        images = [(p.stem, p) for p in found if p.suffix.lower() in IMAGE_EXTS]
        return latents, images, [p.name for p in found if not is_latent_file(p.name)
                                 and p.suffix.lower() not in IMAGE_EXTS]
    if not src.exists():
        raise CLIError(f"no such file or folder: {src}")
    shards = sorted((src / "data").glob("*.parquet")) if src.is_dir() else []
    if shards:
        return [], dataset_images(shards), []
    if src.is_file():
        if is_latent_file(src.name):
            return [(latent_stem(src.name), src)], [], []
        return [], [(src.stem, src)], []
    latents, images, skipped = [], [], []
    entries = sorted(p for p in src.iterdir() if p.is_file() and not p.name.startswith("."))
    for p in entries:
        if p.name.endswith(".safetensors"):
            with about(p):
                kind = files.read_meta(p).get("format")
            if kind == files.LATENT.id:
                latents.append((latent_stem(p.name), p))
            else:
                skipped.append(f"{p.name} (not a latent)")
        elif p.suffix == ".npy":
            latents.append((latent_stem(p.name), p))
    latent_stems = {name for name, _ in latents}
    stems = {p.stem for p in entries if p.suffix.lower() in IMAGE_EXTS}
    for p in entries:
        if p.suffix.lower() not in IMAGE_EXTS:
            continue
        stem = p.stem
        side = next((s for s in SIDE_SUFFIXES if stem.endswith(s)), None)
        base = next((stem[:-len(s)] for s in EMBED_SIDE_SUFFIXES if stem.endswith(s)), None)
        if side:
            skipped.append(f"{p.name} (written by {'segment' if side == '_mask' else 'edit'})")
        elif stem in latent_stems:
            skipped.append(f"{p.name} (the image of {stem}{LATENT_SUFFIX})")
        elif base is not None and base in latent_stems:
            skipped.append(f"{p.name} (embed's side file of {base}{LATENT_SUFFIX})")
        elif base is not None and stem.endswith("_recon") and f"{base}_input" in stems:
            skipped.append(f"{p.name} (the reconstruction of {base}_input.png)")
        else:
            images.append((base if base is not None and base not in stems else stem, p))
    return latents, images, skipped


def cmd_apply(args: argparse.Namespace) -> int:
    """The vectors on every input, on the batch engine: one process, or each rank of a torchrun job its share;
    a rerun into the same --out finishes what is missing (NAME.png is written last, atomically)."""
    r = engine.ranks()
    loaded = load(args)
    ident = model_identity(loaded)
    G = loaded.G
    pairs = []
    for text in args.vectors:
        ref, scale = parse_vector_arg(text)
        vec = find_vector(loaded, ident, ref)
        pairs.append((vec, check_scale(vec.name, scale, vec.scale_range)))
    branch = branch_for(loaded, args.branch) if args.refine else None
    latents, images, skipped = collect_inputs(args.inputs)
    if skipped and r.rank == 0:
        print(f"note: skipped {len(skipped)} file(s) in {args.inputs}: {'; '.join(skipped)}", file=sys.stderr)
    if not latents and not images:
        raise CLIError(f"{args.inputs}: no latents (.latent.safetensors, .npy) or images to apply the vectors to")
    items = engine.named_items([(name, ("latent", where)) for name, where in latents]
                               + [(name, ("image", where)) for name, where in images])
    regions = functools.lru_cache(maxsize=None)(        # the branch that finds where an edit acts in a photo,
        lambda: branch if branch is not None else branch_or_none(loaded, args.branch))   # looked up once, if needed
    out = Path(args.out)
    engine.claim(out, {"command": "apply", "model": args.model, "generator": ident.get("sha256"),
                       "vectors": [[v.name, s] for v, s in pairs], "refine": args.refine,
                       "inputs": str(args.inputs), "items": len(items)})
    enc = encoder_for(loaded, args.encoder) if images else None
    dist = distance_for(loaded, args.perceptual) if images else None
    edited = [c for v, _ in pairs for c in v.classes]
    if r.rank == 0:
        print("applying " + ", ".join(f"{v.name} x{s:g}" for v, s in pairs), file=sys.stderr)

    def process(item):
        kind, where = item.value
        if kind == "latent":
            ws, meta = read_latent(where, ident, meta=True)
            source, g = photo_of(meta, where.name), generator_for(loaded, where, meta, ident)
        else:
            path, data = (where, None) if isinstance(where, Path) else (Path(item.key), dataset_image(*where))
            _, prep, res, _, tuning = embed_photo(loaded, path, args, enc, dist, data)
            ws, source, g = res.ws, (prep.original, prep.crop), (G if tuning is None else tuning.G)
        res = apply_vectors(g, ws[:1], pairs, branch=branch, refine_steps=args.refine)
        image = images_to_uint8(res.image)[0].cpu().numpy()
        if source is None:
            path = save_png(out / f"{item.key}.png", image)
        else:                         # the photo at its own size, the model-size crop beside it (first)
            back = hand_back_to_photo(g, regions(), source, ws[:1], res.ws, image, edited)
            save_png(out / f"{item.key}_crop.png", image)
            path = save_png(out / f"{item.key}.png", back.photo)
        print(f"{path}  ({1000 * res.seconds:.0f} ms)")

    summary = engine.run(items, process, lambda it: (out / f"{it.key}.png").is_file(), out, desc="inputs",
                         threads=args.threads)
    job_done(summary, r)
    return 0


def add_parsers(sub, fmt) -> None:
    """The edit, apply subcommands, their options beside the code above."""
    ed = sub.add_parser("edit", help="mask edit: latent + repainted mask PNG -> editing vector + edited image",
                        formatter_class=fmt)
    ed.add_argument("latent", help="latent file of the image to edit (from embed)")
    ed.add_argument("mask", help="the repainted segmentation: a PNG in the branch's palette at the model's resolution")
    ed.add_argument("--name", required=True, help="name of the editing vector (letters, digits, spaces, - and _)")
    ed.add_argument("--out", default=None, help="folder for the vector (default: the model's library, where apply "
                    "finds it by name; $EDITGAN_HOME/vectors/...)")
    ed.add_argument("--overwrite", action="store_true", help="replace a vector of the same name in --out")
    ed.add_argument("--branch", default=None, help="branch file (default: the model's)")
    ed.add_argument("--steps", type=STEPS, default=EDIT.steps, help="optimisation steps of the edit")
    ed.add_argument("--exact", action="store_true",
                    help=f"optimise at the model's full size (default: models over {EDIT.work_resolution} px optimise "
                         f"their coarse and middle layers at {EDIT.work_resolution} px, several times faster)")
    common(ed)
    ed.set_defaults(func=cmd_edit, writes="folder")

    ap = sub.add_parser("apply", help="apply editing vectors (NAME[:SCALE] or FILE[:SCALE]) to latents or images",
                        formatter_class=fmt)
    ap.add_argument("vectors", nargs="+", help="vector names (smile, \"bigger eyes\") from the model's starter "
                    "vectors and library, or vector files, each optionally with :scale (default 1)")
    ap.add_argument("--inputs", required=True, help="a folder (or one file) of latents or images")
    ap.add_argument("--out", default="applied", help="output folder (NAME.png per input)")
    ap.add_argument("--refine", type=int, default=REFINE.choices[0], choices=REFINE.choices,
                    help="refinement steps after applying")
    ap.add_argument("--branch", default=None, help="branch file for refinement (default: the model's)")
    editing_args(ap)
    embed_steps(ap)
    ap.set_defaults(func=cmd_apply, writes="folder")
