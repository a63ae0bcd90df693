"""The one way to write and read every file EditGAN Studio makes.

Every file is a safetensors file: tensors plus one JSON descriptor under the metadata key ``editgan`` with at least
``format`` (what kind of file) and ``format_version``. Readers check both: a file of another kind, a foreign
safetensors file or one written by a newer version gets an :class:`~editgan_core.errors.CheckpointError` that names
the file and says what it is. Each kind's schema (``Format.fields``, ``Format.tensors``) is checked on every read:
required fields, their types and ranges, the generator identity where the kind records one, the tensors the kind
needs, and finite values in every tensor; a violation names the file and the field. Writes are atomic (temporary file in the same folder, then rename), so a crash
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

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import CheckpointError, EditGANError
from .identity import check_identity

METADATA_KEY = "editgan"
LEGACY_METADATA_KEY = "editgan_config"


@dataclass(frozen=True)
class Field:
    """One descriptor field of a file kind: ``ok(value)`` says whether a value is acceptable, ``want`` says in
    words what is (for the message), ``required`` whether the field must be there."""
    ok: Callable[[Any], bool]
    want: str
    required: bool = True


def _finite_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _text(limit: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and 0 < len(v.strip()) <= limit


MAX_NAME = 64          # vector names (vectors.check_name) and class names
MAX_CLASSES = 256
TEXT = Field(_text(4096), "text of at most 4096 characters", required=False)
IDENTITY = Field(lambda v: isinstance(v, dict) and all(isinstance(v.get(k), int) and not isinstance(v.get(k), bool)
                                                        and v.get(k) > 0 for k in ("resolution", "num_ws", "w_dim"))
                 and isinstance(v.get("feature_channels"), list) and len(v["feature_channels"]) > 0
                 and all(isinstance(c, int) and c > 0 for c in v["feature_channels"])
                 and (v.get("sha256") is None or (isinstance(v["sha256"], str) and len(v["sha256"]) <= 128))
                 and (v.get("name") is None or (isinstance(v["name"], str) and len(v["name"]) <= 1024)),
                 "the identity of its generator (resolution, num_ws, w_dim and feature_channels as positive "
                 "integers; sha256 and name as text)")
CONFIG = Field(lambda v: isinstance(v, dict), "a JSON object (the network's configuration)")
OPTIONAL_OBJECT = Field(lambda v: isinstance(v, dict), "a JSON object", required=False)


@dataclass(frozen=True)
class Format:
    id: str          # the descriptor's "format"
    version: int     # the newest "format_version" this code writes and reads
    what: str        # in words, for messages
    fields: Tuple[Tuple[str, Field], ...] = ()       # descriptor fields checked on every read
    tensors: Tuple[str, ...] = ()                     # tensors the file must hold

    @property
    def article(self) -> str:
        return "an" if self.what[:1].lower() in "aeiou" else "a"


GENERATOR = Format("editgan-studio/generator", 1, "generator")
BRANCH = Format("editgan-studio/segmentation-branch", 1, "segmentation branch", (("config", CONFIG),))
ENCODER = Format("editgan-studio/encoder", 1, "encoder", (("config", CONFIG), ("generator", IDENTITY)))
VECTOR = Format("editgan-studio/editing-vector", 1, "editing vector", (
    ("name", Field(_text(MAX_NAME), f"a name of 1-{MAX_NAME} characters")),
    ("generator", IDENTITY),
    ("classes", Field(lambda v: isinstance(v, list) and len(v) <= MAX_CLASSES and all(
        isinstance(c, str) and 0 < len(c) <= MAX_NAME for c in v), f"a list of at most {MAX_CLASSES} class names")),
    ("scale_range", Field(lambda v: isinstance(v, list) and len(v) == 2 and all(map(_finite_number, v))
                          and v[0] < v[1], "two finite numbers, low < high", required=False)),
    ("shape", Field(lambda v: isinstance(v, list) and len(v) == 2 and all(
        isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in v), "[num_ws, w_dim]")),
    ("created", TEXT), ("extra", OPTIONAL_OBJECT)), ("delta",))
LATENT = Format("editgan-studio/latent", 1, "latent file", (("generator", IDENTITY),), ("ws",))
TUNING = Format("editgan-studio/generator-tuning", 1, "generator tuning (pivotal tuning of one photo)",
                (("generator", IDENTITY),))
DISCRIMINATOR = Format("editgan-studio/discriminator", 1, "discriminator")
JUDGE = Format("editgan-studio/toyfaces-judge", 1, "ToyFaces judge", (("config", CONFIG),))
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
    for name, field in fmt.fields:
        if name not in meta:
            if field.required:
                raise CheckpointError(f"{where}: this {fmt.what} has no '{name}' field (it must be {field.want})")
        elif not field.ok(meta[name]):
            raise CheckpointError(f"{where}: its '{name}' field must be {field.want}; it is {clip(meta[name])}")
    return meta


def check_tensors(tensors: Dict[str, torch.Tensor], fmt: Format, where: str) -> None:
    """Refuse a file without the tensors its kind needs, or with NaN or infinite values in any of them."""
    for name in fmt.tensors:
        if name not in tensors:
            raise CheckpointError(f"{where}: this {fmt.what} holds no '{name}' tensor")
    for name, t in tensors.items():
        if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{where}: its tensor {clip(name)} holds NaN or infinite values")


# What building a network from a damaged descriptor raises (a config field of the wrong type or size): loaders turn
# these into a CheckpointError that names the file.
DAMAGE = (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError, RuntimeError, ZeroDivisionError)


def clip(value, limit: int = 80) -> str:
    """A value as it goes into a message or a log line: its repr, at most ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 20]}... ({len(text)} characters)"


