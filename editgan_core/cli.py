"""Command line: ``editgan {generate,info,convert,list,embed,segment,label,train-branch,edit,apply} ...``
(the same as ``python -m editgan_core ...``).

Arguments are parsed only in :func:`main`; every command is a thin wrapper over the pipeline functions of
:mod:`editgan_core` (``generate``, ``segment``, ``embed``, ``train_branch_on_images``, ``edit_from_mask``,
``apply_vectors``, ``label_images``) and takes its defaults from :mod:`editgan_core.settings`.

Every error a user can cause exits with status 2 and one line ``error: ...`` that names the file involved; a
command that fails leaves no empty output folder behind (folders are made when the first file is written, and
one the command made is removed again if it is still empty).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

from . import files
from .errors import CLIError, EditGANError
from .settings import BRANCH, EDIT, EMBED, LABEL, PIVOTAL, REFINE, SAMPLE

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
LATENT_SUFFIX = ".latent.safetensors"
TUNING_SUFFIX = ".tuning.safetensors"       # embed --tune: the photo's pivotal tuning, beside its latent
# PNGs the CLI writes beside its results, never inputs of their own: segment's NAME_mask.png, edit's
# NAME_edited.png and NAME_edited_mask.png. (embed's NAME_input.png / NAME_recon.png go with NAME's latent.)
SIDE_SUFFIXES = ("_mask", "_edited", "_edited_mask", "_edited_crop", "_crop")
EMBED_SIDE_SUFFIXES = ("_input", "_recon")
CLASSES_FILE = "classes.json"      # [{"name", "color"}] of a folder's masks: label writes it, train-branch reads it
CLASS_MAP_FILE = "class_map.json"  # the class map label used: edit it and pass it back as --map

EPILOG = """examples (the built-in ToyFaces model unless --model says otherwise):
  {prog} generate --seeds 0-7 --truncation 0.7 --out samples
  {prog} generate --model hf://hysts/StyleGAN2/models/stylegan2-ffhq-1024x1024.pkl --seeds 42
  {prog} generate --model ./stylegan2-cifar10-32x32.pkl --seeds 0-3 --class 5
  {prog} info ./network-snapshot-000500.pkl
  {prog} convert ./stylegan2-car-config-f.pt ./car-native/
  {prog} list
  {prog} embed samples/seed0001.png --out embedded    # -> seed0001.latent.safetensors + _input/_recon PNGs
  {prog} segment embedded/seed0001.latent.safetensors  # -> seed0001_mask.png
  {prog} edit embedded/seed0001.latent.safetensors repainted.png --name "wider mouth"   # -> the model's library
  {prog} apply smile:1.5 "wider mouth":1 --inputs embedded --out smiling   # vectors by name or by file
  {prog} label --model ffhq-256 --n 16 --out labelled     # samples + masks from the registry's face parser
  {prog} label --model ./my-model --labeler hf://org/parser --inputs photos --map map.json --out labelled
  {prog} train-branch annotated/ --out my-branch.safetensors               # NAME.png + NAME_mask.png pairs
"""


def _number(what: str, lo=None, hi=None, integer: bool = False):
    """An argparse type: a finite number in [lo, hi] (settings.check_number), with argparse's message."""
    from .settings import check_number

    def parse(text: str):
        try:
            return check_number(what, text, lo, hi, integer=integer)
        except EditGANError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    parse.__name__ = what          # argparse names the type in its message
    return parse


PSI = _number("truncation psi", -4.0, 4.0)
STEPS = _number("a step count", 0, 100_000, integer=True)
INDEX = _number("an index", 0, 1_000_000, integer=True)


def parse_seeds(text: str) -> List[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11]."""
    from .settings import SAMPLE

    seeds: List[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            if b < a:
                raise argparse.ArgumentTypeError(f"seed range {part!r} is descending")
            if len(seeds) + b - a + 1 > SAMPLE.max_seeds:
                raise argparse.ArgumentTypeError(f"at most {SAMPLE.max_seeds} seeds per call; {part!r} alone is "
                                                 f"{b - a + 1}")
            seeds.extend(range(a, b + 1))
        elif part.isdigit() and len(part) <= 12:
            seeds.append(int(part))
        else:
            raise argparse.ArgumentTypeError(f"bad seed {part!r}: use numbers and ranges like 0-7,12")
    if not seeds:
        raise argparse.ArgumentTypeError("no seeds given")
    if len(seeds) > SAMPLE.max_seeds:
        raise argparse.ArgumentTypeError(f"at most {SAMPLE.max_seeds} seeds per call, got {len(seeds)}")
    if any(s > SAMPLE.max_seed for s in seeds):
        raise argparse.ArgumentTypeError(f"seeds must be at most {SAMPLE.max_seed} (numpy RandomState)")
    return seeds


def _threads(text: str) -> str:
    if text.strip().lower() != "auto" and not (text.strip().isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"{text!r} is neither auto nor a number of threads (1 or more)")
    return text


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


# ----------------------------------------------------------------------------------------------------------
# Shared plumbing: errors that name their file, outputs, model and companions.


@contextlib.contextmanager
def _about(path) -> Iterator[None]:
    """Errors raised inside name ``path``: a message that does not mention it gets it as a prefix."""
    try:
        yield
    except EditGANError as e:
        msg, text = str(e), str(path)
        name = Path(text).name if len(text) < 4096 else ""
        if text in msg or (name and name in msg) or len(text) > 1024:     # a 5000-character name: said clipped
            raise
        raise CLIError(f"{path}: {msg}") from e


def _save_png(path: Path, arr) -> Path:
    """uint8 [H, W, C] -> PNG, written atomically (the folder is made now, not before)."""
    from PIL import Image

    from . import files

    img = Image.fromarray(arr[:, :, 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)
    return files.atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CLIError("--device cuda asked for, but no CUDA device is available")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise CLIError(f"--device {name!r}: {e}") from None


def _load(args, key: Optional[str] = None):
    """The model of ``--model`` on ``--device``, in eval mode; its loading notes go to stderr."""
    from .hub import load_model

    with _about(args.model):
        loaded = load_model(args.model, key=key)
    for note in loaded.notes:
        print(f"note: {note}", file=sys.stderr)
    loaded.G.to(_device(getattr(args, "device", "auto"))).eval()
    return loaded


def _encoder_for(loaded, choice: str):
    from .assets import ENCODER_NAME, companion_module
    from .identity import model_identity

    with _about(choice):
        enc = companion_module(loaded, model_identity(loaded), choice, ENCODER_NAME, loaded.G.w_avg.device)
    if enc is None and choice == "auto":
        print("note: this model has no encoder; starting from the average latent", file=sys.stderr)
    return enc


def _distance_for(loaded, choice: str):
    """The embedding distance: as the studio's (assets.Bundle), 'auto' unless --perceptual says otherwise."""
    from .assets import model_dir
    from .perceptual import perceptual_for

    return perceptual_for(model_dir(loaded), choice)


