"""What travels with a generator: its identity, the files beside a native checkpoint, and the :class:`Bundle` that
holds them all.

A native model folder may hold, next to ``model.safetensors``: ``encoder.safetensors`` (embedding),
``branch.safetensors`` (segmentation branch), ``discriminator.safetensors`` (perceptual features) and a
``vectors/`` library. Other formats get them by explicit paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple, Union

from ..models.perceptual import perceptual_for
from ..models.segbranch import load_branch
from ..pipeline.align import cut_for
from ..pipeline.embed import load_encoder
from ..storage.identity import model_identity
from ..storage.kits import KitParts
from ..storage.vectors import library_dir, list_library
from .checkpoints import save_native
from .hub import hub_source, load_model
from .registry import FACE_PARTS as CLASSES, get_spec

ENCODER_NAME = "encoder.safetensors"
BRANCH_NAME = "branch.safetensors"


def model_dir(loaded) -> Optional[Path]:
    """The folder whose files travel with the model: the kit it was opened from, else a native model's folder."""
    if getattr(loaded, "kit", None):
        return Path(loaded.kit)
    p = Path(loaded.path)
    return p if p.is_dir() else None


def companion(loaded, name: str) -> Optional[Path]:
    d = model_dir(loaded)
    if d is not None and (d / name).is_file():
        return d / name
    return None


def default_classes(loaded) -> Tuple[List[str], List[Tuple[int, int, int]]]:
    """Class names and palette: the branch's if the model has one, else the registry's face parts."""
    path = companion(loaded, BRANCH_NAME)
    if path is not None:
        cfg = load_branch(path).cfg
        return list(cfg.class_names), list(cfg.palette)
    return [n for n, _ in CLASSES], [c for _, c in CLASSES]


def vector_folders(loaded, identity) -> List[Path]:
    """Where a model's editing vectors are found, in order: the starter vectors beside a native model
    (``vectors/``), then the user's library for that generator (:func:`editgan_core.storage.vectors.library_dir`)."""
    d = model_dir(loaded)
    return ([d / "vectors"] if d is not None else []) + [library_dir(identity)]


