"""Part masks as images: palette colours <-> class labels, with a clear word about colours not in the palette."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import EditGANError, InputError


def decode_mask(rgb: np.ndarray, palette, alpha: Optional[np.ndarray] = None,
                class_names: Optional[Sequence[str]] = None) -> Tuple[np.ndarray, str]:
    """RGB mask [H, W, 3] -> (labels [H, W] uint8, message). Unknown colours go to the nearest class; the
    message says how many pixels that was (empty when every colour was exact)."""
    palette = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise EditGANError(f"a mask must be an RGB image; got an array of shape {rgb.shape}")
    labels, unknown = decode(rgb[..., :3], palette, alpha)
    if not unknown:
        return labels, ""
    frac = unknown / labels.size
    return labels, (f"{unknown} pixels ({frac:.1%}) had colours outside the palette and were mapped to the "
                    f"nearest class")


def grow(mask: np.ndarray, px: int, *, round_: bool = False) -> np.ndarray:
    """A bool mask [H, W] grown by ``px`` pixels: a square neighbourhood, or with ``round_`` an octagon (3x3
    squares and crosses in turn), whose corners do not draw boxes around a shape."""
    mask = np.asarray(mask, bool)
    if px <= 0 or not mask.any():
        return mask.copy()
    t = torch.from_numpy(mask.astype(np.float32))[None, None]
    if round_:
        for i in range(px):
            if i % 2:
                t = torch.maximum(F.max_pool2d(t, (3, 1), stride=1, padding=(1, 0)),
                                  F.max_pool2d(t, (1, 3), stride=1, padding=(0, 1)))
            else:
                t = F.max_pool2d(t, 3, stride=1, padding=1)
        return t[0, 0].numpy() > 0
    k = 2 * px + 1             # a square is separable: rows, then columns (O(px) per pixel, not O(px^2))
    t = F.max_pool2d(t, (k, 1), stride=1, padding=(px, 0))
    return F.max_pool2d(t, (1, k), stride=1, padding=(0, px))[0, 0].numpy() > 0


def encode_mask(labels: np.ndarray, palette) -> np.ndarray:
    """Labels [H, W] -> RGB [H, W, 3] uint8 with the palette's colours."""
    return colorize(np.asarray(labels), np.asarray(palette, dtype=np.uint8).reshape(-1, 3))


def colorize(mask: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Label map [H, W] (int) -> RGB image [H, W, 3] uint8."""
    mask = np.asarray(mask)
    if mask.min(initial=0) < 0 or mask.max(initial=0) >= len(palette):
        raise InputError(f"mask has labels outside 0..{len(palette) - 1}")
    return palette[mask]


def decode(rgb: np.ndarray, palette: np.ndarray, alpha: Optional[np.ndarray] = None
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
