"""Part classes of ToyFaces and the palette that masks, the app and the segmentation branch share."""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from ..errors import InputError

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
    """Label map [H, W] (int) -> RGB image [H, W, 3] uint8."""
    mask = np.asarray(mask)
    if mask.min(initial=0) < 0 or mask.max(initial=0) >= len(palette):
        raise InputError(f"mask has labels outside 0..{len(palette) - 1}")
    return palette[mask]


def decode(rgb: np.ndarray, palette: np.ndarray = PALETTE, alpha: np.ndarray = None
           ) -> Tuple[np.ndarray, int]:
    """RGB [H, W, 3] -> (labels [H, W], number of pixels whose colour was not exactly a palette colour).

    Every pixel gets the nearest palette colour, so antialiased or slightly shifted strokes still decode;
    the count tells the caller how many pixels were guessed. Pixels with alpha == 0 count as background.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise InputError(f"expected an RGB image [H, W, 3], got shape {rgb.shape}")
    px = rgb[..., :3].astype(np.int32)
    d = ((px[:, :, None, :] - palette[None, None].astype(np.int32)) ** 2).sum(-1)   # [H, W, C]
    labels = d.argmin(-1)
    exact = d.min(-1) == 0
    if alpha is not None:
        transparent = np.asarray(alpha) == 0
        labels[transparent] = 0
        exact |= transparent
    return labels.astype(np.uint8), int((~exact).sum())
