"""What a studio session holds, without any Gradio import: its history's steps, an uploaded photo, the images
queued for annotation, and the preview of a photo with its crop drawn on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from PIL import Image, ImageDraw


@dataclass
class Step:
    what: str                                   # in words, for the history list
    ws: torch.Tensor                            # [1, num_ws, w_dim]
    image: np.ndarray                           # [R, R, 3] uint8
    labels: Optional[np.ndarray]                # [R, R] branch segmentation (None when the model has no branch)
    anchor: torch.Tensor                        # latent the sliders act on (ws minus the slider offsets)
    scales: Dict[str, float] = field(default_factory=dict)
    exact: bool = True                          # False: image by the bf16 fast path (re-rendered for export)
    tuning: object = None                       # embed.Tuning of its photo (pivotal tuning), else the model's G
    edited: Tuple[str, ...] = ()                # part classes edited since the image (where paste-back looks)


@dataclass
class Upload:
    """The photo as uploaded (RGB, upright) and what was found in it; cut again whenever the crop is moved."""
    original: np.ndarray                        # [H, W, 3] uint8
    read_note: str                              # what reading it took (EXIF turn, mode, ...), in words
    faces: list                                 # editgan_core.pipeline.align.Face, largest first
    cut: str                                    # 'face' or 'box'
    note: str = ""                              # why there are no faces, when alignment could not run


def draw_crops(photo: np.ndarray, crop, others, visible, R: int, side: int = 384) -> np.ndarray:
    """A preview of ``photo`` (long side ``side``) with ``crop`` outlined in red (its top edge thicker, so a turn
    shows), the part the model draws when ``visible``, and ``others`` ((face number, crop) of the other faces) in
    yellow, numbered as the face picker numbers them."""
    H, W = photo.shape[:2]
    scale = side / max(H, W)
    thumb = Image.fromarray(photo).resize((max(1, round(W * scale)), max(1, round(H * scale))), Image.BILINEAR)
    draw = ImageDraw.Draw(thumb)

    def poly(c, colour, width):
        pts = [tuple(p * scale) for p in c.corners()]
        draw.line(pts + pts[:1], fill=colour, width=width)
        draw.line(pts[:2], fill=colour, width=width + 2)          # the top edge
        return pts

    for i, c in others:
        pts = poly(c, (255, 220, 0), 2)
        draw.text(pts[0], f" face {i}", fill=(255, 220, 0))
    poly(crop, (255, 0, 0), 2)
    if visible is not None:
        top, bottom, left, right = visible
        m = crop.matrix(R)
        pts = [tuple((m[:, :2] @ (u, v) + m[:, 2]) * scale) for u, v in
               ((left, top), (right, top), (right, bottom), (left, bottom))]
        draw.line(pts + pts[:1], fill=(255, 120, 120), width=1)
    return np.asarray(thumb)


@dataclass
class Annotation:
    ws: torch.Tensor
    image: np.ndarray
    labels: Optional[np.ndarray] = None         # the saved annotation
    proposal: Optional[np.ndarray] = None       # the mask proposed when the image was added (corrected by the user)
    source: str = ""                            # where the proposal came from, in words
