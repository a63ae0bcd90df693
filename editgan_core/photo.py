"""Real photos: an edit handed back at the photo's own size (paste-back).

A photo reaches the model through :func:`editgan_core.imageio.prepare_image`, which records the ``box`` of the
photo it used (left, top, right, bottom in photo pixels; beyond the photo when it was padded) before resizing it
to the model's square. ``paste_back`` maps an edit back through that box: the edited model-size image is resized
to the box, and only the edit region -- mapped to photo pixels, dilated by ``PASTE.dilate`` and feathered over
``PASTE.feather`` (fractions of the box side) -- is blended in. Every photo pixel outside the dilated region is
returned exactly as it was, at the photo's own resolution.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .errors import EditGANError
from .masks import grow
from .settings import PASTE


def _square_box(box: Sequence[int]) -> Tuple[int, int, int, int]:
    left, top, right, bottom = (int(v) for v in box)
    if right - left <= 0 or bottom - top != right - left:
        raise EditGANError(f"the crop box {tuple(box)} is not a square")
    return left, top, right, bottom


def _into_photo(square: np.ndarray, box: Tuple[int, int, int, int], H: int, W: int) -> np.ndarray:
    """A box-sized array [side, side, ...] placed at ``box`` in a zero [H, W, ...] photo canvas (float32); the part
    of the box outside the photo (padding) is dropped."""
    left, top, right, bottom = box
    canvas = np.zeros((H, W) + square.shape[2:], np.float32)
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(bottom, H), min(right, W)
    if y1 > y0 and x1 > x0:
        canvas[y0:y1, x0:x1] = square[y0 - top:y1 - top, x0 - left:x1 - left]
    return canvas


def region_alpha(region: np.ndarray, box: Sequence[int], photo_size: Tuple[int, int], *,
                 dilate: float = PASTE.dilate, feather: float = PASTE.feather) -> np.ndarray:
    """The blend weight [H, W] float32 of an edit ``region`` [R, R] (bool, model pixels) in a photo of
    ``photo_size`` (width, height) through ``box``: 1 inside the region grown by ``dilate`` x the box side, falling
    to 0 over ``feather`` x the box side, and exactly 0 outside the grown region."""
    W, H = photo_size
    box = _square_box(box)
    side = box[2] - box[0]
    region = np.asarray(region, bool)
    idx = (np.arange(side) * region.shape[0]) // side             # model pixels -> box pixels (nearest)
    canvas = _into_photo(region[idx][:, idx], box, H, W) > 0
    spread, ramp = max(1, round(dilate * side)), max(1, round(feather * side))
    grown = torch.from_numpy(grow(canvas, spread + ramp).astype(np.float32))[None, None]
    # the ramp: the mean of ``ramp`` successive erosions of the grown region -> 1 deep inside, 1/ramp at its edge
    alpha, cur = torch.zeros_like(grown), grown
    for _ in range(ramp):
        alpha += cur
        cur = -F.max_pool2d(-cur, 3, stride=1, padding=1)
    return (alpha / ramp)[0, 0].numpy()


def paste_back(photo: np.ndarray, edited: np.ndarray, region: np.ndarray, box: Sequence[int], *,
               dilate: float = PASTE.dilate, feather: float = PASTE.feather) -> np.ndarray:
    """``photo`` [H, W, 3] uint8 (as prepared: RGB), ``edited`` [R, R, 3] uint8 the edited model-size image,
    ``region`` [R, R] the edit region, ``box`` the crop box of ``prepare_image`` -> the photo [H, W, 3] uint8 with the
    edit blended in; pixels outside the dilated region are the photo's own, unchanged."""
    from PIL import Image

    photo = np.asarray(photo)
    if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
        raise EditGANError(f"the photo must be an RGB uint8 array [H, W, 3], got {photo.dtype} {photo.shape}")
    edited = np.asarray(edited)
    if edited.ndim != 3 or edited.shape[0] != edited.shape[1] or edited.shape[:2] != np.asarray(region).shape:
        raise EditGANError(f"the edited image {edited.shape} and the region {np.asarray(region).shape} must be the "
                           "model's square")
    H, W = photo.shape[:2]
    alpha = region_alpha(region, box, (W, H), dilate=dilate, feather=feather)
    box = _square_box(box)
    side = box[2] - box[0]
    full = _into_photo(np.asarray(Image.fromarray(edited).resize((side, side), Image.LANCZOS)), box, H, W)
    out = photo.copy()
    inside = alpha > 0
    a = alpha[inside][:, None]
    out[inside] = np.clip(np.rint(a * full[inside] + (1 - a) * photo[inside].astype(np.float32)), 0, 255)
    return out
