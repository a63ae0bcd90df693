"""What travels with a generator: its identity and the files beside a native checkpoint.

A native model folder may hold, next to ``model.safetensors``: ``encoder.safetensors`` (embedding),
``branch.safetensors`` (segmentation branch), ``discriminator.safetensors`` (perceptual features) and a
``vectors/`` library. Other formats get them by explicit paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

ENCODER_NAME = "encoder.safetensors"
BRANCH_NAME = "branch.safetensors"


def model_dir(loaded) -> Optional[Path]:
    p = Path(loaded.path)
    return p if p.is_dir() else None


def companion(loaded, name: str) -> Optional[Path]:
    d = model_dir(loaded)
    if d is not None and (d / name).is_file():
        return d / name
    return None


def default_classes(loaded) -> Tuple[List[str], List[Tuple[int, int, int]]]:
    """Class names and palette: the branch's if the model has one, else the ToyFaces parts."""
    from .toyfaces.palette import CLASSES

    path = companion(loaded, BRANCH_NAME)
    if path is not None:
        from .segbranch import load_branch

        cfg = load_branch(path).cfg
        return list(cfg.class_names), list(cfg.palette)
    return [n for n, _ in CLASSES], [c for _, c in CLASSES]


def vector_folders(loaded, identity) -> List[Path]:
    """Where a model's editing vectors are found, in order: the starter vectors beside a native model
    (``vectors/``), then the user's library for that generator (:func:`editgan_core.vectors.library_dir`)."""
    from .vectors import library_dir

    d = model_dir(loaded)
    return ([d / "vectors"] if d is not None else []) + [library_dir(identity)]
