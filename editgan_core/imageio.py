"""Reading user images of any kind and fitting them to a generator's square canvas, saying what was done."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Tuple, Union

import numpy as np
import torch

from .errors import EditGANError

MIN_SIDE = 8                   # smaller images carry nothing to embed
MAX_PIXELS = 80_000_000        # refuse decompression bombs before decoding them

ImageLike = Union[str, os.PathLike, bytes, np.ndarray, "PIL.Image.Image"]  # noqa: F821


class ImageInputError(EditGANError):
    """The input is not an image we can use (corrupt, empty, too small or too large)."""


@dataclass
class PreparedImage:
    tensor: torch.Tensor               # [1, 3, R, R] float in [-1, 1]
    array: np.ndarray                  # [R, R, 3] uint8, the same pixels
    note: str                          # what was done, in words
    box: Tuple[int, int, int, int]     # region of the original used (left, top, right, bottom); beyond it if padded
    original_size: Tuple[int, int]     # (width, height)
    original_mode: str


def open_image(src: ImageLike):
    """Anything image-like -> PIL Image (not yet converted). Clear errors for corrupt or hostile inputs."""
    from PIL import Image, UnidentifiedImageError

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
    from PIL import Image

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


def to_rgb(im, background=(255, 255, 255)) -> Tuple["PIL.Image.Image", str]:  # noqa: F821
    """Any PIL mode -> RGB. Transparency is composited over ``background``; 16/32-bit and float are rescaled."""
    from PIL import Image

    mode = im.mode
    notes = []
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


def prepare_image(src: ImageLike, resolution: int, *, fit: str = "crop", background=(255, 255, 255)
                  ) -> PreparedImage:
    """Fit any image to a ``resolution`` square: center-crop (``fit='crop'``) or pad (``'pad'``), then resize."""
    from PIL import Image

    if fit not in ("crop", "pad"):
        raise ValueError(f"fit must be 'crop' or 'pad', got {fit!r}")
    im = open_image(src)
    w, h = im.size
    if w < MIN_SIDE or h < MIN_SIDE:
        raise ImageInputError(f"image is only {w}x{h} pixels; need at least {MIN_SIDE}x{MIN_SIDE}")
    mode = im.mode
    rgb, note = to_rgb(im, background)
    notes = [note] if note else []
    if w != h:
        if fit == "crop":
            s = min(w, h)
            box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
            rgb = rgb.crop(box)
            notes.append(f"center-cropped {w}x{h} to {s}x{s} (box {box})")
        else:
            s = max(w, h)
            canvas = Image.new("RGB", (s, s), tuple(background))
            canvas.paste(rgb, ((s - w) // 2, (s - h) // 2))
            box = (-(s - w) // 2, -(s - h) // 2, -(s - w) // 2 + s, -(s - h) // 2 + s)
            rgb = canvas
            notes.append(f"padded {w}x{h} to {s}x{s}")
    else:
        box = (0, 0, w, h)
    if rgb.size != (resolution, resolution):
        side = rgb.size[0]
        rgb = rgb.resize((resolution, resolution), Image.LANCZOS)
        notes.append(f"resized {side}x{side} {'down' if resolution < side else 'up'} to {resolution}x{resolution}")
    arr = np.asarray(rgb, dtype=np.uint8).copy()
    t = torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 127.5 - 1
    return PreparedImage(t, arr, "; ".join(notes) or "used as is", box, (w, h), mode)
