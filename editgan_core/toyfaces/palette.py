"""Part classes of ToyFaces and the palette that masks, the app and the segmentation branch share."""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from ..loaders.registry import FACE_PARTS
from ..storage import masks

# (name, RGB) in class-index order: the registry's face parts, which the built-in model was trained with.
CLASSES: List[Tuple[str, Tuple[int, int, int]]] = list(FACE_PARTS)
CLASS_NAMES: List[str] = [name for name, _ in CLASSES]
CLASS_INDEX: Dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}
PALETTE = np.array([rgb for _, rgb in CLASSES], dtype=np.uint8)   # [C, 3]
NUM_CLASSES = len(CLASSES)


def colorize(mask: np.ndarray, palette: np.ndarray = PALETTE) -> np.ndarray:
    """Label map [H, W] -> RGB [H, W, 3] uint8 in the ToyFaces colours (storage.masks.colorize)."""
    return masks.colorize(mask, palette)


def decode(rgb: np.ndarray, palette: np.ndarray = PALETTE, alpha: np.ndarray = None) -> Tuple[np.ndarray, int]:
    """RGB -> (labels, pixels not exactly a palette colour) in the ToyFaces colours (storage.masks.decode)."""
    return masks.decode(rgb, palette, alpha)
