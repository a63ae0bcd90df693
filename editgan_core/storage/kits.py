"""Kits: one folder (or Hub model repo) that makes a generator editable at once -- its segmentation branch, the
encoder if any, the class names and palette, the labeler and class map used, the editing vectors, and a model card.

A kit folder::

    kit.json                 the manifest (format editgan-studio/kit): the generator, the files, the classes
    README.md                the model card (Hub front matter: licence, base model, tags)
    branch.safetensors       the segmentation branch (its generator's identity inside, as everywhere)
    encoder.safetensors      the encoder, when the model has one
    vectors/NAME.safetensors the editing vectors (+ NAME.json), each with its generator's identity
    thumbs/NAME.png          each vector's before | after thumbnail, for the card
    class_map.json           the labeler's labels -> the branch's classes, when a labeler was used
    model.safetensors        the generator's own weights (+ config.json) -- only when the kit includes them

The generator is either *referenced* (``generator.ref``: ``hf://org/repo/file@commit`` with its sha256, so weights
under a licence such as NVIDIA's non-commercial one are not uploaded again: whoever opens the kit downloads them
from their own source) or *included* (native weights the user owns, beside the manifest: the kit folder is then
also a native model folder). Opening a kit (``editgan_core.loaders.hub.resolve``) gets the listed files only, with
the generators' cache, pinned-revision and offline rules, and the branch and vectors are checked against the
generator's identity when loaded, as any other file.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from PIL import Image

from ..errors import CheckpointError, EditGANError
from . import files
from .vectors import EditVector, save_vector

KIT_FILE = "kit.json"
CARD_FILE = "README.md"
CLASS_MAP_FILE = "class_map.json"
BRANCH_FILE = "branch.safetensors"
ENCODER_FILE = "encoder.safetensors"
NATIVE_FILES = ("model.safetensors", "config.json")
MAX_FILES = 1024            # files a manifest may list (a kit of 1,000 vectors is already a large one)


def _relative_file(v) -> bool:
    """A file name inside the kit: relative, no '..', no backslashes, not hidden."""
    return (isinstance(v, str) and 0 < len(v) <= 256 and not v.startswith(("/", ".")) and "\\" not in v
            and ".." not in Path(v).parts and ":" not in v)


KIT = files.Format("editgan-studio/kit", 1, "kit manifest", (
    ("generator", files.Field(lambda v: isinstance(v, dict) and (
        (isinstance(v.get("ref"), str) and v["ref"].startswith("hf://") and len(v["ref"]) <= 1024
         and isinstance(v.get("sha256"), str) and len(v["sha256"]) == 64)
        or v.get("included") is True), "{'ref': 'hf://org/repo/file@revision', 'sha256': ...} or "
                                       "{'included': true}")),
    ("identity", files.IDENTITY),
    ("files", files.Field(lambda v: isinstance(v, list) and 0 < len(v) <= MAX_FILES and all(map(_relative_file, v)),
                          f"a list of at most {MAX_FILES} file names inside the kit")),
    ("classes", files.Field(lambda v: isinstance(v, list) and 0 < len(v) <= files.MAX_CLASSES and all(
        isinstance(c, dict) and isinstance(c.get("name"), str) and 0 < len(c["name"]) <= files.MAX_NAME
        and isinstance(c.get("color"), list) and len(c["color"]) == 3 for c in v),
        "a list of {'name', 'color'} class entries")),
    ("license", files.Field(lambda v: isinstance(v, str) and 0 < len(v) <= 64, "a licence id", required=False)),
    ("title", files.TEXT), ("labeler", files.TEXT), ("branch_training", files.OPTIONAL_OBJECT),
))


@dataclass
class Kit:
    """A kit's manifest, read and checked, and the folder it is in."""
    folder: Path
    manifest: dict

    @property
    def files(self) -> List[str]:
        return list(self.manifest["files"])

    @property
    def generator(self) -> dict:
        return self.manifest["generator"]

    @property
    def included(self) -> bool:
        return self.generator.get("included") is True


def is_kit(folder) -> bool:
    return Path(folder).is_dir() and (Path(folder) / KIT_FILE).is_file()


