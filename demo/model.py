"""The app's process-wide part, without any Gradio import: models and what travels with them, loaded once.

Each public method is one UI event; it takes plain values and returns plain values (numpy images, text).
Errors a user can cause come back as :class:`~editgan_core.errors.EditGANError` with a readable message.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Dict, List, Optional

import torch

from editgan_core.errors import EditGANError, ModelNotFoundError
from editgan_core.loaders.assets import Bundle
from editgan_core.loaders.checkpoints import LoadedGenerator
from editgan_core.loaders.hub import load_model
from editgan_core.loaders.labelers import load_labeler
from editgan_core.loaders.registry import CHECKPOINTS_DIR, DEFAULT_MODEL, FACE_PARTS, REGISTRY, get_spec
from editgan_core.pipeline.labeling import ClassMap, model_domain, parser_for
from editgan_core.storage.vectors import library_dir


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Studio:
    """Process-wide model cache plus the operations behind the UI. Safe to share between sessions."""

    def __init__(self, device: Optional[torch.device] = None):
        self.device = device or pick_device()
        self._models: Dict[str, LoadedGenerator] = {}
        self._assets: Dict[str, Bundle] = {}
        self._labelers: Dict[str, Optional[tuple]] = {}
        self._lock = threading.Lock()
        # On a hosted Space nothing is written outside temporary and cache folders, and user vectors stay in the
        # session (downloadable); locally they also go to the user's library folder.
        self.persist = not os.environ.get("SPACE_ID") and not os.environ.get("EDITGAN_NO_LIBRARY")

    @staticmethod
    def model_choices() -> List[str]:
        return list(REGISTRY)

    @staticmethod
    def default_model() -> Optional[str]:
        spec = REGISTRY[DEFAULT_MODEL]
        return DEFAULT_MODEL if (CHECKPOINTS_DIR / (spec.local_dir or "") / "model.safetensors").exists() else None

    @staticmethod
    def starting_palette() -> List[tuple]:
        """The brush colours before a model is chosen: the face parts'."""
        return [c for _, c in FACE_PARTS]

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

    def assets(self, ref: str) -> Bundle:
        """The model with its encoder, branch, starter vectors and library, its embedding distance and how photos
        are cut (an :class:`~editgan_core.loaders.assets.Bundle`, as the CLI loads it), loaded once per process."""
        ref = (ref or "").strip()
        loaded = self.model(ref)
        with self._lock:
            if ref not in self._assets:
                self._assets[ref] = Bundle.of(loaded, ref, self.device)
            return self._assets[ref]

    def labeler(self, ref: str) -> Optional[tuple]:
        """(Labeler, ClassMap) of the registry parser that fits the model (loaded once per process), or None when
        none fits or it cannot be had (offline with nothing cached: said in the model's problems)."""
        ref = (ref or "").strip()
        loaded = self.model(ref)
        with self._lock:
            if ref in self._labelers:
                return self._labelers[ref]
        name = parser_for(ref) or parser_for(loaded)
        found = None
        if name:
            try:
                lab = load_labeler(name)
                found = (lab, ClassMap.default(lab.label_names))
            except EditGANError as e:
                self.assets(ref).problems.append(f"the parser {name} is not available ({e}); paint the masks by hand")
        with self._lock:
            self._labelers[ref] = found
        return found

    def is_face_model(self, ref: str) -> bool:
        """Whether photos of faces suit the model (the Image tab then offers example photos): the registry says
        so, or its parts are face parts (a kit or branch with skin, eyes, lips ...)."""
        if model_domain(ref) == "faces":
            return True
        names = {n.lower() for n in self.assets(ref).classes[0]}
        return len(names & {"skin", "nose", "lips", "mouth", "hair", "eye_whites", "irises", "l_eye", "r_eye"}) >= 3

    def model_card(self, ref: str) -> str:
        """MODEL_CARD.md beside a native model, or what is known of the model from the registry."""
        loaded = self.model(ref)
        if loaded.kit:                    # a kit's README.md, without its front matter and thumbnails
            text = (Path(loaded.kit) / "README.md").read_text(encoding="utf-8", errors="replace")
            text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)
            return re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)
        p = Path(loaded.path)
        card = p / "MODEL_CARD.md" if p.is_dir() else p.parent / "MODEL_CARD.md"
        if card.is_file():
            return card.read_text(encoding="utf-8")
        spec = get_spec(ref)
        if spec is not None:
            return (f"**{spec.name}**: {spec.description}. Source: {spec.hub_ref or 'local'}; "
                    f"licence: {spec.license or 'see the source'}.")
        return f"No model card for {ref}."

    def library(self, ref: str) -> Path:
        return library_dir(self.assets(ref).identity)

    def describe(self, ref: str) -> str:
        m = self.model(ref)
        c = m.config
        cond = f", conditional on {c.c_dim} classes" if c.c_dim else ""
        lines = [f"**{ref}** -- {m.format}, {c.img_resolution}x{c.img_resolution}, W+ {c.num_ws}x{c.w_dim}, "
                 f"{m.G.num_parameters():,} parameters{cond}, on {self.device.type}"]
        lines += [f"- note: {n}" for n in m.notes]
        return "\n".join(lines)
