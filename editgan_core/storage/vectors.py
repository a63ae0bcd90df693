"""Editing vectors: a W+ offset learned from one mask edit, replayed on any image of the same generator.

A vector file is ``NAME.safetensors`` (tensors: ``delta`` [num_ws, w_dim] float32, ``thumb_before`` and
``thumb_after`` uint8 [h, w, 3]) whose metadata holds the JSON descriptor; ``NAME.json`` beside it repeats the
descriptor for people and tools. Writes are atomic (temporary file + rename, JSON last), so a crash mid-save
leaves either the old vector or the new one, never a broken file. A library is one folder per model.

Replaying vectors is a pipeline step: :func:`editgan_core.pipeline.apply.apply_vectors`.

Vector file names are safe slugs of the vector's name (``bigger smile`` -> ``bigger_smile.safetensors``); the
name itself, spaces and all, stays in the descriptor.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from ..errors import CheckpointError, EditGANError
from ..settings import APPLY
from . import files
from .identity import check_identity

_NAME_RE = re.compile(r"^[\w\-() ]{1,64}$")


@dataclass
class EditVector:
    name: str
    delta: torch.Tensor                                 # [num_ws, w_dim]
    generator: Dict[str, object]                        # generator_identity(...) of the model it belongs to
    classes: List[str]                                  # part classes the edit changed
    scale_range: Tuple[float, float] = APPLY.slider_range   # suggested slider range
    created: str = ""
    thumb_before: Optional[np.ndarray] = None           # uint8 [h, w, 3]
    thumb_after: Optional[np.ndarray] = None
    extra: Dict[str, object] = field(default_factory=dict)
    format_version: int = files.VECTOR.version

    def descriptor(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("delta", "thumb_before", "thumb_after")}
        d["format"] = files.VECTOR.id
        d["shape"] = list(self.delta.shape)
        return d

    @property
    def file_stem(self) -> str:
        return file_stem(self.name)


def library_dir(generator: Dict[str, object], root: Optional[os.PathLike] = None) -> Path:
    """The user's vector library for one generator: ROOT/<name>-<sha256[:12]> (ROOT: $EDITGAN_HOME/vectors, or
    ~/.cache/editgan-studio/vectors). Built-in models also ship vectors beside their weights (``vectors/``)."""
    base = Path(root) if root else Path(os.environ.get("EDITGAN_HOME", Path.home() / ".cache" / "editgan-studio"))
    base = base / "vectors" if not root else base
    name = re.sub(r"[^\w\-]+", "_", str(generator.get("name") or "model")).strip("_")[:40] or "model"
    sha = str(generator.get("sha256") or "")[:12]
    if not sha:   # no hash: the feature layout at least keeps models of different shapes apart
        sha = f"{generator.get('resolution')}px-{generator.get('num_ws')}x{generator.get('w_dim')}"
    return base / f"{name}-{sha}"


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not _NAME_RE.match(name):
        raise EditGANError(f"vector name {files.clip(name)}: use 1-64 letters, digits, spaces, '-', '_' or "
                           f"parentheses")
    return name


def file_stem(name: str) -> str:
    """The file name (without suffix) of a vector: its name with spaces as underscores."""
    return check_name(name).replace(" ", "_")


def save_vector(vec: EditVector, folder: os.PathLike) -> Path:
    """-> FOLDER/<file_stem>.safetensors (+ a .json copy of the descriptor), both written atomically."""
    check_name(vec.name)
    folder = Path(folder)
    if not vec.created:
        vec.created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    tensors = {"delta": vec.delta.float()}
    for key in ("thumb_before", "thumb_after"):
        t = getattr(vec, key)
        if t is not None:
            tensors[key] = torch.from_numpy(np.ascontiguousarray(t, dtype=np.uint8))
    desc = vec.descriptor()
    path = files.save(folder / f"{vec.file_stem}.safetensors", files.VECTOR, tensors, desc)
    files.write_text(folder / f"{vec.file_stem}.json", json.dumps(desc, indent=1))
    return path


def load_vector(path: os.PathLike, *, expect_generator: Optional[Dict[str, object]] = None) -> EditVector:
    """Read a vector file; with ``expect_generator``, refuse one that belongs to another model."""
    path = Path(path)
    tensors, desc = files.load(path, files.VECTOR)
    if "delta" not in tensors:
        raise CheckpointError(f"{path.name} holds no editing vector")
    delta = tensors["delta"].float()
    if list(delta.shape) != list(desc.get("shape", delta.shape)):
        raise CheckpointError(f"{path.name}: delta shape {list(delta.shape)} disagrees with its descriptor")
    check_identity(desc.get("generator", {}), expect_generator, f"editing vector {desc.get('name', path.stem)!r}",
                   w_shape=delta.shape)
    thumbs = {k: tensors[k].numpy() for k in ("thumb_before", "thumb_after") if k in tensors}
    return EditVector(name=desc["name"], delta=delta, generator=desc.get("generator", {}),
                      classes=list(desc.get("classes", [])), scale_range=tuple(desc.get("scale_range", APPLY.slider_range)),
                      created=desc.get("created", ""), extra=desc.get("extra", {}),
                      format_version=int(desc.get("format_version", 1)), **thumbs)


def list_library(folder: os.PathLike, *, expect_generator: Optional[Dict[str, object]] = None
                 ) -> Tuple[List[EditVector], List[str]]:
    """All vectors in a folder that fit the generator, plus a message for each file that does not."""
    folder = Path(folder)
    vectors, problems = [], []
    if not folder.is_dir():
        return vectors, problems
    for p in sorted(folder.glob("*.safetensors")):
        try:
            vectors.append(load_vector(p, expect_generator=expect_generator))
        except EditGANError as e:
            problems.append(str(e))
    return vectors, problems