def _branch_for(loaded, path: Optional[str]):
    from .assets import BRANCH_NAME, companion_module
    from .identity import model_identity

    with _about(path or "the model's branch"):
        branch = companion_module(loaded, model_identity(loaded), path or "auto", BRANCH_NAME, loaded.G.w_avg.device)
    if branch is None:
        raise CLIError(f"the model {loaded.path} has no segmentation branch ({BRANCH_NAME}); pass --branch FILE "
                       f"or train one with train-branch")
    return branch


def _prepare_photo(loaded, path, args):
    """An image read and cut for the model: aligned as a face (``--cut face``, the default for FFHQ-style models;
    face ``--face``, largest first) or a box (``--fit``). Prints what was done."""
    from .align import AlignmentError, choose_crop, cut_for, detect_faces
    from .imageio import prepare_image
    from .registry import get_spec

    R = loaded.G.img_resolution
    spec = get_spec(args.model)
    visible = spec.crop if spec is not None else None
    cut = cut_for(args.model) if args.cut == "auto" else args.cut
    with _about(path):
        prep = prepare_image(path, R, fit=args.fit, visible=visible)
    if cut == "face":
        try:
            faces = detect_faces(prep.original)
        except AlignmentError as e:
            print(f"note: {Path(path).name}: {e}; using the plain crop", file=sys.stderr)
            faces = []
        try:
            crop, _, chosen, note = choose_crop(prep.original, R, cut="face", faces=faces, face=args.face,
                                                fit=args.fit, visible=visible)
        except AlignmentError as e:
            raise CLIError(f"{path}: {e}") from None
        if chosen is not None:
            prep = prepare_image(prep.original, R, fit=args.fit, crop=crop)
        print(f"{Path(path).name}: {note}", file=sys.stderr)
    print(f"{Path(path).name}: {prep.note}", file=sys.stderr)
    return prep


