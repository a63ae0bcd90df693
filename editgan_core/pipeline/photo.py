"""Real photos: the crop that goes into the model, and the edit handed back at the photo's own size.

A :class:`Crop` is the model's square placed in the photo: a centre, a side and a rotation, in photo pixels. An
axis-aligned box (a centre-crop, a padded photo, a box the user moved) is a Crop with angle 0; a face alignment
(:mod:`editgan_core.pipeline.align`) is a rotated one. ``Crop.matrix`` maps model pixels to photo pixels; everything here goes
through it:

- ``cut(photo, crop, R)`` resamples the crop to the model's R x R input (large photos are box-reduced first; where
  the crop leaves the photo it is filled by reflection fading into a blur, as the FFHQ alignment does, or by a
  colour);
- ``changed_region(before, after, labels_before, labels_after, classes)`` finds where an edit acts, from the
  model-size results before and after it;
- ``hand_back(photo, crop, before, after, region)`` hands the edit back at the photo's own size: the model's change
  added to the photo, reshaped parts Poisson-blended, only inside the region mapped to photo pixels, dilated by
  ``PASTE.dilate`` and feathered over ``PASTE.feather`` (fractions of the crop's side);
- ``paste_back(photo, edited, region, crop)`` is the plain paste: the model's pixels over a region, feathered.

Every photo pixel outside the grown region is returned exactly as it was, at the photo's own resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

from ..errors import EditGANError, InputError
from ..settings import PASTE
from ..storage.masks import grow


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
        raise InputError(f"fit must be 'crop' or 'pad', got {fit!r}")
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


def _region_window(region: np.ndarray, crop: Crop, H: int, W: int, dilate: float, feather: float, window=None):
    """(window, its alpha) for region_alpha / paste_back: the work stays inside the crop's bounds (or the
    ``window`` given)."""
    spread, ramp = max(1, round(dilate * crop.side)), max(1, round(feather * crop.side))
    window = window or _paste_window(crop, H, W, spread + ramp)
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
    full = _to_window(edited.astype(np.float32), crop, window)
    inside = alpha > 0
    a = alpha[inside][:, None]
    view = out[top:bottom, left:right]
    view[inside] = np.clip(np.rint(a * full[inside] + (1 - a) * view[inside].astype(np.float32)), 0, 255)
    return out


@dataclass(frozen=True)
class ChangedRegion:
    """Where an edit acts, in model pixels [R, R]: ``acted`` (parts that moved, and colour changes beside them),
    and ``reshaped``, the part of it where the segmentation changed (a subset)."""
    acted: np.ndarray
    reshaped: np.ndarray


def changed_region(before: np.ndarray, after: np.ndarray, before_labels: Optional[np.ndarray] = None,
                after_labels: Optional[np.ndarray] = None, classes: Optional[Sequence[int]] = None) -> ChangedRegion:
    """Where an edit really acts, from the model-size images ``before`` / ``after`` [R, R, 3] uint8 and, when the
    model has a branch, their segmentations [R, R]:

    - parts that moved: pixels whose label changed (from one edited class to another, when ``classes`` are
      given: an eye that shrank under a hair vector is not the edit) where the colour
      changed too (a label flipping on an edge that did not change is the branch's flicker), without specks
      smaller than ``PASTE.min_part`` of the square;
    - beside them (within ``PASTE.near`` of the side): the parts they reshape (``region.reshaped``: a part of
      which at least ``PASTE.part_share`` moved, like lips that curved), and within half that of those, pixels
      whose colour changed beyond ``PASTE.levels`` (a 3x3 mean of the largest channel difference), like a cheek's
      shading;
    - no part moved (the branch sees none of the edited parts change), or no segmentation: the colour changes
      alone (on the edited classes, when known), without specks.

    Colour changes far from any moved part (a vector's pull on the background or the eyes) are not the edit."""
    before, after = np.asarray(before), np.asarray(after)
    if before.shape != after.shape or before.ndim != 3 or before.shape[0] != before.shape[1]:
        raise EditGANError(f"the images before {before.shape} and after {after.shape} must be the model's square")
    R = before.shape[0]
    diff = torch.from_numpy(np.abs(after.astype(np.float32) - before.astype(np.float32)).max(2))[None, None]
    coloured = (F.avg_pool2d(diff, 3, stride=1, padding=1, count_include_pad=False)[0, 0] > PASTE.levels).numpy()
    smallest = max(2, round(PASTE.min_part * R * R))
    moved = np.zeros((R, R), bool)
    if before_labels is not None and after_labels is not None:
        bl, al = np.asarray(before_labels), np.asarray(after_labels)
        moved = (bl != al) & grow(coloured, 1)
        if classes is not None:
            moved &= np.isin(bl, list(classes)) & np.isin(al, list(classes))
        moved = _without_specks(moved, smallest)
    if not moved.any():
        if classes is not None and before_labels is not None and after_labels is not None:
            coloured &= np.isin(bl, list(classes)) | np.isin(al, list(classes))
        return ChangedRegion(_without_specks(coloured, smallest), moved)
    reach = max(1, round(PASTE.near * R))
    reshaped = moved | (grow(moved, reach, round_=True) & _reshaped_parts(bl, al, moved))
    return ChangedRegion(reshaped | (coloured & grow(reshaped, max(1, reach // 2), round_=True)), reshaped)


def _reshaped_parts(before: np.ndarray, after: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """The parts (8-connected pieces of one class, before or after) of which ``moved`` covers at least
    ``PASTE.part_share``: lips that curved, not the skin around them that lost a few pixels to them."""
    from scipy import ndimage  # here: scipy adds 0.35 s to the start of every command; only hand-backs need it

    out = np.zeros(moved.shape, bool)
    for c in np.unique(np.concatenate([before[moved], after[moved]])):
        pieces, n = ndimage.label((before == c) | (after == c), structure=np.ones((3, 3)))
        size = np.bincount(pieces.ravel(), minlength=n + 1)
        hit = np.bincount(pieces[moved], minlength=n + 1)
        keep = hit >= PASTE.part_share * size
        keep[0] = False
        out |= keep[pieces]
    return out


def _without_specks(mask: np.ndarray, smallest: int) -> np.ndarray:
    """``mask`` without its 8-connected pieces of fewer than ``smallest`` pixels."""
    from scipy import ndimage  # here: as in _reshaped_parts

    pieces, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return mask.copy()
    sizes = np.bincount(pieces.ravel())
    keep = sizes >= smallest
    keep[0] = False
    return keep[pieces]


@dataclass
class HandBack:
    """An edit handed back at the photo's size (:func:`hand_back`)."""
    photo: np.ndarray             # [H, W, 3] uint8: the photo with the edit
    alpha: np.ndarray             # [H, W] float32: the handed-back region's weight (0: the photo's own pixels)
    region: ChangedRegion            # model pixels: where the edit acts
    changed_share: float          # share of the photo's pixels that differ from the photo as it was
    psnr_outside: float           # dB: the photo outside the handed-back region against itself (inf: unchanged)
    blend: str = "poisson"        # what came in where parts changed shape ('delta': the model's change only)

    def summary(self) -> str:
        psnr = "bit-identical" if math.isinf(self.psnr_outside) else f"{self.psnr_outside:.1f} dB"
        how = {"delta": "the model's change added to your photo", "poisson": "reshaped parts Poisson-blended",
               "replace": "reshaped parts pasted"}[self.blend]
        return f"{self.changed_share:.1%} of the photo changed ({how}); outside the handed-back region: {psnr}"


BLENDS = ("delta", "poisson", "replace")


def hand_back_edit(source: Tuple[np.ndarray, CropLike], before: np.ndarray, after: np.ndarray,
                   labels_before: Optional[np.ndarray] = None, labels_after: Optional[np.ndarray] = None,
                   classes: Optional[Sequence[int]] = None, *, blend: str = PASTE.blend) -> "HandBack":
    """The one call that hands an edit back into its photo, for the CLI and the studio: ``source`` = (photo, crop),
    the model-size images and segmentations before and after the edit, the edited classes (None: any) ->
    ``hand_back`` over ``changed_region``."""
    photo, crop = source
    region = changed_region(before, after, labels_before, labels_after, classes)
    return hand_back(photo, crop, before, after, region, blend=blend)


def hand_back(photo: np.ndarray, crop: CropLike, before: np.ndarray, after: np.ndarray, region: ChangedRegion, *,
              blend: str = PASTE.blend, dilate: float = PASTE.dilate, feather: float = PASTE.feather) -> HandBack:
    """The edit from the model-size ``before`` to ``after`` [R, R, 3] uint8 handed back into ``photo`` [H, W, 3]
    uint8 through ``crop``, only inside ``region`` (grown by ``dilate`` and feathered over ``feather``, fractions
    of the crop's side). The photo keeps its own detail: where parts kept their shape the edit's change (after -
    before, brought to the photo's size) is added to the photo. Where parts changed shape (``region.reshaped``),
    ``blend`` says what comes in: ``'delta'`` the change as elsewhere; ``'poisson'`` the model's pixels, blended
    in the gradient domain so that no seam shows (the EditGAN authors' choice); ``'replace'`` the model's pixels,
    feathered. (Measured in docs/results.md, issue #21: the change alone leaves a ghost of the old shape, two
    pupils in an eye that grew, wherever the model did not draw the photo closely.) Every photo pixel outside the
    grown region is returned exactly as it was."""
    if blend not in BLENDS:
        raise EditGANError(f"blend must be one of {', '.join(BLENDS)}; got {blend!r}")
    photo = _check_photo(photo)
    before, after = np.asarray(before), np.asarray(after)
    acted = np.asarray(region.acted, bool)
    if before.shape != after.shape or before.shape[:2] != acted.shape or before.shape[0] != before.shape[1]:
        raise EditGANError(f"the images before {before.shape} and after {after.shape} and the region "
                           f"{acted.shape} must be the model's square")
    crop = as_crop(crop)
    reshaped = np.asarray(region.reshaped, bool)
    H, W = photo.shape[:2]
    out, full_alpha = photo.copy(), np.zeros((H, W), np.float32)
    window, alpha = _region_window(acted, crop, H, W, dilate, feather)
    if window is not None:
        left, top, right, bottom = window
        full_alpha[top:bottom, left:right] = alpha
        view = photo[top:bottom, left:right].astype(np.float32)
        change = _to_window(after.astype(np.float32) - before.astype(np.float32), crop, window)
        result = view + alpha[..., None] * change
        if blend != "delta" and reshaped.any():
            # the reshaped parts, grown a little: what comes in there is the model's drawing
            _, beta = _region_window(reshaped, crop, H, W, dilate / 2, feather / 2 if blend == "replace" else 0.0,
                                     window)
            model = _to_window(after.astype(np.float32), crop, window)
            if blend == "replace":
                result = result * (1 - beta[..., None]) + model * beta[..., None]
            else:
                result = poisson_blend(result, model, beta > 0)
        inside = alpha > 0
        out[top:bottom, left:right][inside] = np.clip(np.rint(result[inside]), 0, 255).astype(np.uint8)
    return HandBack(out, full_alpha, region, float(np.any(out != photo, axis=2).mean()),
                    _psnr(out[full_alpha == 0], photo[full_alpha == 0]), blend)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    if a.size == 0:
        return float("inf")
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def _to_window(square: np.ndarray, crop: Crop, window: Tuple[int, int, int, int]) -> np.ndarray:
    """A float model-size image [R, R, C] brought to the photo ``window``: enlarged with Lanczos to about the
    photo's scale, then warped bicubically through the crop -> [h, w, C] float32 (0 outside the crop)."""
    R = square.shape[0]
    up = max(1, round(crop.side / R))
    planes = []
    for c in range(square.shape[2]):
        img = Image.fromarray(np.ascontiguousarray(square[..., c], np.float32), mode="F")
        if up > 1:
            img = img.resize((R * up, R * up), Image.LANCZOS)
        planes.append(_warp_into(np.asarray(img), crop, window, Image.BICUBIC).astype(np.float32))
    return np.stack(planes, axis=2)


def poisson_blend(base: np.ndarray, source: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """``base`` [h, w, C] with the pixels ``inside`` [h, w] replaced by those whose gradients are ``source``'s and
    which meet ``base`` on the border (Perez et al. 2003: one sparse 5-point Poisson solve, factorised once for the
    channels)."""
    from scipy.sparse import coo_matrix  # here: as in _reshaped_parts
    from scipy.sparse.linalg import splu

    inside = inside.copy()
    inside[[0, -1], :] = False                 # the window's own edge is always border
    inside[:, [0, -1]] = False
    n = int(inside.sum())
    if n == 0:
        return base
    index = np.full(inside.shape, -1, np.int64)
    index[inside] = np.arange(n)
    ys, xs = np.nonzero(inside)
    diff = source - base                       # solve for the correction g: lap(g) = lap(source - base), g = 0 outside
    rows, cols, vals = [np.arange(n)], [np.arange(n)], [np.full(n, 4.0)]
    rhs = 4 * diff[ys, xs]
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ny, nx = ys + dy, xs + dx
        rhs -= diff[ny, nx]
        j = index[ny, nx]
        ok = j >= 0
        rows.append(np.arange(n)[ok]), cols.append(j[ok]), vals.append(np.full(int(ok.sum()), -1.0))
    A = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)).tocsc()
    g = splu(A).solve(rhs.astype(np.float64))
    out = base.copy()
    out[ys, xs] += g.astype(np.float32)
    return out
