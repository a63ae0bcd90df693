"""Perceptual distances for embedding and editing: LPIPS (VGG16), discriminator features, or a fallback.

``perceptual_for(model_dir)`` picks, in order:

1. **LPIPS-VGG16** (Zhang et al. 2018) with weights from the Hugging Face Hub (``LPIPS_REPO``/``LPIPS_FILE``,
   one safetensors file holding the VGG16 convolutions and the five LPIPS linear heads). Only a copy already
   in the local Hub cache is used automatically; ``load_lpips(download=True)`` (CLI ``--perceptual lpips``)
   downloads it. Key names are matched by shape and order, so files from the ``lpips`` package layout
   (``net.sliceK.N.weight``, ``linK.model.1.weight``) and torchvision's (``features.N.weight``) both load.
2. **Discriminator features** when the checkpoint folder has ``discriminator.safetensors`` (the trained D of
   that very generator): mean squared difference of channel-normalised block outputs, per block averaged.
3. **Fallback**: multi-scale L1 (full, 1/2, 1/4 resolution) plus L1 of image gradients. It has no learned
   features, but it weighs edges and mid-frequency structure that plain L2 underweights; on ToyFaces (flat
   colours and sharp edges) that is what matters.

Every distance takes two image batches in [-1, 1] and returns one value per image.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

from ..errors import CheckpointError, EditGANError, InputError
from ..loaders.hub import download_file
from ..storage import files
from .discriminator import Discriminator, DiscriminatorConfig

LPIPS_REPO = "achiru/DiffSynth-Studio-ImageMetrics"
LPIPS_FILE = "LPIPS/vgg.safetensors"
VGG16_CONVS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
               (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
_POOL_AFTER = {1, 3, 6, 9}     # max-pool after these conv indices
_TAP_AFTER = {1, 3, 6, 9, 12}  # LPIPS reads relu1_2, relu2_2, relu3_3, relu4_3, relu5_3


class Distance(nn.Module):
    name = "distance"

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class FallbackDistance(Distance):
    name = "multiscale-l1"

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = 0
        for s in range(3):
            if s:
                x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
            d = x - y
            out = out + _soft_abs(d).mean((1, 2, 3))
            out = out + _soft_abs(d[..., :, 1:] - d[..., :, :-1]).mean((1, 2, 3))
            out = out + _soft_abs(d[..., 1:, :] - d[..., :-1, :]).mean((1, 2, 3))
        return out / 3


def _soft_abs(d: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """|d| with a smooth bottom (Charbonnier): the gradient of plain |d| at a rounding-error difference is a full
    +-1, which made the first steps of an edit (where G(w + 0) equals the reference up to rounding) pure noise."""
    return (d.square() + eps * eps).sqrt() - eps


def _normalize(f: torch.Tensor) -> torch.Tensor:
    return f / (f.square().sum(1, keepdim=True).sqrt() + 1e-10)


class LPIPS(Distance):
    name = "lpips-vgg16"

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(i, o, 3, padding=1) for i, o in VGG16_CONVS])
        self.lins = nn.ParameterList([nn.Parameter(torch.zeros(1, c, 1, 1)) for c in (64, 128, 256, 512, 512)])
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.requires_grad_(False)

    def features(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = (x - self.shift) / self.scale
        taps = []
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if i in _TAP_AFTER:
                taps.append(x)
            if i in _POOL_AFTER:
                x = F.max_pool2d(x, 2)
        return taps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = 0
        for fx, fy, lin in zip(self.features(x), self.features(y), self.lins):
            out = out + (lin * (_normalize(fx) - _normalize(fy)).square()).sum(1).mean((1, 2))
        return out

    @classmethod
    def from_state_dict(cls, state: dict) -> "LPIPS":
        def natural(k: str):
            return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", k)]

        keys = sorted(state, key=natural)
        conv_w = [k for k in keys if state[k].ndim == 4 and state[k].shape[-1] == 3]
        lin_w = [k for k in keys if state[k].ndim == 4 and state[k].shape[0] == 1 and state[k].shape[-1] == 1]
        shapes = [tuple(state[k].shape[:2][::-1]) for k in conv_w]
        if shapes != VGG16_CONVS:
            raise CheckpointError(f"not LPIPS-VGG16 weights: found 3x3 convolutions {shapes[:4]}... "
                                  f"({len(shapes)} of them), expected VGG16's 13")
        if [state[k].shape[1] for k in lin_w] != [64, 128, 256, 512, 512]:
            raise CheckpointError("not LPIPS-VGG16 weights: the five linear heads are missing")
        m = cls()
        with torch.no_grad():
            for conv, k in zip(m.convs, conv_w):
                conv.weight.copy_(state[k])
                bias = k[: -len("weight")] + "bias"
                if bias not in state:
                    raise CheckpointError(f"LPIPS weights lack {bias}")
                conv.bias.copy_(state[bias])
            for lin, k in zip(m.lins, lin_w):
                lin.copy_(state[k])
        return m.eval()


def load_lpips(path: Optional[str] = None, *, download: bool = False, repo_id: str = LPIPS_REPO,
               filename: str = LPIPS_FILE, revision: Optional[str] = None, endpoint: Optional[str] = None,
               cache_dir: Optional[str] = None) -> LPIPS:
    """LPIPS from a local safetensors file, or from the Hub (cache only unless ``download``)."""
    if path is None:
        path = download_file(repo_id, filename, revision, cache_dir=cache_dir, endpoint=endpoint, token=None,
                         local_files_only=not download)
    try:
        state = load_file(str(path))
    except Exception as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e})") from e
    return LPIPS.from_state_dict(state)


@functools.lru_cache(maxsize=None)
def cached_lpips() -> Optional[LPIPS]:
    """LPIPS when its weights are already in the local Hub cache (never downloads), else None; loaded once per
    process. What the edit quality readout reports LPIPS with."""
    try:
        return load_lpips()
    except EditGANError:
        return None


class DiscriminatorDistance(Distance):
    name = "discriminator-features"

    def __init__(self, D):
        super().__init__()
        self.D = D.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _, fx = self.D(x, return_features=True)
        _, fy = self.D(y, return_features=True)
        return sum((_normalize(a) - _normalize(b)).square().sum(1).mean((1, 2)) for a, b in zip(fx, fy)) / len(fx)


def load_discriminator(path: Path):
    """A discriminator written by the trainers' export (``discriminator.safetensors``), format checked."""
    D, _ = files.load_module(path, files.DISCRIMINATOR, lambda cfg: Discriminator(DiscriminatorConfig(**cfg)),
                             config_key="discriminator")
    return D


def perceptual_for(model_dir: Optional[Path] = None, prefer: str = "auto") -> Distance:
    """The best distance available without a download (see the module docstring). ``prefer`` forces one:
    'lpips' (downloads if needed), 'discriminator', 'fallback'."""
    if prefer not in ("auto", "lpips", "discriminator", "fallback"):
        raise InputError(f"unknown perceptual distance {prefer!r}")
    if prefer in ("auto", "lpips"):
        try:
            return load_lpips(download=prefer == "lpips")
        except EditGANError:
            if prefer == "lpips":
                raise
    d_path = Path(model_dir) / "discriminator.safetensors" if model_dir else None
    if prefer in ("auto", "discriminator") and d_path is not None and d_path.is_file():
        return DiscriminatorDistance(load_discriminator(d_path))
    if prefer == "discriminator":
        raise CheckpointError(f"no discriminator.safetensors next to the model ({model_dir})")
    return FallbackDistance()
