"""The one way to write and read every file EditGAN Studio makes.

Every file is a safetensors file: tensors plus one JSON descriptor under the metadata key ``editgan`` with at least
``format`` (what kind of file) and ``format_version``. Readers check both: a file of another kind, a foreign
safetensors file or one written by a newer version gets an :class:`~editgan_core.errors.CheckpointError` that names
the file and says what it is. Writes are atomic (temporary file in the same folder, then rename), so a crash
mid-save leaves the old file or the new one, never a broken one.

| kind                 | written by                         | format id                              |
|----------------------|------------------------------------|----------------------------------------|
| generator            | checkpoints.save_native            | editgan-studio/generator               |
| segmentation branch  | segbranch.save_branch              | editgan-studio/segmentation-branch     |
| encoder              | embed.save_encoder                 | editgan-studio/encoder                 |
| editing vector       | vectors.save_vector                | editgan-studio/editing-vector          |
| latent               | latents.save_latent                | editgan-studio/latent                  |
| generator tuning     | embed.save_tuning                  | editgan-studio/generator-tuning        |
| discriminator        | training / train_gan export        | editgan-studio/discriminator           |
| judge                | toyfaces.judge.save_judge          | editgan-studio/toyfaces-judge          |
| training state       | training.TrainingLoop.save         | editgan-studio/training-state          |

Generators, judges and discriminators written before this module used the metadata key ``editgan_config``; it is
still read.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Tuple

import torch

from .errors import CheckpointError, EditGANError

METADATA_KEY = "editgan"
LEGACY_METADATA_KEY = "editgan_config"


@dataclass(frozen=True)
class Format:
    id: str          # the descriptor's "format"
    version: int     # the newest "format_version" this code writes and reads
    what: str        # in words, for messages

    @property
    def article(self) -> str:
        return "an" if self.what[:1].lower() in "aeiou" else "a"


GENERATOR = Format("editgan-studio/generator", 1, "generator")
BRANCH = Format("editgan-studio/segmentation-branch", 1, "segmentation branch")
ENCODER = Format("editgan-studio/encoder", 1, "encoder")
VECTOR = Format("editgan-studio/editing-vector", 1, "editing vector")
LATENT = Format("editgan-studio/latent", 1, "latent file")
TUNING = Format("editgan-studio/generator-tuning", 1, "generator tuning (pivotal tuning of one photo)")
DISCRIMINATOR = Format("editgan-studio/discriminator", 1, "discriminator")
JUDGE = Format("editgan-studio/toyfaces-judge", 1, "ToyFaces judge")
TRAINING_STATE = Format("editgan-studio/training-state", 1, "training checkpoint")
FORMATS = (GENERATOR, BRANCH, ENCODER, VECTOR, LATENT, TUNING, DISCRIMINATOR, JUDGE, TRAINING_STATE)


def atomic_write(path: os.PathLike, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` in one step; the folder is created if needed."""
    dst = Path(path)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dst


def write_text(path: os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda p: Path(p).write_text(text, encoding="utf-8"))


def write_json(path: os.PathLike, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def descriptor(fmt: Format, **fields) -> dict:
    """The JSON descriptor of a new file: format, version and the kind's own fields."""
    return {"format": fmt.id, "format_version": fmt.version, **fields}


def save(path: os.PathLike, fmt: Format, tensors: Dict[str, torch.Tensor], meta: dict, *,
         half: bool = False) -> Path:
    """Write ``tensors`` with ``meta`` (format and version added) atomically. ``half`` stores floating-point
    tensors as float16 (:func:`load` gives float32 back)."""
    from safetensors.torch import save_file

    meta = {**meta, "format": fmt.id, "format_version": int(meta.get("format_version", fmt.version))}
    tensors = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in tensors.items()}
    text = json.dumps(meta, sort_keys=True)
    return atomic_write(path, lambda p: save_file(tensors, str(p), metadata={METADATA_KEY: text}))


def check(meta: dict, fmt: Format, where: str) -> dict:
    """Refuse a descriptor of another kind or of a newer version; -> the descriptor."""
    if not isinstance(meta, dict) or meta.get("format") != fmt.id:
        got = meta.get("format") if isinstance(meta, dict) else None
        kind = next((f.what for f in FORMATS if f.id == got), None)
        said = f"it is {'an' if kind and kind[0] in 'aeiou' else 'a'} {kind}" if kind else \
            ("it is not an EditGAN Studio file" if got is None else f"its format is {got!r}")
        raise CheckpointError(f"{where} is not {fmt.article} {fmt.what}: {said}")
    try:
        version = int(meta.get("format_version", 0))
    except (TypeError, ValueError):
        raise CheckpointError(f"{where}: format_version {meta.get('format_version')!r} is not a number") from None
    if version > fmt.version:
        raise CheckpointError(f"{where} was written by a newer EditGAN Studio ({fmt.what} format {version} > "
                              f"{fmt.version}, newer than this version reads); upgrade to read it")
    return meta


def read_meta(path: os.PathLike) -> dict:
    """The descriptor of a safetensors file without reading its tensors ({} when it has none)."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), "pt") as f:
            md = f.metadata() or {}
    except Exception as e:  # not safetensors, truncated, ...
        raise CheckpointError(f"{path.name} is not a readable safetensors file ({type(e).__name__}: {e})") from e
    text = md.get(METADATA_KEY, md.get(LEGACY_METADATA_KEY))
    if text is None:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path.name}: its descriptor is not valid JSON ({e})") from e


def load(path: os.PathLike, fmt: Format, *, float32: bool = True) -> Tuple[Dict[str, torch.Tensor], dict]:
    """-> (tensors, descriptor) of a file of kind ``fmt``; float16 tensors come back as float32 (``float32``)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise EditGANError(f"no {fmt.what} at {path}")
    meta = check(read_meta(path), fmt, path.name)
    try:
        with safe_open(str(path), "pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise CheckpointError(f"{path.name} is not a readable {fmt.what} ({type(e).__name__}: {e})") from e
    if float32:
        tensors = {k: v.float() if v.dtype in (torch.float16, torch.bfloat16) else v for k, v in tensors.items()}
    return tensors, meta
