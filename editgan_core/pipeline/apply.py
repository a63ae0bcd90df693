"""Replaying editing vectors: ``apply_vectors(G, ws, [(vector, scale), ...], branch=..., refine_steps=...)`` adds
the scaled offsets in one generator pass; with refinement, :func:`editgan_core.pipeline.editing.refine` runs a few
steps from there in the region of the vectors' classes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import EditGANError
from ..models.fast import enabled as fast_enabled, fast_synthesis
from ..runtime import adapt_threads
from ..settings import EDIT, REFINE
from ..storage.vectors import EditVector
from .editing import refine


def combined_delta(pairs: Sequence[Tuple[EditVector, float]], like: torch.Tensor) -> torch.Tensor:
    total = torch.zeros_like(like)
    for vec, scale in pairs:
        if scale:
            total = total + float(scale) * vec.delta.to(like.device, like.dtype)
    return total


@dataclass
class Applied:
    ws: torch.Tensor            # [N, num_ws, w_dim]
    image: torch.Tensor         # [N, 3, R, R]
    labels: Optional[np.ndarray]
    seconds: float
    exact: bool = True          # False: rendered by the bf16 fast path (a preview; exports re-render in float32)


def apply_vectors(G, ws: torch.Tensor, pairs: Sequence[Tuple[EditVector, float]], *, branch=None,
                  refine_steps: int = 0, segment_result: bool = False, distance=None, refine_lr: float = REFINE.lr,
                  batch: int = REFINE.batch, fast: bool = False,
                  work_resolution: Optional[int] = EDIT.work_resolution) -> Applied:
    """ws [N, num_ws, w_dim] + sum(scale * delta), in one generator pass; with ``refine_steps``, refined by
    :func:`editgan_core.pipeline.editing.refine` (needs the branch; at ``work_resolution``) in the region of the vectors'
    classes; with
    ``segment_result``, the branch's labels of the result too. ``fast``: render the image by the bf16 fast path
    (:mod:`editgan_core.models.fast`) where the device supports it -- for previews; the latents are the same."""
    t0 = time.time()
    if refine_steps < 0:
        raise EditGANError("refine_steps must be >= 0")
    adapt_threads()
    ws = ws.to(G.w_avg.device).float()
    if ws.ndim == 2:
        ws = ws[None]
    edited = ws + combined_delta(pairs, ws[0])
    if refine_steps:
        if branch is None:
            raise EditGANError("refinement needs the model's segmentation branch")
        classes = branch.cfg.class_indices(c for v, s in pairs if s for c in v.classes)
        edited = refine(G, branch, ws, edited, classes, steps=refine_steps, lr=refine_lr, batch=batch,
                        distance=distance, work_resolution=work_resolution)
    with torch.no_grad():
        if segment_result and branch is not None:
            img, feats = G.synthesis(edited, return_features=True)
            labels = branch.predict(feats).cpu().numpy()
        elif fast and fast_enabled(G.w_avg.device):
            return Applied(edited, fast_synthesis(G, edited), None, time.time() - t0, exact=False)
        else:
            img, labels = G.synthesis(edited), None
    return Applied(edited, img, labels, time.time() - t0)
