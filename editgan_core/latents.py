"""W+ latents as files: safetensors with the generator's identity, so a latent is never used on the wrong model.

Plain ``.npy`` arrays ([num_ws, w_dim] or [N, num_ws, w_dim], e.g. from other inversion tools) load too, checked
by shape only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from .errors import CheckpointError, EditGANError

FORMAT = "editgan-studio/latent"


def save_latent(path: os.PathLike, ws: torch.Tensor, generator: Dict[str, object],
                extra: Optional[dict] = None) -> Path:
    from . import stfiles

    meta = {"format": FORMAT, "format_version": 1, "generator": generator, **(extra or {})}
    return stfiles.write(path, {"ws": ws.float()}, meta)


def load_latent(path: os.PathLike, *, expect_generator: Optional[Dict[str, object]] = None
                ) -> Tuple[torch.Tensor, dict]:
    """-> (ws [N, num_ws, w_dim] float32, metadata). Refuses latents of another generator."""
    from . import stfiles
    from .segbranch import identity_mismatch

    path = Path(path)
    if path.suffix == ".npy" and path.is_file():
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as e:
            raise CheckpointError(f"{path} is not a readable .npy array ({e})") from e
        ws, meta = torch.from_numpy(np.asarray(arr, dtype=np.float32)), {"format": "npy"}
    else:
        tensors, meta = stfiles.read(path, FORMAT, "latent file")
        if "ws" not in tensors:
            raise CheckpointError(f"{path.name} holds no latent")
        ws = tensors["ws"].float()
    if ws.ndim == 2:
        ws = ws[None]
    if expect_generator is not None:
        why = identity_mismatch(meta.get("generator", {}), expect_generator)
        if why:
            raise EditGANError(f"latent {path.name} belongs to another model: it was {why}")
        want = (int(expect_generator["num_ws"]), int(expect_generator["w_dim"]))
        if ws.ndim != 3 or tuple(ws.shape[1:]) != want:
            raise EditGANError(f"latent {path.name} has shape {tuple(ws.shape)}; "
                               f"this model needs [N, {want[0]}, {want[1]}]")
    return ws, meta
