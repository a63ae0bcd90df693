"""One way to write and read the project's own safetensors files (branches, encoders, latents, vectors).

Each holds its tensors plus a JSON descriptor under the metadata key ``editgan`` (``format``, ``format_version``,
and whatever the kind needs). Writes are atomic; reads turn any damage into a CheckpointError that names the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Tuple

import torch

from .errors import CheckpointError, EditGANError


def write(path: os.PathLike, tensors: Dict[str, torch.Tensor], meta: dict, *, half: bool = False) -> Path:
    """Atomic write; ``half`` stores floating-point tensors as float16 (readers convert back)."""
    from safetensors.torch import save_file

    from .checkpoints import _atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in tensors.items()}
    _atomic_write(path, lambda p: save_file(tensors, str(p), metadata={"editgan": json.dumps(meta)}))
    return path


def read(path: os.PathLike, fmt: str, what: str, version: int = 1) -> Tuple[Dict[str, torch.Tensor], dict]:
    """-> (tensors, descriptor). ``fmt`` must match the descriptor's format; newer versions are refused."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise EditGANError(f"no {what} at {path}")
    try:
        with safe_open(str(path), "pt") as f:
            meta = json.loads((f.metadata() or {}).get("editgan", "{}"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # not safetensors, truncated, bad JSON, ...
        raise CheckpointError(f"{path.name} is not a readable {what} ({type(e).__name__}: {e})") from e
    if meta.get("format") != fmt:
        article = "an" if what[:1].lower() in "aeiou" else "a"
        raise CheckpointError(f"{path.name} is not {article} {what} (format {meta.get('format')!r})")
    if int(meta.get("format_version", 0)) > version:
        raise CheckpointError(f"{path.name} was written by a newer EditGAN Studio ({what} format "
                              f"{meta['format_version']} > {version}); upgrade to read it")
    return tensors, meta