def read_meta(path: os.PathLike) -> dict:
    """The descriptor of a safetensors file without reading its tensors ({} when it has none)."""
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
    path = Path(path)
    if not path.is_file():
        raise EditGANError(f"no {fmt.what} at {path}")
    meta = check(read_meta(path), fmt, path.name)
    try:
        with safe_open(str(path), "pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise CheckpointError(f"{path.name} is not a readable {fmt.what} ({type(e).__name__}: {e})") from e
    check_tensors(tensors, fmt, path.name)
    if float32:
        tensors = {k: v.float() if v.dtype in (torch.float16, torch.bfloat16) else v for k, v in tensors.items()}
    return tensors, meta


def save_module(path: os.PathLike, fmt: Format, module: torch.nn.Module, config: dict, *,
                generator: Optional[dict] = None, extra: Optional[dict] = None, half: bool = False) -> Path:
    """A network as a file of kind ``fmt``: its weights, its ``config`` (what rebuilds it) and, for a network that
    belongs to one generator, that generator's identity. ``half`` stores the weights as float16."""
    meta = {"config": config, **({"generator": generator} if generator is not None else {}), **(extra or {})}
    return save(path, fmt, dict(module.state_dict()), meta, half=half)


def load_module(path: os.PathLike, fmt: Format, build: Callable[[dict], torch.nn.Module], *,
                config_key: str = "config", expect_generator: Optional[dict] = None,
                identity: Optional[Callable[[dict], dict]] = None) -> Tuple[torch.nn.Module, dict]:
    """-> (the network of a file written by :func:`save_module`, its descriptor), in eval mode. ``build(config)``
    makes the empty network; with ``expect_generator`` the file's generator identity (``identity(meta)``, by
    default its 'generator' field) must match. A config or weights that do not build (a damaged file) give a
    CheckpointError that names the file."""
    path = Path(path)
    tensors, meta = load(path, fmt)
    try:
        config = meta[config_key]
        check_identity((identity or (lambda m: m.get("generator", {})))(meta), expect_generator,
                       f"{fmt.what} {path.name}")
        module = build(config)
        module.load_state_dict(tensors)
    except DAMAGE as e:      # a config of the wrong types or sizes, weights of other shapes
        raise CheckpointError(f"{path.name} is not a usable {fmt.what}: its config or weights are damaged "
                              f"({clip(str(e).splitlines()[0] if str(e) else type(e).__name__, 200)})") from None
    return module.eval(), meta


_sha_memo: Dict[Tuple[str, int, int], str] = {}


def sha256_file(path: os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file, remembered per (real path, size, mtime) so a multi-GB checkpoint is hashed once."""
    real = Path(path).resolve()
    st = real.stat()
    key = (str(real), st.st_size, st.st_mtime_ns)
    if key not in _sha_memo:
        h = hashlib.sha256()
        with open(real, "rb") as f:
            for block in iter(lambda: f.read(chunk), b""):
                h.update(block)
        _sha_memo[key] = h.hexdigest()
    return _sha_memo[key]