def read_manifest(path) -> dict:
    """``kit.json`` (a path to it or to its folder) read and checked: a damaged or hostile manifest is a
    CheckpointError that names it."""
    path = Path(path)
    path = path / KIT_FILE if path.is_dir() else path
    try:
        if path.stat().st_size > 4 * 2 ** 20:
            raise CheckpointError(f"{path}: a kit manifest of {path.stat().st_size} bytes is not a kit manifest")
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is not a readable kit manifest ({type(e).__name__}: {e})") from None
    return files.check(meta, KIT, str(path))


def open_kit(folder) -> Kit:
    """A kit folder whose listed files are all there."""
    folder = Path(folder)
    kit = Kit(folder, read_manifest(folder))
    missing = [f for f in kit.files if not (folder / f).is_file()]
    if missing:
        raise CheckpointError(f"kit {folder}: {len(missing)} listed files are missing ({', '.join(missing[:3])})")
    return kit


# ----------------------------------------------------------------------------------------------------------
# Making a kit.


@dataclass
class KitParts:
    """What goes into a kit, gathered by the caller (the CLI from a model reference, the studio from a session)."""
    identity: dict
    branch_file: Path                          # a saved branch (its training record inside, when it has one)
    class_names: List[str]
    palette: List[tuple]
    vectors: List[EditVector] = field(default_factory=list)
    encoder_file: Optional[Path] = None
    generator_ref: Optional[str] = None        # hf://org/repo/file@commit: referenced, not included
    generator_sha256: Optional[str] = None
    native_folder: Optional[Path] = None       # a native model folder whose weights are included instead
    labeler: Optional[str] = None
    class_map: Optional[Dict[str, str]] = None
    license: Optional[str] = None
    base_model: Optional[str] = None           # the Hub repo of the generator, for the card's front matter
    title: str = ""
    source: str = ""                           # where the generator came from, in words (the model reference)
    repo: Optional[str] = None                 # the Hub repo it is pushed to (the card's commands name it)


