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
from .settings import PASTE


def grow(mask: np.ndarray, px: int) -> np.ndarray:
    """A bool mask [H, W] grown by ``px`` pixels (square neighbourhood)."""
    mask = np.asarray(mask, bool)
    if px <= 0 or not mask.any():
        return mask.copy()
    t = torch.from_numpy(mask.astype(np.float32))[None, None]
    return F.max_pool2d(t, 2 * px + 1, stride=1, padding=px)[0, 0].numpy() > 0


def region_alpha(region: np.ndarray, box: Sequence[int], photo_size: Tuple[int, int], *,
                 dilate: float = PASTE.dilate, feather: float = PASTE.feather) -> np.ndarray:
    """The blend weight [H, W] float32 of an edit ``region`` [R, R] (bool, model pixels) in a photo of
    ``photo_size`` (width, height) through ``box``: 1 inside the region grown by ``dilate`` x the box side, falling
    to 0 over ``feather`` x the box side, and exactly 0 outside the grown region."""
    W, H = photo_size
    left, top, right, bottom = (int(v) for v in box)
    side = right - left
    if side <= 0 or bottom - top != side:
        raise EditGANError(f"the crop box {tuple(box)} is not a square")
    region = np.asarray(region, bool)
    canvas = np.zeros((H, W), np.float32)
    # model pixels -> box pixels (nearest), then the part of the box inside the photo
    idx = (np.arange(side) * region.shape[0]) // side
    up = region[idx][:, idx]
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(bottom, H), min(right, W)
    if y1 > y0 and x1 > x0:
        canvas[y0:y1, x0:x1] = up[y0 - top:y1 - top, x0 - left:x1 - left]
    grow, ramp = max(1, round(dilate * side)), max(1, round(feather * side))
    t = torch.from_numpy(canvas)[None, None]
    grown = F.max_pool2d(t, 2 * (grow + ramp) + 1, stride=1, padding=grow + ramp)
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
    left, top, right, bottom = (int(v) for v in box)
    side = right - left
    big = np.asarray(Image.fromarray(edited).resize((side, side), Image.LANCZOS), np.float32)
    full = np.zeros((H, W, 3), np.float32)
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(bottom, H), min(right, W)
    full[y0:y1, x0:x1] = big[y0 - top:y1 - top, x0 - left:x1 - left]
    out = photo.copy()
    inside = alpha > 0
    a = alpha[inside][:, None]
    out[inside] = np.clip(np.rint(a * full[inside] + (1 - a) * photo[inside].astype(np.float32)), 0, 255)
    return out