@dataclass
class Bundle:
    """A generator and everything that travels with it, loaded once: what the CLI, the studio and the benches work
    with. ``Bundle.load(ref)`` (or ``Bundle.of(loaded)`` for a generator already loaded) finds the companions the
    same way everywhere, so a photo embeds, is cut and is handed back alike in the CLI and the app."""
    ref: str
    loaded: object                                   # checkpoints.LoadedGenerator
    identity: dict
    encoder: Optional[object] = None                 # embed.Encoder
    branch: Optional[object] = None                  # segbranch.SegBranch
    classes: Tuple[List[str], List[Tuple[int, int, int]]] = ((), ())
    vectors: list = field(default_factory=list)      # starter vectors beside the model, then the user's library
    problems: List[str] = field(default_factory=list)    # files skipped, in words
    notes: List[str] = field(default_factory=list)       # what was (not) found, in words
    distance: Optional[object] = None                # perceptual.Distance used to embed photos
    cut: str = "box"                                 # how photos are cut: 'face' (FFHQ alignment) or 'box'
    visible: Optional[tuple] = None                  # the registry's drawn part of the square (the car models)

    @property
    def G(self):
        return self.loaded.G

    @classmethod
    def load(cls, ref: str, device="cpu", **choices) -> "Bundle":
        """The generator of ``ref`` (registry name, path or hf:// reference) with its companions; ``choices`` as
        for :meth:`of`."""
        return cls.of(load_model(ref), ref, device, **choices)

    @classmethod
    def of(cls, loaded, ref: str = "", device="cpu", *, encoder: str = "auto", branch: Optional[str] = "auto",
           perceptual: str = "auto", vectors: Union[bool, str] = True) -> "Bundle":
        """A bundle around a loaded generator. ``encoder`` / ``branch``: 'auto' (the file beside the model),
        'none' (None for the branch), or a file; ``perceptual``: the embedding distance, 'auto' by default --
        LPIPS when its weights are cached, else the model's discriminator features when it has one, else the
        fallback (perceptual.perceptual_for) -- the same for the CLI and the app; ``vectors``: True the model's own
        (starter or kit) vectors then the user's library for it, 'model' the model's own only, False none."""
        loaded.G.to(device).eval()
        b = cls(ref or str(loaded.path), loaded, model_identity(loaded))
        b.encoder = companion_module(loaded, b.identity, encoder, ENCODER_NAME, device)
        b.branch = companion_module(loaded, b.identity, "none" if branch is None else branch, BRANCH_NAME, device)
        b.notes += [f"this model has no {n}" for n, c, m in (("encoder", encoder, b.encoder),
                                                              ("segmentation branch", branch, b.branch))
                    if c == "auto" and m is None]
        b.classes = ((list(b.branch.cfg.class_names), list(b.branch.cfg.palette)) if b.branch is not None
                     else default_classes(loaded))
        if vectors:
            folders = vector_folders(loaded, b.identity)
            seen = set()
            for folder in folders[:-1] if vectors == "model" else folders:
                found, problems = list_library(folder, expect_generator=b.identity)
                b.problems += problems
                for v in found:
                    if v.name not in seen:
                        seen.add(v.name)
                        b.vectors.append(v)
        b.distance = perceptual_for(model_dir(loaded), perceptual).to(device)
        spec = get_spec(ref) if ref else None
        b.visible = spec.crop if spec is not None else None
        b.cut = cut_for(ref) if ref else "box"
        return b

    def kit_parts(self, branch_file: Path, scratch: Path, *, vectors: Optional[list] = None, license: str = "",
                  title: str = "", labeler: str = "", class_map: Optional[dict] = None) -> KitParts:
        """What a kit of this model holds (storage.kits.write_kit writes it): ``branch_file``, ``vectors`` (default:
        the bundle's), the encoder beside the model. The generator is referenced when it came from the Hub (pinned
        to the commit it was downloaded at, with its sha256), else its native weights are included (converted
        into ``scratch`` when the file is not native already)."""
        loaded = self.loaded
        upstream = hub_source(loaded)
        spec = get_spec(self.ref)
        parts = KitParts(identity=self.identity, branch_file=Path(branch_file), class_names=list(self.classes[0]),
                         palette=list(self.classes[1]), vectors=list(self.vectors if vectors is None else vectors),
                         encoder_file=companion(loaded, ENCODER_NAME), labeler=labeler or None,
                         class_map=class_map or None, title=title, source=self.ref,
                         license=license or (upstream or {}).get("license") or (spec.license if spec else None))
        if upstream is not None:
            parts.generator_ref, parts.generator_sha256 = upstream["ref"], upstream["sha256"]
            parts.base_model = upstream["repo_id"]
        elif loaded.format == "native" and Path(loaded.path).is_dir():
            parts.native_folder = Path(loaded.path)
        else:
            parts.native_folder = save_native(loaded.G, Path(scratch) / "native",
                                              source={"file": Path(loaded.path).name, "sha256": loaded.sha256})
        return parts


def companion_module(loaded, identity: dict, choice: str, name: str, device="cpu"):
    """The encoder (``name`` = ENCODER_NAME) or branch (BRANCH_NAME) of a generator: ``choice`` 'auto' (the file
    beside the model; None when there is none), 'none', or a file -- refused with a message naming it when it is
    of another model or damaged. The CLI and the Bundle both load companions through here."""
    if choice == "none":
        return None
    path = companion(loaded, name) if choice == "auto" else Path(choice)
    if path is None:
        return None
    load = load_encoder if name == ENCODER_NAME else load_branch
    return load(path, expect_generator=identity).to(device).eval()