def _embed_images(loaded, paths, args):
    """Each image: cut for the model (aligned, cropped or padded), embedded, and pivotal-tuned when ``--tune``.
    Yields (path, prepared, result, distance name, Tuning or None)."""
    from .embed import embed, pivotal_tune

    G = loaded.G
    enc = _encoder_for(loaded, args.encoder)
    dist = _distance_for(loaded, args.perceptual)
    for path in paths:
        prep = _prepare_photo(loaded, path, args)

        def progress(step, steps, loss, name=Path(path).name):
            if step == steps or step % max(1, steps // 10) == 0:
                print(f"  {name}: step {step}/{steps} loss {loss:.4f}", file=sys.stderr)

        target = prep.tensor.to(G.w_avg.device)
        res = embed(G, target, steps=args.steps, encoder=enc, distance=dist, progress=progress)
        tuning = None
        if getattr(args, "tune", 0):
            tuning = pivotal_tune(G, res.ws, target, steps=args.tune, distance=dist)
            print(f"  {Path(path).name}: pivotal tuning {tuning.psnr_before:.2f} -> {tuning.psnr:.2f} dB "
                  f"({tuning.seconds:.1f} s)", file=sys.stderr)
        yield Path(path), prep, res, dist.name, tuning


def _generator_for(loaded, latent_path: Path, meta: dict, ident):
    """The generator a latent renders with: its photo's tuned copy when embed --tune wrote one beside it."""
    from .embed import load_tuning

    name = meta.get("tuning")
    if not name:
        return loaded.G
    path = Path(latent_path).parent / name
    if not path.is_file():
        print(f"note: {Path(latent_path).name}: its tuning {name} is missing: using the model's generator",
              file=sys.stderr)
        return loaded.G
    with _about(path):
        return load_tuning(path, loaded.G, expect_generator=ident)[0]


def _photo_meta(path: Path, prep) -> dict:
    """What a latent records of the photo it came from, so that edits of it can be handed back at its size."""
    from .checkpoints import sha256_file

    return {"photo": str(Path(path).resolve()), "photo_sha256": sha256_file(path),
            "photo_size": list(prep.original_size), "crop": prep.crop.as_dict()}


def _photo_of(meta: dict, name: str):
    """(photo RGB array, Crop) from a latent's record, or None (with a note) when the photo is gone or changed."""
    import numpy as np

    from .checkpoints import sha256_file
    from .imageio import open_image, to_rgb
    from .photo import Crop

    if not meta.get("photo"):
        return None
    path = Path(meta["photo"])
    try:
        if not path.is_file() or sha256_file(path) != meta.get("photo_sha256"):
            print(f"note: {name}: its photo {path} is gone or changed: writing the model-size image only",
                  file=sys.stderr)
            return None
        photo = np.asarray(to_rgb(open_image(path))[0], np.uint8)
        return photo, Crop.from_dict(meta["crop"])
    except EditGANError as e:
        print(f"note: {name}: its photo cannot be used ({e}): writing the model-size image only", file=sys.stderr)
        return None


def _hand_back(G, branch, source, ws_before, ws_after, image, class_names=()):
    """The edit from ``ws_before`` to ``ws_after`` (the model-size ``image``) handed back into ``source`` = (photo,
    crop): only where it acts (photo.changed_region: parts of the edited classes ``class_names`` that moved, from the
    branch's segmentations; colour changes alone without a branch), with the photo's own detail kept."""
    import torch

    from .generator import images_to_uint8
    from .photo import changed_region, hand_back
    from .segbranch import segment

    photo, crop = source
    with torch.no_grad():
        before = images_to_uint8(G.synthesis(ws_before))[0].cpu().numpy()
    labels = (None, None)
    classes = None
    if branch is not None:
        labels = segment(G, branch, ws_before)[0], segment(G, branch, ws_after)[0]
        classes = branch.cfg.class_indices(class_names) or None
    result = hand_back(photo, crop, before, image, changed_region(before, image, *labels, classes))
    print(f"note: handed back: {result.summary()}", file=sys.stderr)
    return result


def _branch_or_none(loaded, path):
    """The branch for paste-back regions, or None (the whole square comes back) when the model has none."""
    try:
        return _branch_for(loaded, path)
    except CLIError as e:
        print(f"note: {e}: a photo gets the whole edited square back", file=sys.stderr)
        return None


def _load_latent(path, ident, *, meta: bool = False):
    from .latents import load_latent

    with _about(path):
        ws, m = load_latent(path, expect_generator=ident)
    return (ws, m) if meta else ws


def _is_latent_file(name: str) -> bool:
    return name.endswith(".safetensors") or name.endswith(".npy")


def _latent_stem(name: str) -> str:
    for suffix in (LATENT_SUFFIX, ".safetensors", ".npy"):
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name


# ----------------------------------------------------------------------------------------------------------
# Commands.


def cmd_generate(args: argparse.Namespace) -> int:
    from .generator import generate

    loaded = _load(args, key=args.key)
    G = loaded.G
    class_idx = _class_index(G, args.model, args.class_idx)
    psi = {} if args.truncation is None else {"truncation_psi": args.truncation}   # default: generate()'s
    out = Path(args.out)
    for i, seed in enumerate(args.seeds):   # one seed at a time: any number of seeds in constant memory
        gen = generate(G, [seed], class_idx=class_idx, truncation_cutoff=args.truncation_cutoff,
                       noise_mode=args.noise_mode, **psi)
        path = _save_png(out / f"seed{seed:04d}.png", gen.uint8()[0].cpu().numpy())
        print(f"[{i + 1}/{len(args.seeds)}] {path}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    loaded = _load(argparse.Namespace(model=args.model, device="cpu"), key=args.key)
    cfg = loaded.config
    info = {
        "path": str(loaded.path), "format": loaded.format, "sha256": loaded.sha256,
        "resolution": cfg.img_resolution, "num_ws": cfg.num_ws, "w_dim": cfg.w_dim, "z_dim": cfg.z_dim,
        "c_dim": cfg.c_dim, "parameters": loaded.G.num_parameters(), "config": cfg.to_dict(), "notes": loaded.notes,
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"path        {info['path']}")
    print(f"format      {info['format']}")
    print(f"sha256      {info['sha256']}")
    print(f"resolution  {cfg.img_resolution}x{cfg.img_resolution}, {cfg.img_channels} channels")
    print(f"latents     z {cfg.z_dim}, c {cfg.c_dim}, w {cfg.w_dim}, num_ws {cfg.num_ws}")
    print(f"parameters  {info['parameters']:,}")
    print("config      " + json.dumps(cfg.to_dict(), sort_keys=True))
    for note in loaded.notes:
        print(f"note        {note}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .checkpoints import convert
    from .hub import resolve

    with _about(args.src):
        r = resolve(args.src)
        out = convert(r.path, args.dst, key=args.key)
    print(f"wrote {out}/config.json and {out}/model.safetensors")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from .registry import CHECKPOINTS_DIR, PARSERS, REGISTRY

    for spec in REGISTRY.values():
        where = str(CHECKPOINTS_DIR / spec.local_dir) if spec.local_dir else spec.hub_ref
        print(f"{spec.name:22s} {spec.format:14s} {spec.resolution:5d}px  {where}\n{'':22s} {spec.description}")
    print("\nparsers (label --labeler NAME):")
    for p in PARSERS.values():
        where = str(CHECKPOINTS_DIR / p.local_dir) if p.local_dir else p.hub_ref
        made_for = f", for {', '.join(p.models)}" if p.models else ""
        print(f"{p.name:22s} {p.domain + made_for:22s} {where}\n{'':22s} {p.description} ({p.license})")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from .generator import images_to_uint8
    from .identity import model_identity
    from .latents import save_latent

    loaded = _load(args)
    ident = model_identity(loaded)
    out = Path(args.out)
    for path, prep, res, dname, tuning in _embed_images(loaded, args.images, args):
        stem = path.stem
        extra = {}
        if tuning is not None:
            from .embed import save_tuning

            extra["tuning"] = save_tuning(out / f"{stem}{TUNING_SUFFIX}", tuning, ident).name
            extra["tuned_psnr"] = round(tuning.psnr, 2)
        latent = save_latent(out / f"{stem}{LATENT_SUFFIX}", res.ws, ident,
                             {"source": path.name, "steps": res.steps, "psnr": round(res.psnr.item(), 2),
                              "perceptual": dname, "prepare": prep.note, **_photo_meta(path, prep), **extra})
        _save_png(out / f"{stem}_input.png", prep.array)
        recon = res.image if tuning is None else tuning.G.synthesis(res.ws)
        _save_png(out / f"{stem}_recon.png", images_to_uint8(recon)[0].cpu().numpy())
        psnr = res.psnr.item() if tuning is None else tuning.psnr
        print(f"{latent}  PSNR {psnr:.2f} dB  ({res.seconds + (tuning.seconds if tuning else 0):.1f} s)")
    return 0


def cmd_segment(args: argparse.Namespace) -> int:
    from .identity import model_identity
    from .masks import encode_mask
    from .segbranch import segment

    loaded = _load(args)
    branch = _branch_for(loaded, args.branch)
    src = Path(args.input)
    ident = model_identity(loaded)
    if _is_latent_file(src.name):     # rendered as edit and apply render it: with its photo's tuning, if any
        ws, meta = _load_latent(src, ident, meta=True)
        G = _generator_for(loaded, src, meta, ident)
        stem = _latent_stem(src.name)
    else:
        _, _, res, _, tuning = next(iter(_embed_images(loaded, [src], args)))
        ws, G = res.ws, loaded.G if tuning is None else tuning.G
        stem = src.stem
    if len(ws) > 1:
        print(f"note: {src.name} holds {len(ws)} latents; segmenting the first", file=sys.stderr)
    labels = segment(G, branch, ws[:1])[0]
    out = _save_png(Path(args.out) if args.out else Path(f"{stem}_mask.png"), encode_mask(labels, branch.cfg.palette))
    present = [branch.cfg.class_names[c] for c in sorted(set(labels.ravel().tolist()))]
    print(f"{out}: classes {', '.join(present)}")
    return 0


def _read_classes(path: str) -> Tuple[List[str], List[Tuple[int, int, int]]]:
    try:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
        names = [str(c["name"]) for c in spec]
        palette = [tuple(int(v) for v in c["color"]) for c in spec]
    except FileNotFoundError:
        raise CLIError(f"no such classes file: {path}") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CLIError(f"{path}: not a JSON list of {{\"name\": ..., \"color\": [r, g, b]}} ({e})") from None
    if not names or any(len(c) != 3 for c in palette):
        raise CLIError(f"{path}: need at least one class, each with a [r, g, b] color")
    return names, palette


def _branch_classes(loaded, args) -> Tuple[List[str], List[Tuple[int, int, int]]]:
    """train-branch's class table: --classes; else --map (colours from FOLDER/classes.json when it is there);
    else FOLDER/classes.json (written by label); else the model's classes."""
    from .assets import default_classes
    from .labeling import ClassMap, class_palette

    folder_classes = Path(args.folder) / CLASSES_FILE
    if args.classes and args.map:
        raise CLIError("give --classes or --map, not both")
    if args.classes:
        return _read_classes(args.classes)
    if args.map:
        with _about(args.map):
            names = ClassMap.from_json(Path(args.map)).classes()
        if folder_classes.is_file():
            got, palette = _read_classes(str(folder_classes))
            if got != names:
                raise CLIError(f"{folder_classes} lists the classes {', '.join(got)} but {args.map} gives "
                               f"{', '.join(names)}; the masks were made with another map")
            return names, palette
        return names, class_palette(names, dict(zip(*default_classes(loaded))))
    if folder_classes.is_file():
        print(f"note: classes from {folder_classes}", file=sys.stderr)
        return _read_classes(str(folder_classes))
    return default_classes(loaded)


def cmd_train_branch(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from .fewshot import load_annotated_folder, train_branch_on_images
    from .identity import model_identity
    from .segbranch import save_branch

    if not str(args.out).endswith(".safetensors"):
        raise CLIError(f"--out {args.out}: a branch file ends in .safetensors")
    loaded = _load(args)
    G = loaded.G
    names, palette = _branch_classes(loaded, args)
    with _about(args.folder):
        _, preps, masks, notes = load_annotated_folder(args.folder, G.img_resolution, np.array(palette, np.uint8))
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    print(f"{len(preps)} annotated images; embedding them ({args.steps} steps), then training", file=sys.stderr)

    def embed_progress(step, steps, loss):
        if step == steps or step % max(1, steps // 10) == 0:
            print(f"  embedding: step {step}/{steps} loss {loss:.4f}", file=sys.stderr)

    branch, report, emb = train_branch_on_images(
        G, torch.cat([p.tensor for p in preps]).to(G.w_avg.device), masks, names, palette,
        encoder=_encoder_for(loaded, args.encoder), distance=_distance_for(loaded, args.perceptual),
        embed_steps=args.steps, embed_progress=embed_progress, generator_id=model_identity(loaded),
        max_steps=args.max_steps, progress=lambda r: print("  " + json.dumps(r), file=sys.stderr))
    print(f"embedded {len(preps)} images: mean PSNR {emb.psnr.mean().item():.2f} dB", file=sys.stderr)
    out = save_branch(branch, args.out, extra={"training": {"images": len(preps), "val_miou": report.val_miou,
                                                            "steps": report.steps, "best_step": report.best_step}})
    print(f"{out}: validation mIoU {report.val_miou:.4f} ({report.train_images} train / "
          f"{report.val_images} validation images, best step {report.best_step})")
    return 0



def _class_index(G, model: str, class_idx: Optional[int]) -> Optional[int]:
    """--class checked against the model: required for conditional models, ignored (said) for others."""
    if G.c_dim:
        if class_idx is None:
            raise CLIError(f"{model} is conditional ({G.c_dim} classes): pass --class N, N from 0 to {G.c_dim - 1}")
        if not 0 <= class_idx < G.c_dim:
            raise CLIError(f"--class {class_idx}: {model} has classes 0 to {G.c_dim - 1}")
        return class_idx
    if class_idx is not None:
        print(f"note: --class ignored: {model} is unconditional", file=sys.stderr)
    return None


def _label_inputs(src: Path) -> List[Path]:
    """The photos of ``label --inputs``: a file, or a folder's images (not its _mask / _edited side files)."""
    if not src.exists():
        raise CLIError(f"no such file or folder: {src}")
    if src.is_file():
        return [src]
    paths = [p for p in sorted(src.iterdir()) if p.is_file() and not p.name.startswith(".")
             and p.suffix.lower() in IMAGE_EXTS and not any(p.stem.endswith(s) for s in SIDE_SUFFIXES)]
    if not paths:
        raise CLIError(f"{src}: no images ({', '.join(IMAGE_EXTS)}) to label")
    return paths


def cmd_label(args: argparse.Namespace) -> int:
    import numpy as np

    from . import files
    from .assets import default_classes
    from .generator import generate
    from .imageio import prepare_image
    from .labeling import ClassMap, class_palette, fit_note, label_images, load_labeler, parser_for, save_mask_png

    if args.inputs and (args.seeds is not None or args.n is not None):
        raise CLIError("give --inputs (photos to label) or --n/--seeds (samples to label), not both")
    if args.seeds is not None and args.n is not None and len(args.seeds) != args.n:
        raise CLIError(f"--n {args.n} and --seeds ({len(args.seeds)} seeds) disagree; give one of them")
    out = Path(args.out)
    if args.inputs:
        src = Path(args.inputs)
        if (src if src.is_dir() else src.parent).resolve() == out.resolve():
            raise CLIError(f"--out {out} is where the --inputs photos are: their prepared copies would replace them; "
                           f"write to another folder")
    ref = args.labeler or parser_for(args.model)
    if ref is None:
        from .labeling import model_domain

        dom = model_domain(args.model)
        raise CLIError(f"no parser in the registry fits {args.model}{f' ({dom})' if dom else ''}: pass --labeler "
                       f"(a parser name from `{_prog()} list`, hf://org/repo or a transformers folder), or label "
                       f"the images by hand (the app's Annotate tab)")
    if not args.labeler:
        print(f"note: labelling with {ref}, the registry's parser for {args.model}", file=sys.stderr)
    with _about(ref):
        labeler = load_labeler(ref)
    note = fit_note(args.model, labeler)
    if note:
        print(f"note: {note}", file=sys.stderr)
    if args.map:
        with _about(args.map):
            cmap = ClassMap.from_json(Path(args.map))
    else:
        cmap = ClassMap.default(labeler.label_names)
    names = cmap.classes()
    with _about(args.map or ref):
        cmap.check(labeler.label_names, names)
    loaded = _load(args)      # after the labeler and the map: a wrong one costs no generator download
    G = loaded.G
    class_idx = None if args.inputs else _class_index(G, args.model, args.class_idx)
    rest = cmap.unmapped(labeler.label_names)
    if rest:
        print(f"note: labels not in {args.map or 'the map'} go to background: {', '.join(rest)}", file=sys.stderr)
    palette = class_palette(names, dict(zip(*default_classes(loaded))))
    table = [{"name": n, "color": list(c)} for n, c in zip(names, palette)]
    if (out / CLASSES_FILE).is_file():
        old_names, old_palette = _read_classes(str(out / CLASSES_FILE))
        if old_names != names or [tuple(c) for c in old_palette] != list(palette):
            raise CLIError(f"{out / CLASSES_FILE} holds masks of other classes ({', '.join(old_names)}); label "
                           f"into another --out folder, or pass the map those masks were made with")
    R = G.img_resolution

    # what to label: [(name, uint8 [R, R, 3] or a seed)] -- photos are all read first, so a bad one costs nothing
    if args.inputs:
        jobs = []
        for p in _label_inputs(Path(args.inputs)):
            with _about(p):
                prep = prepare_image(p, R, fit=args.fit)
            print(f"{p.name}: {prep.note}", file=sys.stderr)
            jobs.append((p.stem, prep.array))
    else:
        seeds = args.seeds if args.seeds is not None else list(range(args.n or LABEL.count))
        jobs = [(f"seed{s:04d}", s) for s in seeds]
    print(f"labelling {len(jobs)} images with {labeler.ref} ({labeler.architecture}, {labeler.num_labels} labels) "
          f"into {len(names)} classes: {', '.join(names)}", file=sys.stderr)
    done, used = 0, set()
    for start in range(0, len(jobs), LABEL.batch):
        chunk = jobs[start:start + LABEL.batch]
        images = []
        for name, item in chunk:
            if isinstance(item, np.ndarray):
                images.append(item)
            else:
                gen = generate(G, [item], class_idx=class_idx, truncation_psi=args.truncation)
                images.append(gen.uint8()[0].cpu().numpy())
        labels = label_images(labeler, np.stack(images), cmap, names)
        if not done:   # the class table goes first: a folder with masks always says what their colours mean
            files.write_json(out / CLASSES_FILE, table)
            files.write_text(out / CLASS_MAP_FILE, cmap.to_json())
        for (name, _), img, lab in zip(chunk, images, labels):
            while name in used:
                name += "_"
            used.add(name)
            _save_png(out / f"{name}.png", img)
            path = save_mask_png(out / f"{name}_mask.png", lab, palette)
            done += 1
            present = [names[c] for c in sorted(set(lab.ravel().tolist()))]
            print(f"[{done}/{len(jobs)}] {path}  {', '.join(present)}")
    print(f"{out}: {done} image/mask pairs, {CLASSES_FILE} and {CLASS_MAP_FILE}; next: {_prog()} train-branch {out} "
          f"--model {args.model} --out branch.safetensors", file=sys.stderr)
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    import dataclasses

    import numpy as np

    from . import files
    from .editing import edit_from_mask
    from .identity import model_identity
    from .imageio import open_image
    from .masks import decode_mask, encode_mask
    from .vectors import check_name, file_stem, library_dir, save_vector

    name = check_name(args.name)     # before any work: a bad name must not cost an optimisation
    loaded = _load(args)
    ident = model_identity(loaded)
    out = Path(args.out) if args.out else library_dir(ident)
    _check_new_vector(loaded, ident, name, out, args.overwrite)
    branch = _branch_for(loaded, args.branch)
    ws, meta = _load_latent(args.latent, ident, meta=True)
    source = _photo_of(meta, Path(args.latent).name)
    G = _generator_for(loaded, args.latent, meta, ident)
    R = G.img_resolution
    with _about(args.mask):
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

    with _about(args.mask):
        res = edit_from_mask(G, branch, ws[:1], labels, name=name, generator=ident, steps=args.steps,
                             progress=progress, work_resolution=0 if args.exact else EDIT.work_resolution)
    for line in res.notes:
        print(f"note: {line}", file=sys.stderr)
    fidelity = meta.get("tuned_psnr") if G is not loaded.G else meta.get("psnr")
    if fidelity is not None:          # the embedding's fidelity to its photo, recorded by embed
        res.quality = dataclasses.replace(res.quality, embedding_psnr=float(fidelity))
    created = _first_missing(out)     # main() knows --out, not the library: clean that up here
    try:
        path = save_vector(res.vector, out)
        stem = file_stem(name)
        handed = {}
        if source is not None:     # the photo at its own size, the model-size crop beside it
            back = _hand_back(G, branch, source, ws[:1], res.ws, res.vector.thumb_after, res.vector.classes)
            _save_png(out / f"{stem}_edited.png", back.photo)
            _save_png(out / f"{stem}_edited_crop.png", res.vector.thumb_after)
            handed = {"photo_changed_share": back.changed_share, "photo_blend": back.blend,
                      "photo_psnr_outside_db": None if math.isinf(back.psnr_outside) else back.psnr_outside}
        else:
            _save_png(out / f"{stem}_edited.png", res.vector.thumb_after)
        _save_png(out / f"{stem}_edited_mask.png", encode_mask(res.labels, branch.cfg.palette))
        files.write_json(out / f"{stem}_quality.json", {"vector": name, "classes": res.vector.classes,
                                                        "steps": res.steps, **res.quality.as_dict(), **handed,
                                                        "advice": res.quality.advice()})
    except BaseException:
        _remove_empty(created)
        raise
    print(f"{path}  classes {', '.join(res.vector.classes)}  ({res.steps} steps, {res.seconds:.1f} s)")
    print(f"quality: {res.quality.summary()}")
    if res.quality.advice():
        print(f"advice: {res.quality.advice()}")
    if not args.out:
        print(f"saved in the model's library: apply it by name, e.g. {_prog()} apply {_quoted(name)}:1 --inputs ...")
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
    from .assets import vector_folders
    from .vectors import file_stem, library_dir

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
    from .assets import vector_folders
    from .vectors import file_stem, list_library, load_vector

    p = Path(ref)
    if p.is_file():
        with _about(p):
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
            with _about(path):
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


def collect_inputs(src: Path) -> Tuple[List[Tuple[str, Path]], List[Tuple[str, Path]], List[str]]:
    """What ``apply --inputs`` works on: (latents, images, skipped), each input as (output name, path).

    A folder's own side files are not inputs: embed's NAME_input.png and NAME_recon.png (and the photo NAME.png)
    are the same image as NAME.latent.safetensors; segment's NAME_mask.png and edit's NAME_edited*.png are not
    pictures to edit; other EditGAN files (editing vectors, branches) are not latents."""
    from . import files

    if not src.exists():
        raise CLIError(f"no such file or folder: {src}")
    if src.is_file():
        if _is_latent_file(src.name):
            return [(_latent_stem(src.name), src)], [], []
        return [], [(src.stem, src)], []
    latents, images, skipped = [], [], []
    entries = sorted(p for p in src.iterdir() if p.is_file() and not p.name.startswith("."))
    for p in entries:
        if p.name.endswith(".safetensors"):
            with _about(p):
                kind = files.read_meta(p).get("format")
            if kind == files.LATENT.id:
                latents.append((_latent_stem(p.name), p))
            else:
                skipped.append(f"{p.name} (not a latent)")
        elif p.suffix == ".npy":
            latents.append((_latent_stem(p.name), p))
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
    from .generator import images_to_uint8
    from .identity import model_identity
    from .settings import check_scale
    from .vectors import apply_vectors

    loaded = _load(args)
    ident = model_identity(loaded)
    G = loaded.G
    pairs = []
    for text in args.vectors:
        ref, scale = parse_vector_arg(text)
        vec = find_vector(loaded, ident, ref)
        pairs.append((vec, check_scale(vec.name, scale, vec.scale_range)))
    branch = _branch_for(loaded, args.branch) if args.refine else None
    latents, images, skipped = collect_inputs(Path(args.inputs))
    if skipped:
        print(f"note: skipped {len(skipped)} file(s) in {args.inputs}: {'; '.join(skipped)}", file=sys.stderr)
    if not latents and not images:
        raise CLIError(f"{args.inputs}: no latents (.latent.safetensors, .npy) or images to apply the vectors to")
    jobs = []              # (name, ws, the photo and its crop or None, the generator)
    for name, path in latents:
        ws, meta = _load_latent(path, ident, meta=True)
        jobs.append((name, ws, _photo_of(meta, path.name), _generator_for(loaded, path, meta, ident)))
    if images:
        jobs += [(name, res.ws, (prep.original, prep.crop), G if tuning is None else tuning.G)
                 for (name, _), (_, prep, res, _, tuning) in
                 zip(images, _embed_images(loaded, [p for _, p in images], args))]
    regions = branch if branch is not None else (
        _branch_or_none(loaded, args.branch) if any(src is not None for _, _, src, _ in jobs) else None)
    out, used = Path(args.out), set()
    print("applying " + ", ".join(f"{v.name} x{s:g}" for v, s in pairs), file=sys.stderr)
    for i, (name, ws, source, g) in enumerate(jobs):
        while name in used:           # a latent and an unrelated image of the same name
            name += "_"
        used.add(name)
        res = apply_vectors(g, ws[:1], pairs, branch=branch, refine_steps=args.refine)
        image = images_to_uint8(res.image)[0].cpu().numpy()
        if source is None:
            path = _save_png(out / f"{name}.png", image)
        else:                         # the photo at its own size, the model-size crop beside it
            edited = [c for v, _ in pairs for c in v.classes]
            path = _save_png(out / f"{name}.png", _hand_back(g, regions, source, ws[:1], res.ws, image, edited).photo)
            _save_png(out / f"{name}_crop.png", image)
        print(f"[{i + 1}/{len(jobs)}] {path}  ({1000 * res.seconds:.0f} ms)")
    return 0


# ----------------------------------------------------------------------------------------------------------
# Parser and entry point.


def _prog() -> str:
    """``editgan`` when run as the console script, ``python -m editgan_core`` when run as a module."""
    name = Path(sys.argv[0] or "editgan").name
    return "python -m editgan_core" if name in ("__main__.py", "-m", "-c", "") else name


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the empty ones ("(default: None)" says nothing)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .registry import DEFAULT_MODEL

    fmt = _HelpFormatter
    prog = _prog()
    p = argparse.ArgumentParser(prog=prog, description="EditGAN Studio: generate, embed, segment, edit and apply "
                                "editing vectors with StyleGAN2 generators.", epilog=EPILOG.format(prog=prog),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"editgan-studio {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(q, model_default=DEFAULT_MODEL):
        q.add_argument("--model", default=model_default, help="registry name, local path or hf://org/repo/file[@rev]")
        q.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
        q.add_argument("--threads", type=_threads, default=None,
                       help="CPU threads for torch: a number, or auto (the default, or $EDITGAN_THREADS): as many "
                            "as the cores other processes leave free, re-read during the work")

    g = sub.add_parser("generate", help="render one PNG per seed", formatter_class=fmt)
    common(g)
    g.add_argument("--seeds", type=parse_seeds, default="0-7", help="e.g. 0-7 or 1,5,9-12")
    g.add_argument("--truncation", type=PSI, default=None,
                   help="truncation psi (default: no truncation, psi 1, as NVIDIA's generate.py)")
    g.add_argument("--truncation-cutoff", type=INDEX, default=None, help="truncate only the first N W+ layers")
    g.add_argument("--class", dest="class_idx", type=INDEX, default=None, help="class index (conditional models)")
    g.add_argument("--noise-mode", choices=["const", "random", "none"], default="const")
    g.add_argument("--out", default="out", help="output folder (seedNNNN.png)")
    g.add_argument("--key", default=None, help="network to use from an NVIDIA snapshot (default G_ema)")
    g.set_defaults(func=cmd_generate, writes="folder")

    i = sub.add_parser("info", help="describe a checkpoint", formatter_class=fmt)
    i.add_argument("model", help="registry name, local path or hf:// reference")
    i.add_argument("--key", default=None, help="network to use from an NVIDIA snapshot (default G_ema)")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(func=cmd_info, writes=None)

    c = sub.add_parser("convert", help="convert any supported checkpoint to the native format", formatter_class=fmt)
    c.add_argument("src", help="registry name, local path or hf:// reference")
    c.add_argument("dst", help="output folder (config.json + model.safetensors)")
    c.add_argument("--key", default=None, help="network to use from an NVIDIA snapshot (default G_ema)")
    c.set_defaults(func=cmd_convert, writes="dst")

    ls = sub.add_parser("list", help="list the model registry")
    ls.set_defaults(func=cmd_list, writes=None)

    def editing_args(q):
        common(q)
        q.add_argument("--encoder", default="auto", help="encoder file, 'auto' (the model's) or 'none'")
        q.add_argument("--perceptual", default="auto", choices=["auto", "lpips", "discriminator", "fallback"],
                       help="perceptual term of the embedding loss ('lpips' downloads VGG16 weights once)")
        q.add_argument("--fit", default="crop", choices=["crop", "pad"], help="how to make an image square")
        q.add_argument("--cut", default="auto", choices=["auto", "face", "box"], help="cut photos as an aligned "
                       "face (FFHQ's recipe, dlib landmarks) or a box (--fit); auto: face for FFHQ-style models")
        q.add_argument("--face", type=INDEX, default=0, help="which face when a photo has several (0 = the largest)")
        q.add_argument("--tune", type=STEPS, default=0, help=f"pivotal tuning steps after embedding (0 = off; "
                       f"{PIVOTAL.steps} gives a more faithful photo; embed writes NAME{TUNING_SUFFIX})")

    def embed_steps(q, default=EMBED.steps):
        q.add_argument("--steps", type=STEPS, default=default, help="embedding steps after the encoder's guess")

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

    lb = sub.add_parser("label", help="label generator samples (or photos) with a segmentation model: NAME.png + "
                        "NAME_mask.png pairs for train-branch", formatter_class=fmt)
    common(lb)
    lb.add_argument("--labeler", default=None, help="a parser from the registry (list), hf://org/repo[@rev] or a "
                    "local transformers folder (default: the registry's parser for --model)")
    lb.add_argument("--n", type=_positive_int, default=None, help=f"label N samples, seeds 0..N-1 (default "
                    f"{LABEL.count})")
    lb.add_argument("--seeds", type=parse_seeds, default=None, help="the samples' seeds instead, e.g. 0-15")
    lb.add_argument("--truncation", type=PSI, default=SAMPLE.truncation, help="truncation psi of the samples")
    lb.add_argument("--class", dest="class_idx", type=INDEX, default=None, help="class index (conditional models)")
    lb.add_argument("--inputs", default=None, help="label these photos (a file or a folder) instead of samples; each "
                    "cropped or padded to the model's size (--fit)")
    lb.add_argument("--fit", default="crop", choices=["crop", "pad"], help="how --inputs photos are made square")
    lb.add_argument("--map", default=None, help='class map JSON {"labeler label": "branch class"} (default: left/'
                    "right pairs merged, u_lip + l_lip -> lips, other labels their own class); the map used is "
                    f"written to OUT/{CLASS_MAP_FILE}")
    lb.add_argument("--out", required=True, help=f"output folder: NAME.png + NAME_mask.png pairs, {CLASSES_FILE}, "
                    f"{CLASS_MAP_FILE}")
    lb.set_defaults(func=cmd_label, writes="folder")

    t = sub.add_parser("train-branch", help="train a segmentation branch from a folder of image/mask pairs",
                       formatter_class=fmt)
    t.add_argument("folder", help="NAME.png + NAME_mask.png pairs (or masks/NAME.png)")
    t.add_argument("--out", required=True, help="branch file to write (.safetensors)")
    t.add_argument("--classes", default=None, help='JSON list of {"name": ..., "color": [r, g, b]} (default: '
                   f"FOLDER/{CLASSES_FILE} when present, else the model's classes, else the ToyFaces parts)")
    t.add_argument("--map", default=None, help=f"the class map label used: the branch's classes are the map's "
                   f"(colours from FOLDER/{CLASSES_FILE}, which is also read on its own when present)")
    t.add_argument("--max-steps", type=STEPS, default=BRANCH.max_steps, help="training steps at most")
    editing_args(t)
    embed_steps(t, BRANCH.embed_steps)
    t.set_defaults(func=cmd_train_branch, writes="file")

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
    return p


def _output_folder(args: argparse.Namespace) -> Optional[Path]:
    kind = getattr(args, "writes", None)
    if kind == "dst":
        return Path(args.dst)
    out = getattr(args, "out", None)
    if kind is None or out is None:
        return None
    return Path(out) if kind == "folder" else Path(out).parent


def _first_missing(path: Optional[Path]) -> Optional[Path]:
    """The topmost folder of ``path`` that does not exist yet (what a command would create), or None."""
    if path is None:
        return None
    p, top = path.absolute(), None
    while not p.exists() and p != p.parent:
        top, p = p, p.parent
    return top


def _remove_empty(top: Optional[Path]) -> None:
    """Remove the folders under (and including) ``top`` that a failed command created and left empty."""
    if top is None or not top.is_dir():
        return
    for folder, _, _ in os.walk(top, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(folder)     # only empty folders go


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .runtime import configure_threads, tune_allocator

    args = build_parser().parse_args(argv)
    tune_allocator()
    created = _first_missing(_output_folder(args))
    ok = False
    try:
        if hasattr(args, "threads"):
            policy = configure_threads(args.threads)
            if str(args.threads or "").strip().isdigit() and int(args.threads) > policy.cores:
                print(f"note: --threads {files.clip(args.threads, 20)}: this machine has {policy.cores} cores; "
                      f"using {policy.cores}", file=sys.stderr)
        rc = args.func(args)
        ok = True
        return rc
    except EditGANError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:   # the reader went away (`editgan list | head`): nothing to say to it
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 2
    except OSError as e:   # permission denied, disk full, ...: say which file
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    finally:
        if not ok:
            _remove_empty(created)

