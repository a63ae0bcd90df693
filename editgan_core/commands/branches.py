"""Commands that give a model a segmentation branch: label, train-branch."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch

from ..errors import CLIError
from ..loaders.assets import default_classes
from ..loaders.labelers import load_labeler
from ..models.generator import generate
from ..models.segbranch import save_branch
from ..pipeline.fewshot import load_annotated_folder, train_branch_on_images
from ..pipeline.labeling import ClassMap, class_palette, fit_note, label_images, model_domain, parser_for, save_mask_png
from ..settings import BRANCH, LABEL, SAMPLE
from ..storage import files
from ..storage.identity import model_identity
from ..storage.imageio import prepare_image
from .common import (CLASS_MAP_FILE, CLASSES_FILE, IMAGE_EXTS, INDEX, PSI, SIDE_SUFFIXES, STEPS, about, class_index,
                     common, distance_for, editing_args, embed_steps, encoder_for, load, parse_seeds, positive_int,
                     prog_name, save_png)


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

    folder_classes = Path(args.folder) / CLASSES_FILE
    if args.classes and args.map:
        raise CLIError("give --classes or --map, not both")
    if args.classes:
        return _read_classes(args.classes)
    if args.map:
        with about(args.map):
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
    if not str(args.out).endswith(".safetensors"):
        raise CLIError(f"--out {args.out}: a branch file ends in .safetensors")
    loaded = load(args)
    G = loaded.G
    names, palette = _branch_classes(loaded, args)
    with about(args.folder):
        _, preps, masks, notes = load_annotated_folder(args.folder, G.img_resolution, np.array(palette, np.uint8))
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    print(f"{len(preps)} annotated images; embedding them ({args.steps} steps), then training", file=sys.stderr)

    def embed_progress(step, steps, loss):
        if step == steps or step % max(1, steps // 10) == 0:
            print(f"  embedding: step {step}/{steps} loss {loss:.4f}", file=sys.stderr)

    branch, report, emb = train_branch_on_images(
        G, torch.cat([p.tensor for p in preps]).to(G.w_avg.device), masks, names, palette,
        encoder=encoder_for(loaded, args.encoder), distance=distance_for(loaded, args.perceptual),
        embed_steps=args.steps, embed_progress=embed_progress, generator_id=model_identity(loaded),
        max_steps=args.max_steps, progress=lambda r: print("  " + json.dumps(r), file=sys.stderr))
    print(f"embedded {len(preps)} images: mean PSNR {emb.psnr.mean().item():.2f} dB", file=sys.stderr)
    out = save_branch(branch, args.out, extra={"training": {"images": len(preps), "val_miou": report.val_miou,
                                                            "steps": report.steps, "best_step": report.best_step}})
    print(f"{out}: validation mIoU {report.val_miou:.4f} ({report.train_images} train / "
          f"{report.val_images} validation images, best step {report.best_step})")
    return 0


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

        dom = model_domain(args.model)
        raise CLIError(f"no parser in the registry fits {args.model}{f' ({dom})' if dom else ''}: pass --labeler "
                       f"(a parser name from `{prog_name()} list`, hf://org/repo or a transformers folder), or label "
                       f"the images by hand (the app's Annotate tab)")
    if not args.labeler:
        print(f"note: labelling with {ref}, the registry's parser for {args.model}", file=sys.stderr)
    with about(ref):
        labeler = load_labeler(ref)
    note = fit_note(args.model, labeler)
    if note:
        print(f"note: {note}", file=sys.stderr)
    if args.map:
        with about(args.map):
            cmap = ClassMap.from_json(Path(args.map))
    else:
        cmap = ClassMap.default(labeler.label_names)
    names = cmap.classes()
    with about(args.map or ref):
        cmap.check(labeler.label_names, names)
    loaded = load(args)      # after the labeler and the map: a wrong one costs no generator download
    G = loaded.G
    class_idx = None if args.inputs else class_index(G, args.model, args.class_idx)
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
            with about(p):
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
            save_png(out / f"{name}.png", img)
            path = save_mask_png(out / f"{name}_mask.png", lab, palette)
            done += 1
            present = [names[c] for c in sorted(set(lab.ravel().tolist()))]
            print(f"[{done}/{len(jobs)}] {path}  {', '.join(present)}")
    print(f"{out}: {done} image/mask pairs, {CLASSES_FILE} and {CLASS_MAP_FILE}; "
          f"next: {prog_name()} train-branch {out} "
          f"--model {args.model} --out branch.safetensors", file=sys.stderr)
    return 0


def add_parsers(sub, fmt) -> None:
    """The label, train-branch subcommands, their options beside the code above."""
    lb = sub.add_parser("label", help="label generator samples (or photos) with a segmentation model: NAME.png + "
                        "NAME_mask.png pairs for train-branch", formatter_class=fmt)
    common(lb)
    lb.add_argument("--labeler", default=None, help="a parser from the registry (list), hf://org/repo[@rev] or a "
                    "local transformers folder (default: the registry's parser for --model)")
    lb.add_argument("--n", type=positive_int, default=None, help=f"label N samples, seeds 0..N-1 (default "
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
