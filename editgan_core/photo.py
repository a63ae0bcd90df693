"""Real photos: the crop that goes into the model, and the edit handed back at the photo's own size.

A :class:`Crop` is the model's square placed in the photo: a centre, a side and a rotation, in photo pixels. An
axis-aligned box (a centre-crop, a padded photo, a box the user moved) is a Crop with angle 0; a face alignment
(:mod:`editgan_core.align`) is a rotated one. ``Crop.matrix`` maps model pixels to photo pixels; everything here goes
through it:

- ``cut(photo, crop, R)`` resamples the crop to the model's R x R input (large photos are box-reduced first; where
  the crop leaves the photo it is filled by reflection fading into a blur, as the FFHQ alignment does, or by a
  colour);
- ``paste_back(photo, edited, region, crop)`` maps the edited R x R image back through the inverse and blends it in
  only inside the edit region -- mapped to photo pixels, dilated by ``PASTE.dilate`` and feathered over
  ``PASTE.feather`` (fractions of the crop's side). Every photo pixel outside the dilated region is returned exactly
  as it was, at the photo's own resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from .errors import EditGANError
from .masks import grow
from .settings import PASTE


@dataclass(frozen=True)
class Crop:
    """The model's square in a photo: centre (cx, cy) and side in photo pixels (continuous coordinates: pixel i
    covers [i, i + 1]), and the angle (radians) of its x axis; the y axis is the x axis turned by +90 degrees."""
    cx: float
    cy: float
    side: float
    angle: float = 0.0

    @classmethod
    def from_box(cls, box: Sequence[float]) -> "Crop":
        """(left, top, right, bottom), a square -> the axis-aligned Crop."""
        left, top, right, bottom = (float(v) for v in box)
        if right - left <= 0 or not math.isclose(bottom - top, right - left, rel_tol=1e-9):
            raise EditGANError(f"the crop box {tuple(box)} is not a square")
        return cls((left + right) / 2, (top + bottom) / 2, right - left)

    def axes(self) -> Tuple[np.ndarray, np.ndarray]:
        x = np.array([math.cos(self.angle), math.sin(self.angle)])
        return x, np.array([-x[1], x[0]])

    def matrix(self, R: int) -> np.ndarray:
        """[2, 3]: model pixel coordinates (u, v) in [0, R] -> photo coordinates."""
        x, y = self.axes()
        k = self.side / R
        t = np.array([self.cx, self.cy]) - 0.5 * self.side * (x + y)
        return np.array([[k * x[0], k * y[0], t[0]], [k * x[1], k * y[1], t[1]]])

    def inverse(self, R: int) -> np.ndarray:
        """[2, 3]: photo coordinates -> model pixel coordinates."""
        m = self.matrix(R)
        a = np.linalg.inv(m[:, :2])
        return np.concatenate([a, -a @ m[:, 2:]], axis=1)

    def corners(self) -> np.ndarray:
        """[4, 2] photo coordinates of the model's top-left, top-right, bottom-right and bottom-left corners."""
        m = self.matrix(1)
        uv = np.array([[0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], float)
        return uv @ m.T

    def bounds(self, margin: float = 0.0) -> Tuple[int, int, int, int]:
        """The integer box (left, top, right, bottom) holding the crop, grown by ``margin`` pixels."""
        c = self.corners()
        return (math.floor(c[:, 0].min() - margin), math.floor(c[:, 1].min() - margin),
                math.ceil(c[:, 0].max() + margin), math.ceil(c[:, 1].max() + margin))

    def moved(self, dx: float = 0.0, dy: float = 0.0, zoom: float = 1.0, turn: float = 0.0) -> "Crop":
        """Shifted by (dx, dy) fractions of its side (along the photo's axes), its side times ``zoom``, turned by
        ``turn`` radians: what the user's box controls do."""
        if not zoom > 0:
            raise EditGANError(f"the crop's scale must be positive, got {zoom}")
        return Crop(self.cx + dx * self.side, self.cy + dy * self.side, self.side * zoom, self.angle + turn)

    def as_dict(self) -> dict:
        return {"cx": self.cx, "cy": self.cy, "side": self.side, "angle": self.angle}

    @classmethod
    def from_dict(cls, d: dict) -> "Crop":
        try:
            crop = cls(float(d["cx"]), float(d["cy"]), float(d["side"]), float(d.get("angle", 0.0)))
        except (KeyError, TypeError, ValueError) as e:
            raise EditGANError(f"not a crop description: {d!r}") from e
        if not (crop.side > 0 and all(map(math.isfinite, (crop.cx, crop.cy, crop.side, crop.angle)))):
            raise EditGANError(f"not a usable crop: {d!r}")
        return crop


CropLike = Union[Crop, Sequence[float]]


def as_crop(crop: CropLike) -> Crop:
    return crop if isinstance(crop, Crop) else Crop.from_box(crop)


def centre_crop(size: Tuple[int, int], fit: str = "crop", visible: Optional[Tuple[int, int, int, int]] = None,
                R: int = 1) -> Crop:
    """The default crop of a photo of ``size`` (width, height): the largest centred square (``fit='crop'``) or the
    smallest square around the whole photo (``'pad'``), on whole pixels. ``visible`` = (top, bottom, left, right),
    the model rows and columns of R that a model really draws (the registry's car crop: a 512 x 384 picture in a
    512 net), fits that part to the photo instead, the rest of the square beyond it."""
    if fit not in ("crop", "pad"):
        raise ValueError(f"fit must be 'crop' or 'pad', got {fit!r}")
    W, H = size
    if visible is None:
        side = min(W, H) if fit == "crop" else max(W, H)
        return Crop.from_box(((W - side) // 2, (H - side) // 2, (W - side) // 2 + side, (H - side) // 2 + side))
    top, bottom, left, right = visible
    fw, fh = (right - left) / R, (bottom - top) / R           # the visible part as fractions of the square
    side = (min if fit == "crop" else max)(W / fw, H / fh)
    # the visible part's centre sits at the photo's centre
    return Crop(W / 2 - ((left + right) / 2 / R - 0.5) * side, H / 2 - ((top + bottom) / 2 / R - 0.5) * side, side)


def cut(photo: np.ndarray, crop: CropLike, R: int, *, fill=None) -> np.ndarray:
    """The crop of ``photo`` [H, W, 3] uint8 resampled to [R, R, 3] uint8. Beyond the photo: ``fill`` (an RGB
    colour), or by default the photo reflected at its edge, fading into a blur of itself with the distance. A box
    on whole pixels is cut and resized with Lanczos; a rotated or fractional crop is resampled bicubically (after
    an integer box reduction when it is far larger than R)."""
    from PIL import Image

    crop = as_crop(crop)
    photo = _check_photo(photo)
    H, W = photo.shape[:2]
    left, top, right, bottom = crop.bounds()
    on_pixels = crop.angle == 0 and np.allclose(crop.corners()[[0, 2]], [[left, top], [right, bottom]])
    k = 1 if on_pixels else max(1, int(crop.side / R / 2))
    if not on_pixels:                                        # room for the bicubic taps
        left, top, right, bottom = crop.bounds(margin=2 * k + 2)
    part = photo[max(top, 0):min(bottom, H), max(left, 0):min(right, W)]
    if part.size == 0:
        raise EditGANError("the crop lies entirely outside the photo")
    pad = [max(0, -top), max(0, bottom - H), max(0, -left), max(0, right - W)]     # photo pixels, t b l r
    if on_pixels:
        img = Image.fromarray(_pad(part, pad, fill) if any(pad) else part)
        return np.asarray(img.resize((R, R), Image.LANCZOS) if img.size != (R, R) else img, np.uint8).copy()
    img = Image.fromarray(part)
    ox, oy = max(left, 0), max(top, 0)                       # photo coordinates of the part's origin
    if k > 1:
        img = img.reduce(k)
    pad = [-(-p // k) for p in pad]
    if any(pad):
        img = Image.fromarray(_pad(np.asarray(img), pad, fill))
        ox, oy = ox - pad[2] * k, oy - pad[0] * k
    m = crop.matrix(R)                                       # model pixel -> photo -> the reduced, padded part
    data = np.concatenate([m[:, :2] / k, (m[:, 2:] - np.array([[ox], [oy]])) / k], axis=1)
    out = img.transform((R, R), Image.AFFINE, data=tuple(data.reshape(-1)), resample=Image.BICUBIC)
    return np.asarray(out, np.uint8).copy()


def _pad(a: np.ndarray, pad, fill) -> np.ndarray:
    from PIL import Image, ImageFilter

    t, b, l, r = pad
    if fill is not None:
        out = np.empty((a.shape[0] + t + b, a.shape[1] + l + r, 3), np.uint8)
        out[:] = np.asarray(fill, np.uint8)
        out[t:t + a.shape[0], l:l + a.shape[1]] = a
        return out
    out = np.pad(a, ((t, b), (l, r), (0, 0)), mode="reflect" if min(a.shape[:2]) > 1 else "edge")
    # fade into a blur with the distance from the photo (FFHQ's alignment does the same, so that a mirrored
    # background does not read as content)
    reach = max(t, b, l, r)
    blur = np.asarray(Image.fromarray(out).filter(ImageFilter.GaussianBlur(max(1.0, reach / 4))), np.float32)
    yy = np.arange(out.shape[0])[:, None]
    xx = np.arange(out.shape[1])[None, :]
    d = np.maximum(np.maximum(t - yy, yy - (t + a.shape[0] - 1)), np.maximum(l - xx, xx - (l + a.shape[1] - 1)))
    w = np.clip(d / max(1, reach / 2), 0, 1)[..., None]
    return np.clip(np.rint(out * (1 - w) + blur * w), 0, 255).astype(np.uint8)


def _check_photo(photo: np.ndarray) -> np.ndarray:
    photo = np.asarray(photo)
    if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
        raise EditGANError(f"the photo must be an RGB uint8 array [H, W, 3], got {photo.dtype} {photo.shape}")
    return photo


def _warp_into(square: np.ndarray, crop: Crop, window: Tuple[int, int, int, int], resample) -> np.ndarray:
    """A model-size array [R, R(, C)] warped onto the photo ``window`` (left, top, right, bottom) through the crop:
    [h, w(, C)]; zero where the window is outside the crop."""
    from PIL import Image

    R = square.shape[0]
    left, top, right, bottom = window
    inv = crop.inverse(R)
    data = np.concatenate([inv[:, :2], inv[:, :2] @ np.array([[left], [top]]) + inv[:, 2:]], axis=1)
    img = Image.fromarray(square)
    return np.asarray(img.transform((right - left, bottom - top), Image.AFFINE, data=tuple(data.reshape(-1)),
                                    resample=resample, fillcolor=0))


def _paste_window(crop: Crop, H: int, W: int, reach: int) -> Tuple[int, int, int, int]:
    left, top, right, bottom = crop.bounds(margin=reach + 2)
    return max(left, 0), max(top, 0), min(right, W), min(bottom, H)


def region_alpha(region: np.ndarray, crop: CropLike, photo_size: Tuple[int, int], *,
                 dilate: float = PASTE.dilate, feather: float = PASTE.feather) -> np.ndarray:
    """The blend weight [H, W] float32 of an edit ``region`` [R, R] (bool, model pixels) in a photo of
    ``photo_size`` (width, height) through ``crop``: 1 inside the region grown by ``dilate`` x the crop's side,
    falling to 0 over ``feather`` x the side, and exactly 0 outside the grown region."""
    W, H = photo_size
    crop = as_crop(crop)
    alpha = np.zeros((H, W), np.float32)
    window, a = _region_window(np.asarray(region, bool), crop, H, W, dilate, feather)
    if window is not None:
        left, top, right, bottom = window
        alpha[top:bottom, left:right] = a
    return alpha


def _region_window(region: np.ndarray, crop: Crop, H: int, W: int, dilate: float, feather: float):
    """(window, its alpha) for region_alpha / paste_back: the work stays inside the crop's bounds."""
    from PIL import Image

    spread, ramp = max(1, round(dilate * crop.side)), max(1, round(feather * crop.side))
    window = _paste_window(crop, H, W, spread + ramp)
    if window[2] <= window[0] or window[3] <= window[1] or not region.any():
        return None, None
    canvas = _warp_into(region.astype(np.uint8) * 255, crop, window, Image.NEAREST) > 127
    # the grown region stops at the crop's edge: beyond it there is no edited image
    in_crop = _warp_into(np.full(region.shape, 255, np.uint8), crop, window, Image.NEAREST) > 127
    grown = torch.from_numpy((grow(canvas, spread + ramp) & in_crop).astype(np.float32))[None, None]
    # the ramp: the mean of ``ramp`` successive erosions of the grown region -> 1 deep inside, 1/ramp at its edge
    alpha, cur = torch.zeros_like(grown), grown
    for _ in range(ramp):
        alpha += cur
        cur = -F.max_pool2d(-cur, 3, stride=1, padding=1)
    return window, (alpha / ramp)[0, 0].numpy()


def paste_back(photo: np.ndarray, edited: np.ndarray, region: np.ndarray, crop: CropLike, *,
               dilate: float = PASTE.dilate, feather: float = PASTE.feather) -> np.ndarray:
    """``photo`` [H, W, 3] uint8 (as prepared: RGB), ``edited`` [R, R, 3] uint8 the edited model-size image,
    ``region`` [R, R] the edit region, ``crop`` the crop it came from (a Crop, or prepare_image's box) -> the photo
    [H, W, 3] uint8 with the edit blended in; pixels outside the dilated region are the photo's own, unchanged."""
    from PIL import Image

    photo = _check_photo(photo)
    edited = np.asarray(edited)
    region = np.asarray(region, bool)
    if edited.ndim != 3 or edited.shape[0] != edited.shape[1] or edited.shape[:2] != region.shape:
        raise EditGANError(f"the edited image {edited.shape} and the region {region.shape} must be the model's "
                           "square")
    crop = as_crop(crop)
    H, W = photo.shape[:2]
    out = photo.copy()
    window, alpha = _region_window(region, crop, H, W, dilate, feather)
    if window is None:
        return out
    left, top, right, bottom = window
    R = edited.shape[0]
    up = max(1, round(crop.side / R))                  # enlarge with Lanczos first; the warp then only interpolates
    big = np.asarray(Image.fromarray(edited).resize((R * up, R * up), Image.LANCZOS)) if up > 1 else edited
    full = _warp_into(big, crop, window, Image.BICUBIC).astype(np.float32)
    inside = alpha > 0
    a = alpha[inside][:, None]
    view = out[top:bottom, left:right]
    view[inside] = np.clip(np.rint(a * full[inside] + (1 - a) * view[inside].astype(np.float32)), 0, 255)
    return out


def changed_region(before: Optional[np.ndarray], after: Optional[np.ndarray], shape: Tuple[int, int],
                   classes: Optional[Sequence[int]] = None) -> np.ndarray:
    """Where an edit may show in the photo, from the segmentations ``before`` and ``after`` [R, R], grown by the edit
    margin (``EDIT.margin``): the edited parts ``classes`` (a mask edit's, a vector's) where they are before or after
    the edit, as a mask edit's own region is; without ``classes``, every pixel whose part changed; the whole square
    when there is no segmentation."""
    from .settings import EDIT

    if before is None or after is None:
        return np.ones(shape, bool)
    before, after = np.asarray(before), np.asarray(after)
    if classes is not None:
        return grow(np.isin(before, list(classes)) | np.isin(after, list(classes)), EDIT.margin)
    return grow(before != after, EDIT.margin)
