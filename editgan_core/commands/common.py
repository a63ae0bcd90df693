"""What the commands share: the option types, the shared options, and the plumbing -- errors that name their
file, outputs written atomically, the model and its companions, photos cut and handed back."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Iterator, List, Optional

import torch
from PIL import Image

from ..errors import CLIError, EditGANError
from ..loaders.assets import BRANCH_NAME, ENCODER_NAME, companion_module, model_dir
from ..loaders.hub import load_model
from ..loaders.registry import DEFAULT_MODEL, get_spec
from ..models.generator import images_to_uint8
from ..models.perceptual import perceptual_for
from ..models.segbranch import segment
from ..pipeline.align import AlignmentError, cut_for, cut_photo, find_faces
from ..pipeline.embed import embed, load_tuning, pivotal_tune
from ..pipeline.photo import hand_back_edit
from ..scale import engine
from ..settings import EMBED, PIVOTAL, SAMPLE, check_number
from ..storage import files
from ..storage.identity import model_identity
from ..storage.imageio import prepare_image
from ..storage.latents import load_latent, photo_of_record

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
LATENT_SUFFIX = ".latent.safetensors"
TUNING_SUFFIX = ".tuning.safetensors"       # embed --tune: the photo's pivotal tuning, beside its latent
# PNGs the CLI writes beside its results, never inputs of their own: segment's NAME_mask.png, edit's
# NAME_edited.png and NAME_edited_mask.png. (embed's NAME_input.png / NAME_recon.png go with NAME's latent.)
SIDE_SUFFIXES = ("_mask", "_edited", "_edited_mask", "_edited_crop", "_crop")
EMBED_SIDE_SUFFIXES = ("_input", "_recon")
CLASSES_FILE = "classes.json"      # [{"name", "color"}] of a folder's masks: label writes it, train-branch reads it
CLASS_MAP_FILE = "class_map.json"  # the class map label used: edit it and pass it back as --map


def number(what: str, lo=None, hi=None, integer: bool = False):
    """An argparse type: a finite number in [lo, hi] (settings.check_number), with argparse's message."""

    def parse(text: str):
        try:
            return check_number(what, text, lo, hi, integer=integer)
        except EditGANError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    parse.__name__ = what          # argparse names the type in its message
    return parse


PSI = number("truncation psi", -4.0, 4.0)
STEPS = number("a step count", 0, 100_000, integer=True)
INDEX = number("an index", 0, 1_000_000, integer=True)


def parse_seeds(text: str) -> List[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11]."""

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


def threads(text: str) -> str:
    if text.strip().lower() != "auto" and not (text.strip().isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"{text!r} is neither auto nor a number of threads (1 or more)")
    return text


def positive_int(text: str) -> int:
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
def about(path) -> Iterator[None]:
    """Errors raised inside name ``path``: a message that does not mention it gets it as a prefix."""
    try:
        yield
    except EditGANError as e:
        msg, text = str(e), str(path)
        name = Path(text).name if len(text) < 4096 else ""
        if text in msg or (name and name in msg) or len(text) > 1024:     # a 5000-character name: said clipped
            raise
        raise CLIError(f"{path}: {msg}") from e


def save_png(path: Path, arr) -> Path:
    """uint8 [H, W, C] -> PNG, written atomically (the folder is made now, not before)."""


    img = Image.fromarray(arr[:, :, 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)
    return files.atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))


def device(name: str):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CLIError("--device cuda asked for, but no CUDA device is available")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise CLIError(f"--device {name!r}: {e}") from None


def load(args, key: Optional[str] = None):
    """The model of ``--model`` on ``--device``, in eval mode; its loading notes go to stderr."""

    with about(args.model):
        loaded = load_model(args.model, key=key)
    for note in loaded.notes:
        print(f"note: {note}", file=sys.stderr)
    loaded.G.to(device(getattr(args, "device", "auto"))).eval()
    return loaded


def encoder_for(loaded, choice: str):
    with about(choice):
        enc = companion_module(loaded, model_identity(loaded), choice, ENCODER_NAME, loaded.G.w_avg.device)
    if enc is None and choice == "auto":
        print("note: this model has no encoder; starting from the average latent", file=sys.stderr)
    return enc


def distance_for(loaded, choice: str):
    """The embedding distance: as the studio's (assets.Bundle), 'auto' unless --perceptual says otherwise."""

    return perceptual_for(model_dir(loaded), choice)


