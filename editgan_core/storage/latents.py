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

from ..errors import CheckpointError, EditGANError
from ..pipeline.photo import Crop
from . import files
from .files import sha256_file
from .identity import check_identity
from .imageio import open_image, to_rgb


def save_latent(path: os.PathLike, ws: torch.Tensor, generator: Dict[str, object],
                extra: Optional[dict] = None) -> Path:
    return files.save(path, files.LATENT, {"ws": ws.float()}, {"generator": generator, **(extra or {})})


def load_latent(path: os.PathLike, *, expect_generator: Optional[Dict[str, object]] = None
                ) -> Tuple[torch.Tensor, dict]:
    """-> (ws [N, num_ws, w_dim] float32, metadata). Refuses latents of another generator."""
    path = Path(path)
    if path.suffix == ".npy" and path.is_file():
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as e:
            raise CheckpointError(f"{path} is not a readable .npy array ({e})") from e
        try:
            ws, meta = torch.from_numpy(np.asarray(arr, dtype=np.float32)), {"format": "npy"}
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{path.name} is not an array of numbers ({e})") from e
        if not bool(torch.isfinite(ws).all()):
            raise CheckpointError(f"{path.name} holds NaN or infinite values: not a latent")
    else:
        tensors, meta = files.load(path, files.LATENT)
        if "ws" not in tensors:
            raise CheckpointError(f"{path.name} holds no latent")
        ws = tensors["ws"].float()
    if ws.ndim == 2:
        ws = ws[None]
    if ws.ndim != 3:
        raise CheckpointError(f"{path.name} holds an array of shape {tuple(ws.shape)}, not W+ latents "
                              f"[N, num_ws, w_dim]")
    check_identity(meta.get("generator", {}), expect_generator, f"latent {path.name}", w_shape=ws.shape[1:])
    return ws, meta


def photo_record(crop, size: Tuple[int, int], path: Optional[os.PathLike] = None) -> dict:
    """What a latent records of the photo it came from (the CLI's embed and the studio's export write the same
    keys), so that edits of it can be handed back at the photo's size: its size (width, height) and the crop
    (``photo.Crop``); with ``path``, where the photo is and its sha256, to find it again."""
    record = {"photo_size": [int(size[0]), int(size[1])], "crop": crop.as_dict()}
    if path is not None:
        record.update(photo=str(Path(path).resolve()), photo_sha256=sha256_file(path))
    return record


def photo_of_record(meta: dict) -> Tuple[Optional[tuple], str]:
    """(photo RGB array, Crop) from a latent's record -> (that or None, a note on why not). None when the latent
    records no photo file, or the photo is gone, changed or unreadable."""
    if not meta.get("photo"):
        return None, ""
    path = Path(meta["photo"])
    try:
        if not path.is_file() or sha256_file(path) != meta.get("photo_sha256"):
            return None, f"its photo {path} is gone or changed"
        photo = np.asarray(to_rgb(open_image(path))[0], np.uint8)
        return (photo, Crop.from_dict(meta["crop"])), ""
    except EditGANError as e:
        return None, f"its photo cannot be used ({e})"