def write_kit(parts: KitParts, out) -> Path:
    """Write a kit folder ``out`` (made, or emptied of an earlier kit's files; any other content is refused).
    -> the folder. Written to a temporary folder beside it first, then moved into place."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not is_kit(out))):
        raise EditGANError(f"{out} exists and is not a kit folder: choose a new or empty folder")
    if parts.generator_ref is None and parts.native_folder is None:
        raise EditGANError("a kit needs its generator: a Hub reference with a revision and sha256, or native weights")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        listed = [BRANCH_FILE]
        shutil.copyfile(parts.branch_file, tmp / BRANCH_FILE)
        if parts.encoder_file is not None:
            shutil.copyfile(parts.encoder_file, tmp / ENCODER_FILE)
            listed.append(ENCODER_FILE)
        if parts.native_folder is not None:
            for name in NATIVE_FILES:
                if (parts.native_folder / name).is_file():
                    shutil.copyfile(parts.native_folder / name, tmp / name)
                    listed.append(name)
            generator = {"included": True, "sha256": parts.identity.get("sha256")}
        else:
            generator = {"ref": parts.generator_ref, "sha256": parts.generator_sha256}
        (tmp / "thumbs").mkdir()
        for v in parts.vectors:
            p = save_vector(v, tmp / "vectors")
            listed += [f"vectors/{p.name}", f"vectors/{p.with_suffix('.json').name}"]
            if v.thumb_before is not None and v.thumb_after is not None:
                Image.fromarray(np.concatenate([v.thumb_before, v.thumb_after], 1)).save(
                    tmp / "thumbs" / f"{v.file_stem}.png")
        if parts.class_map:
            files.write_json(tmp / CLASS_MAP_FILE, parts.class_map)
            listed.append(CLASS_MAP_FILE)
        training = files.read_meta(tmp / BRANCH_FILE).get("training") or {}
        manifest = files.descriptor(
            KIT, generator=generator, identity=parts.identity, files=listed,
            classes=[{"name": n, "color": [int(x) for x in c]} for n, c in zip(parts.class_names, parts.palette)],
            **{k: v for k, v in (("license", parts.license), ("title", parts.title or None),
                                 ("labeler", parts.labeler), ("branch_training", training or None)) if v})
        files.check(manifest, KIT, "the new kit's manifest")
        files.write_json(tmp / KIT_FILE, manifest)
        files.write_text(tmp / CARD_FILE, model_card(parts, manifest))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def model_card(parts: KitParts, manifest: dict) -> str:
    """The kit's README.md: Hub front matter, then what the kit holds and how well each part works."""
    training = manifest.get("branch_training") or {}
    labels = training.get("images", training.get("annotated_images"))
    miou = training.get("val_miou")
    front = ["---", f"license: {parts.license or 'other'}", "library_name: editgan-studio",
             "tags:", "- editgan", "- stylegan2", "- image-editing", "- semantic-segmentation"]
    if parts.base_model:
        front.append(f"base_model: {parts.base_model}")
    front.append("---")
    title = parts.title or f"EditGAN kit for {parts.source or 'a StyleGAN2 generator'}"
    ident = parts.identity
    gen = manifest["generator"]
    ref = f"hf://{parts.repo}" if parts.repo else "path/to/this-kit"
    first = parts.vectors[0].name if parts.vectors else "VECTOR"
    lines = front + ["", f"# {title}", "",
                     "A ready-to-edit kit for EditGAN Studio: open it and repaint part masks or move the "
                     "editing-vector sliders at once, with no labelling or training.", "",
                     "```bash", f"python app.py --model {ref}",
                     f"editgan apply \"{first}\":1.5 --model {ref} --inputs photos/ --out edited/", "```",
                     "", "## Generator", ""]
    if gen.get("included"):
        lines.append(f"- Included in this kit (native weights, sha256 `{gen.get('sha256')}`).")
    else:
        lines.append(f"- Referenced, not included: `{gen['ref']}` (sha256 `{gen['sha256']}`); it is downloaded "
                     f"from there under its own licence when the kit is opened.")
    lines += [f"- {ident['resolution']} px, {ident['num_ws']} W+ entries of {ident['w_dim']} dimensions.",
              f"- Licence: {parts.license or 'not stated: ask the generator' + chr(39) + 's authors'}.", "",
              "## Segmentation branch", "",
              f"- {len(parts.class_names)} classes: "
              + ", ".join(f"`{n}`" for n in parts.class_names) + ".",
              f"- Held-out mIoU: {'%.3f' % miou if isinstance(miou, (int, float)) else 'not recorded'}"
              + (f", trained from {labels} labelled images." if labels else "."),
              f"- Labeler used for the labels: {parts.labeler or 'painted by hand'}"
              + (f"; class map in `{CLASS_MAP_FILE}`." if parts.class_map else "."), "",
              "## Editing vectors", ""]
    if not parts.vectors:
        lines.append("None yet.")
    else:
        lines += ["| vector | classes | slider range | how well it worked | before / after |", "|---|---|---|---|---|"]
        for v in parts.vectors:
            thumb = f"![{v.name}](thumbs/{v.file_stem}.png)" if v.thumb_before is not None else ""
            lines.append(f"| {v.name} | {', '.join(v.classes)} | {v.scale_range[0]:g} to {v.scale_range[1]:g} | "
                         f"{vector_readout(v)} | {thumb} |")
    return "\n".join(lines) + "\n"


def vector_readout(v: EditVector) -> str:
    """A vector's quality record in words: the mask edit's readout when it came from one, else what it records."""
    q = v.extra.get("quality") if isinstance(v.extra, dict) else None
    if isinstance(q, dict):
        bits = []
        if isinstance(q.get("reached"), (int, float)):
            bits.append(f"{100 * q['reached']:.0f} % of the painted pixels reached")
        if isinstance(q.get("region_iou"), (int, float)):
            bits.append(f"region IoU {q['region_iou']:.2f}")
        if isinstance(q.get("psnr_outside_db"), (int, float)):
            bits.append(f"PSNR outside the region {q['psnr_outside_db']:.1f} dB")
        if bits:
            return "; ".join(bits)
    if isinstance(v.extra, dict) and v.extra.get("attribute"):
        return (f"no readout recorded; made by one {v.extra.get('steps', '?')}-step mask edit painting the judge's "
                f"{v.extra['attribute']} from {v.extra.get('from')} to {v.extra.get('to')}")
    return "not recorded"
