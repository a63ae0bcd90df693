"""Which generator a file belongs to: one identity, one check.

Latents, editing vectors, segmentation branches and encoders all record the identity of the generator they were
made for -- its name, the sha256 of its weights file and its feature layout -- and are refused on another one with
a message that says which model they were made for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from ..errors import EditGANError

Identity = Dict[str, object]
LAYOUT_KEYS = ("resolution", "num_ws", "w_dim", "feature_channels")


def generator_identity(G, name: str = "", sha256: Optional[str] = None) -> Identity:
    """What ties a file to one generator: name, weights hash and the shapes that any use of it depends on."""
    return {"name": name, "sha256": sha256, "resolution": G.img_resolution, "num_ws": G.num_ws, "w_dim": G.w_dim,
            "feature_channels": list(G.feature_channels())}


def model_identity(loaded) -> Identity:
    """The identity of a :class:`~editgan_core.loaders.checkpoints.LoadedGenerator` (its registry name or file name)."""
    return generator_identity(loaded.G, name=str(loaded.meta.get("ref", Path(loaded.path).name)),
                              sha256=loaded.sha256)


def mismatch(made_for: Identity, actual: Identity) -> Optional[str]:
    """Why a file made for ``made_for`` does not fit ``actual``, in words; None when it fits."""
    made_for, actual = made_for or {}, actual or {}
    if made_for.get("sha256") and actual.get("sha256") and made_for["sha256"] != actual["sha256"]:
        return (f"made for generator {made_for.get('name') or '?'} (sha256 {str(made_for['sha256'])[:12]}), "
                f"not {actual.get('name') or '?'} (sha256 {str(actual['sha256'])[:12]})")
    for key in LAYOUT_KEYS:
        if key in made_for and key in actual and \
                list(np.atleast_1d(made_for[key])) != list(np.atleast_1d(actual[key])):
            return (f"made for generator {made_for.get('name') or '?'} with {key}={made_for[key]}, "
                    f"but this one has {key}={actual[key]}")
    return None


def check_identity(made_for: Identity, expected: Optional[Identity], what: str,
                   w_shape: Optional[Sequence[int]] = None) -> None:
    """Raise EditGANError when a file (``what``, e.g. "editing vector 'smile'") does not belong to ``expected``.
    ``w_shape`` (the [num_ws, w_dim] of the file's latent tensor) is checked too, for files whose identity is
    partial (plain .npy latents)."""
    if expected is None:
        return
    if not any(k in (made_for or {}) for k in LAYOUT_KEYS) and w_shape is None:
        raise EditGANError(f"{what} does not say which generator it was made for: it cannot be checked against "
                           f"this model, so it is not used")
    why = mismatch(made_for, expected)
    if why:
        raise EditGANError(f"{what} belongs to another model: it was {why}")
    if w_shape is not None and tuple(int(v) for v in w_shape) != (int(expected["num_ws"]), int(expected["w_dim"])):
        raise EditGANError(f"{what} has W+ shape [{', '.join(str(int(v)) for v in w_shape)}]; this model needs "
                           f"[{expected['num_ws']}, {expected['w_dim']}] (it belongs to another model)")
