"""What the app does, without any Gradio import: load models once per process, render samples.

Each public method is one UI event; it takes plain values and returns plain values (numpy images, text).
Errors a user can cause come back as :class:`~editgan_core.errors.EditGANError` with a readable message.
"""

from __future__ import annotations

import threading
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from editgan_core import images_to_uint8
from editgan_core.checkpoints import LoadedGenerator
from editgan_core.errors import EditGANError, ModelNotFoundError
from editgan_core.hub import load_model
from editgan_core.registry import CHECKPOINTS_DIR, DEFAULT_MODEL, REGISTRY


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Studio:
    """Process-wide model cache plus the operations behind the UI. Safe to share between sessions."""

    def __init__(self, device: Optional[torch.device] = None):
        self.device = device or pick_device()
        self._models: Dict[str, LoadedGenerator] = {}
        self._lock = threading.Lock()

    @staticmethod
    def model_choices() -> List[str]:
        return list(REGISTRY)

    @staticmethod
    def default_model() -> Optional[str]:
        spec = REGISTRY[DEFAULT_MODEL]
        return DEFAULT_MODEL if (CHECKPOINTS_DIR / (spec.local_dir or "") / "model.safetensors").exists() else None

    def model(self, ref: str) -> LoadedGenerator:
        ref = (ref or "").strip()
        if not ref:
            raise ModelNotFoundError("choose a model: a registry name, a local path or hf://org/repo/file")
        with self._lock:  # load each model once per process, never per user
            if ref not in self._models:
                loaded = load_model(ref)
                loaded.G.to(self.device)
                self._models[ref] = loaded
            return self._models[ref]

    def describe(self, ref: str) -> str:
        m = self.model(ref)
        c = m.config
        lines = [f"**{ref}** -- {m.format}, {c.img_resolution}x{c.img_resolution}, W+ {c.num_ws}x{c.w_dim}, "
                 f"{m.G.num_parameters():,} parameters, on {self.device.type}"]
        lines += [f"- note: {n}" for n in m.notes]
        return "\n".join(lines)

    def sample(self, ref: str, seed: int, truncation: float, class_idx: int = 0) -> Tuple[np.ndarray, str]:
        """Render seed -> image exactly as NVIDIA's generate.py does (numpy RandomState, const noise)."""
        m = self.model(ref)
        G, cfg = m.G, m.config
        seed = int(seed)
        if not 0 <= seed < 2 ** 32:
            raise EditGANError("the seed must be between 0 and 4294967295")
        z = torch.from_numpy(np.random.RandomState(seed).randn(1, cfg.z_dim)).float().to(self.device)
        c = None
        if cfg.c_dim:
            if not 0 <= int(class_idx) < cfg.c_dim:
                raise EditGANError(f"class must be between 0 and {cfg.c_dim - 1}")
            c = torch.zeros([1, cfg.c_dim], device=self.device)
            c[0, int(class_idx)] = 1
        with torch.no_grad():
            img = G(z, c, truncation_psi=float(truncation), noise_mode="const")
        arr = images_to_uint8(img)[0].cpu().numpy()
        return (arr[:, :, 0] if arr.shape[2] == 1 else arr), f"seed {seed}, truncation {float(truncation):.2f}"
