"""Editing vectors: a W+ offset learned from one mask edit, replayed on any image of the same generator.

A vector file is ``NAME.safetensors`` (tensors: ``delta`` [num_ws, w_dim] float32, ``thumb_before`` and
``thumb_after`` uint8 [h, w, 3]) whose metadata holds the JSON descriptor; ``NAME.json`` beside it repeats the
descriptor for people and tools. Writes are atomic (temporary file + rename, JSON last), so a crash mid-save
leaves either the old vector or the new one, never a broken file. A library is one folder per model.

``apply_vectors(G, branch, ws, [(vector, scale), ...], refine_steps)`` adds the scaled offsets (one generator
pass); with refinement, the segmentation of the result becomes the target inside the region of the vectors'
classes and the optimisation of :mod:`editgan_core.editing` runs a few steps from there (5 x RGB + 1 x CE).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .errors import CheckpointError, EditGANError

FORMAT = "editgan-studio/editing-vector"
FORMAT_VERSION = 1
_NAME_RE = re.compile(r"^[\w\- ]{1,64}$")


@dataclass
class EditVector:
    name: str
    delta: torch.Tensor                                 # [num_ws, w_dim]
    generator: Dict[str, object]                        # generator_identity(...) of the model it belongs to
    classes: List[str]                                  # part classes the edit changed
    scale_range: Tuple[float, float] = (-2.0, 2.0)      # suggested slider range
    created: str = ""
    thumb_before: Optional[np.ndarray] = None           # uint8 [h, w, 3]
    thumb_after: Optional[np.ndarray] = None
    extra: Dict[str, object] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def descriptor(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("delta", "thumb_before", "thumb_after")}
        d["format"] = FORMAT
        d["shape"] = list(self.delta.shape)
        return d


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
        raise EditGANError(f"vector name {name!r}: use 1-64 letters, digits, spaces, '-' or '_'")
    return name


def save_vector(vec: EditVector, folder: os.PathLike) -> Path:
    from . import stfiles
    from .checkpoints import _atomic_write

    name = check_name(vec.name)
    folder = Path(folder)
    if not vec.created:
        vec.created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    tensors = {"delta": vec.delta.float()}
    for key in ("thumb_before", "thumb_after"):
        t = getattr(vec, key)
        if t is not None:
            tensors[key] = torch.from_numpy(np.ascontiguousarray(t, dtype=np.uint8))
    desc = vec.descriptor()
    path = stfiles.write(folder / f"{name}.safetensors", tensors, desc)
    _atomic_write(folder / f"{name}.json", lambda p: Path(p).write_text(json.dumps(desc, indent=1)))
    return path


def load_vector(path: os.PathLike, *, expect_generator: Optional[Dict[str, object]] = None) -> EditVector:
    """Read a vector file; with ``expect_generator``, refuse one that belongs to another model."""
    from . import stfiles
    from .segbranch import identity_mismatch

    path = Path(path)
    tensors, desc = stfiles.read(path, FORMAT, "editing vector", FORMAT_VERSION)
    if "delta" not in tensors:
        raise CheckpointError(f"{path.name} holds no editing vector")
    delta = tensors["delta"].float()
    if list(delta.shape) != list(desc.get("shape", delta.shape)):
        raise CheckpointError(f"{path.name}: delta shape {list(delta.shape)} disagrees with its descriptor")
    if expect_generator is not None:
        why = identity_mismatch(desc.get("generator", {}), expect_generator)
        if why is None and tuple(delta.shape) != (expect_generator["num_ws"], expect_generator["w_dim"]):
            why = f"made for W+ {tuple(delta.shape)}, this model has ({expect_generator['num_ws']}, " \
                  f"{expect_generator['w_dim']})"
        if why:
            raise EditGANError(f"editing vector {desc.get('name', path.stem)!r} belongs to another model: it was {why}")
    thumbs = {k: tensors[k].numpy() for k in ("thumb_before", "thumb_after") if k in tensors}
    return EditVector(name=desc["name"], delta=delta, generator=desc.get("generator", {}),
                      classes=list(desc.get("classes", [])), scale_range=tuple(desc.get("scale_range", (-2, 2))),
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


def combined_delta(pairs: Sequence[Tuple[EditVector, float]], like: torch.Tensor) -> torch.Tensor:
    total = torch.zeros_like(like)
    for vec, scale in pairs:
        if scale:
            total = total + float(scale) * vec.delta.to(like.device, like.dtype)
    return total


@dataclass
class Applied:
    ws: torch.Tensor            # [N, num_ws, w_dim]
    image: torch.Tensor         # [N, 3, R, R]
    labels: Optional[np.ndarray]
    seconds: float


def apply_vectors(G, ws: torch.Tensor, pairs: Sequence[Tuple[EditVector, float]], *, branch=None,
                  refine_steps: int = 0, segment_result: bool = False, distance=None, refine_lr: float = 0.005,
                  batch: int = 16) -> Applied:
    """ws [N, num_ws, w_dim] + sum(scale * delta); optionally refined (needs the branch; ``batch`` images at a
    time, 5 * RGB + 1 * CE as in the paper, Adam at ``refine_lr``) and segmented."""
    from .editing import edit_region, optimise_region, segment

    t0 = time.time()
    if refine_steps < 0:
        raise EditGANError("refine_steps must be >= 0")
    ws = ws.to(G.w_avg.device).float()
    if ws.ndim == 2:
        ws = ws[None]
    edited = ws + combined_delta(pairs, ws[0])
    if refine_steps:
        if branch is None:
            raise EditGANError("refinement needs the model's segmentation branch")
        names = branch.cfg.class_names
        cls = sorted({names.index(c) for v, s in pairs if s for c in v.classes if c in names})
        out = []
        for s in range(0, len(edited), batch):
            # Target: the edited image's own segmentation inside the region of the vectors' classes (before or
            # after the edit); outside it, the original image. Images are refined together, each on its own.
            w0, w1 = ws[s:s + batch], edited[s:s + batch]
            before, target = segment(G, branch, w0), segment(G, branch, w1)
            region = np.stack([edit_region(b, t, cls, margin=5) if cls else np.zeros_like(t, bool)
                               for b, t in zip(before, target)])
            with torch.no_grad():
                reference = G.synthesis(w0)
            best, _, _ = optimise_region(G, branch, w1, target, region, reference=reference, steps=refine_steps,
                                         lr=refine_lr, rgb_weight=5.0, ce_weight=1.0, distance=distance)
            out.append(w1 + best)
        edited = torch.cat(out)
    with torch.no_grad():
        if segment_result and branch is not None:
            img, feats = G.synthesis(edited, return_features=True)
            labels = branch.predict(feats).cpu().numpy()
        else:
            img, labels = G.synthesis(edited), None
    return Applied(edited, img, labels, time.time() - t0)