def branch_for(loaded, path: Optional[str]):
    with about(path or "the model's branch"):
        branch = companion_module(loaded, model_identity(loaded), path or "auto", BRANCH_NAME, loaded.G.w_avg.device)
    if branch is None:
        raise CLIError(f"the model {loaded.path} has no segmentation branch ({BRANCH_NAME}); pass --branch FILE "
                       f"or train one with train-branch")
    return branch


def prepare_photo(loaded, path, args, data: Optional[bytes] = None):
    """An image read and cut for the model (align.cut_photo, as in the studio): aligned as a face (``--cut face``,
    the default for FFHQ-style models; face ``--face``, largest first) or a box (``--fit``). Prints what was done.
    ``data``: the image's bytes when it is not a file (a row of a dataset; ``path`` then names it)."""
    R = loaded.G.img_resolution
    spec = get_spec(args.model)
    visible = spec.crop if spec is not None else None
    cut = cut_for(args.model) if args.cut == "auto" else args.cut
    with about(path):
        original = prepare_image(path if data is None else data, R, fit=args.fit, visible=visible).original
    faces, note = find_faces(original, cut)
    if note:
        print(f"note: {Path(path).name}: {note}", file=sys.stderr)
    try:
        pc = cut_photo(original, R, cut=cut, faces=faces, face=args.face, fit=args.fit, visible=visible)
    except AlignmentError as e:
        raise CLIError(f"{path}: {e}") from None
    if cut == "face":
        print(f"{Path(path).name}: {pc.note}", file=sys.stderr)
    print(f"{Path(path).name}: {pc.prepared.note}", file=sys.stderr)
    return pc.prepared


def embed_images(loaded, paths, args):
    """Each image: cut for the model (aligned, cropped or padded), embedded, and pivotal-tuned when ``--tune``.
    Yields (path, prepared, result, distance name, Tuning or None)."""
    enc = encoder_for(loaded, args.encoder)
    dist = distance_for(loaded, args.perceptual)
    for path in paths:
        yield embed_photo(loaded, path, args, enc, dist)


def embed_photo(loaded, path, args, enc, dist, data: Optional[bytes] = None):
    """One image cut (prepare_photo), embedded and pivotal-tuned when ``--tune``. -> (path, prepared, result,
    distance name, Tuning or None)."""
    G = loaded.G
    prep = prepare_photo(loaded, path, args, data)

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
    return Path(path), prep, res, dist.name, tuning


def generator_for(loaded, latent_path: Path, meta: dict, ident):
    """The generator a latent renders with: its photo's tuned copy when embed --tune wrote one beside it."""

    name = meta.get("tuning")
    if not name:
        return loaded.G
    path = Path(latent_path).parent / name
    if not path.is_file():
        print(f"note: {Path(latent_path).name}: its tuning {name} is missing: using the model's generator",
              file=sys.stderr)
        return loaded.G
    with about(path):
        return load_tuning(path, loaded.G, expect_generator=ident)[0]


def photo_of(meta: dict, name: str):
    """(photo RGB array, Crop) from a latent's record (latents.photo_of_record), or None with a note."""
    source, why = photo_of_record(meta)
    if why:
        print(f"note: {name}: {why}: writing the model-size image only", file=sys.stderr)
    return source


