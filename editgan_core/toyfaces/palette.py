"""Part classes of ToyFaces and the palette that masks, the app and the segmentation branch share."""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from ..storage import masks

# (name, RGB) in class-index order. Colours are far apart so that painted masks decode unambiguously.
CLASSES: List[Tuple[str, Tuple[int, int, int]]] = [
    ("background", (0, 0, 0)),
    ("skin", (255, 204, 153)),
    ("hair", (140, 70, 20)),
    ("ears", (255, 128, 0)),
    ("eyebrows", (90, 0, 160)),
    ("eye_whites", (255, 255, 255)),
    ("irises", (0, 120, 255)),
    ("nose", (255, 0, 128)),
    ("lips", (220, 0, 0)),
    ("mouth", (0, 200, 120)),
    ("neck", (180, 180, 0)),
    ("clothing", (0, 60, 120)),
]
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
