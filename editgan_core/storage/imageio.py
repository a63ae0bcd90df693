"""Reading user images of any kind and fitting them to a generator's square canvas, saying what was done."""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageInputError
from ..pipeline.photo import Crop, centre_crop, cut

MIN_SIDE = 8                   # smaller images carry nothing to embed
MAX_PIXELS = 80_000_000        # refuse decompression bombs before decoding them

ImageLike = Union[str, os.PathLike, bytes, np.ndarray, Image.Image]


@dataclass
class PreparedImage:
    tensor: torch.Tensor               # [1, 3, R, R] float in [-1, 1]
    array: np.ndarray                  # [R, R, 3] uint8, the same pixels
    note: str                          # what was done, in words
    crop: Crop                         # the square of the original used
    original_size: Tuple[int, int]     # (width, height)
    original_mode: str
    original: np.ndarray               # [H, W, 3] uint8: the photo as RGB, what paste-back returns into
    read_note: str = ""                # what reading it took (EXIF orientation, mode conversion), in words

    @property
    def box(self) -> Tuple[int, int, int, int]:
        """The crop's bounds (left, top, right, bottom); beyond the photo where it was padded."""
        return self.crop.bounds()


def open_image(src: ImageLike):
    """Anything image-like -> PIL Image (not yet converted). Clear errors for corrupt or hostile inputs."""
    if isinstance(src, Image.Image):
        return src
    if isinstance(src, np.ndarray):
        return _from_array(src)
    # Image.open reads only the header, so the size is checked before any pixel is decoded. PIL's own global
    # limit (Image.MAX_IMAGE_PIXELS) is left as it is: changing it per call would race with other threads.
    try:
        im = Image.open(io.BytesIO(src) if isinstance(src, (bytes, bytearray)) else Path(src))
        if im.size[0] * im.size[1] > MAX_PIXELS:
            raise ImageInputError(f"image is {im.size[0]}x{im.size[1]} pixels; the limit is {MAX_PIXELS:,}")
        im.load()
    except ImageInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageInputError(f"refused: the image claims to be enormous ({e})") from e
    except FileNotFoundError as e:
        raise ImageInputError(f"no such image file: {src}") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageInputError(f"not a readable image ({type(e).__name__}: {e})") from e
    return im


def _from_array(a: np.ndarray):
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageInputError(f"an image array must be HxW, HxWx1, HxWx3 or HxWx4; got shape {a.shape}")
    if a.dtype == np.uint8:
        return Image.fromarray(a)
    a = a.astype(np.float64)
    if a.size and np.nanmax(a) > 255:
        a = a / 257.0          # 16-bit range
    elif a.size and np.nanmax(a) <= 1.0:
        a = a * 255.0          # float in [0, 1]
    return Image.fromarray(np.clip(np.nan_to_num(a), 0, 255).round().astype(np.uint8))


def to_rgb(im, background=(255, 255, 255)) -> Tuple[Image.Image, str]:
    """Any PIL mode -> RGB, upright. EXIF orientation is applied; transparency is composited over ``background``;
    16/32-bit and float are rescaled."""
    notes = []
    turn = im.getexif().get(0x0112, 1)          # EXIF orientation: how the camera was held
    if turn not in (None, 1):
        im = ImageOps.exif_transpose(im)
        notes.append(f"turned upright (EXIF orientation {turn})")
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or (a.size and a.max() > 255) else 255.0
        if mode == "F" and a.size and a.max() <= 1.0:
            top = 1.0
        im = Image.fromarray(np.clip(a / top * 255.0, 0, 255).round().astype(np.uint8))
        notes.append(f"{mode} pixels rescaled to 8 bits")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:
            notes.append("transparency composited over white")
        bg = Image.new("RGBA", rgba.size, tuple(background) + (255,))
        im = Image.alpha_composite(bg, rgba)
    if im.mode != "RGB":
        if im.mode not in ("RGB", "RGBA"):
            notes.append(f"{mode} converted to RGB")
        im = im.convert("RGB")
    return im, "; ".join(notes)


def prepare_image(src: ImageLike, resolution: int, *, fit: str = "crop", background=(255, 255, 255),
                  crop: Optional[Crop] = None, visible: Optional[Tuple[int, int, int, int]] = None
                  ) -> PreparedImage:
    """Fit any image to a ``resolution`` square: center-crop (``fit='crop'``) or pad with ``background``
    (``'pad'``), then resize. ``crop`` (a :class:`editgan_core.pipeline.photo.Crop`: a moved box, a face alignment) cuts that
    square instead, reflecting the photo where it leaves it; ``visible`` is the part of the square the model draws
    (the registry's ``crop``, e.g. cars), fitted to the photo by the default crop."""
    im = open_image(src)
    if min(im.size) < MIN_SIDE:
        raise ImageInputError(f"image is only {im.size[0]}x{im.size[1]} pixels; need at least {MIN_SIDE}x{MIN_SIDE}")
    mode = im.mode
    rgb, note = to_rgb(im, background)
    w, h = rgb.size                              # upright (EXIF)
    notes = [note] if note else []
    arr = np.asarray(rgb, np.uint8)
    fill = tuple(background) if fit == "pad" else None
    if crop is None:
        crop = centre_crop((w, h), fit, visible, resolution)
        if w != h or visible is not None:
            side = round(crop.side)
            notes.append(f"{'center-cropped' if fit == 'crop' else 'padded'} {w}x{h} to {side}x{side} "
                         f"{_describe(crop)}")
    else:
        notes.append(f"cut the square {_describe(crop)} from {w}x{h}")
    out = cut(arr, crop, resolution, fill=fill)
    if round(crop.side) != resolution:
        side = round(crop.side)
        notes.append(f"resized {side}x{side} {'down' if resolution < crop.side else 'up'} to "
                     f"{resolution}x{resolution}")
    t = torch.from_numpy(out).permute(2, 0, 1)[None].float() / 127.5 - 1
    return PreparedImage(t, out, "; ".join(notes) or "used as is", crop, (w, h), mode, arr, note)


def _describe(crop) -> str:
    if crop.angle == 0:
        left, top, right, bottom = crop.bounds()
        return f"(box {left}, {top}, {right}, {bottom})"
    return f"(centre {crop.cx:.0f}, {crop.cy:.0f}, side {crop.side:.0f}, turned {math.degrees(crop.angle):.1f} deg)"