def hand_back_to_photo(G, branch, source, ws_before, ws_after, image, class_names=()):
    """The edit from ``ws_before`` to ``ws_after`` (the model-size ``image``) handed back into ``source`` = (photo,
    crop): only where it acts (photo.changed_region: parts of the edited classes ``class_names`` that moved, from the
    branch's segmentations; colour changes alone without a branch), with the photo's own detail kept."""
    with torch.no_grad():
        before = images_to_uint8(G.synthesis(ws_before))[0].cpu().numpy()
    labels, classes = (None, None), None
    if branch is not None:
        labels = segment(G, branch, ws_before)[0], segment(G, branch, ws_after)[0]
        classes = branch.cfg.class_indices(class_names) or None
    result = hand_back_edit(source, before, image, *labels, classes)
    print(f"note: handed back: {result.summary()}", file=sys.stderr)
    return result


def branch_or_none(loaded, path):
    """The branch for paste-back regions, or None (the whole square comes back) when the model has none."""
    try:
        return branch_for(loaded, path)
    except CLIError as e:
        print(f"note: {e}: a photo gets the whole edited square back", file=sys.stderr)
        return None


def read_latent(path, ident, *, meta: bool = False):
    with about(path):
        ws, m = load_latent(path, expect_generator=ident)
    return (ws, m) if meta else ws


def is_latent_file(name: str) -> bool:
    return name.endswith(".safetensors") or name.endswith(".npy")


def latent_stem(name: str) -> str:
    for suffix in (LATENT_SUFFIX, ".safetensors", ".npy"):
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name


def first_missing(path: Optional[Path]) -> Optional[Path]:
    """The topmost folder of ``path`` that does not exist yet (what a command would create), or None."""
    if path is None:
        return None
    p, top = path.absolute(), None
    while not p.exists() and p != p.parent:
        top, p = p, p.parent
    return top


def remove_empty(top: Optional[Path]) -> None:
    """Remove the folders under (and including) ``top`` that a failed command created and left empty (a batch
    job's bookkeeping alone -- its parameters, its failure records -- counts as empty)."""
    if top is None or not top.is_dir():
        return
    for folder, _, names in os.walk(top, topdown=False):
        if set(names) <= {engine.JOB_FILE, "failures.jsonl"} and not any(
                p.is_dir() and p.name != engine.FAILURES for p in Path(folder).iterdir()):
            for name in names:
                with contextlib.suppress(OSError):
                    os.unlink(Path(folder) / name)
            shutil.rmtree(Path(folder) / engine.FAILURES, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(folder)     # only empty folders go


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the empty ones ("(default: None)" says nothing)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def common(q, model_default: Optional[str] = None):
    """--model, --device, --threads."""

    model_default = model_default or DEFAULT_MODEL
    q.add_argument("--model", default=model_default, help="registry name, local path or hf://org/repo/file[@rev]")
    q.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    q.add_argument("--threads", type=threads, default=None,
                   help="CPU threads for torch: a number, or auto (the default, or $EDITGAN_THREADS): as many "
                        "as the cores other processes leave free, re-read during the work")


def editing_args(q):
    """The options of commands that embed photos."""
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
    """--steps of the embedding."""
    q.add_argument("--steps", type=STEPS, default=default, help="embedding steps after the encoder's guess")

def prog_name() -> str:
    """``editgan`` when run as the console script, ``python -m editgan_core`` when run as a module."""
    name = Path(sys.argv[0] or "editgan").name
    return "python -m editgan_core" if name in ("__main__.py", "-m", "-c", "") else name


def job_done(summary, r) -> None:
    """The end of a batch command: the summary said (when there is something to say), the ranks released; in one
    process, failed items make the command fail (status 2, naming them; what was made stays). Under torchrun the
    job ends normally -- a failing status would make torchrun restart it -- and failures.jsonl lists them."""
    if r.rank == 0 and (r.world > 1 or summary.failures or summary.done_before):
        print(summary.text(), file=sys.stderr)
    engine.finish()
    if summary.failures and r.world == 1:
        raise CLIError(f"{len(summary.failures)} of {summary.items} failed: "
                       + "; ".join(why for _, why in summary.failures[:3])
                       + (" ..." if len(summary.failures) > 3 else ""))


def class_index(G, model: str, class_idx: Optional[int]) -> Optional[int]:
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
