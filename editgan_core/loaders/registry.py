"""The one place that names models: registry name -> where the weights live and what they are (``REGISTRY``
for generators, ``PARSERS`` for the segmentation models that label their samples).

The downloader, the CLI, the app and the tests all read this table. Hub entries point at public
StyleGAN2 generators people actually use; their revisions and sha256 are pinned where we could read them
off the Hub, and left ``None`` (download from ``main``, no hash check, a note says so) where we could not --
this workplace has no internet to read them. Fill them in with ``python -m editgan_core info --sha256``
on a downloaded file.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple


def _checkpoints_dir() -> Path:
    """The folder of the built-in models: the repository's ``checkpoints/`` when running from a source tree (a
    checkout, ``pip install -e .``), else the copy that ``pip install .`` put beside the package (the
    ``editgan_checkpoints`` data package, see pyproject.toml). Found by location, never by importing anything."""
    root = Path(__file__).resolve().parents[2]          # editgan_core/loaders/registry.py -> the repository
    if (root / "pyproject.toml").is_file() and (root / "checkpoints").is_dir():
        return root / "checkpoints"

    spec = importlib.util.find_spec("editgan_checkpoints")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return root / "checkpoints"    # not found anywhere: the error messages name where it was expected


CHECKPOINTS_DIR = _checkpoints_dir()


@dataclass(frozen=True)
class ModelSpec:
    name: str                            # registry key, e.g. 'ffhq-1024'
    format: str                          # 'native', 'nvidia-pkl', 'rosinality-pt', 'tf-pkl'
    resolution: int                      # output resolution (square network)
    description: str
    repo_id: Optional[str] = None        # Hugging Face Hub repository (model repo)
    filename: Optional[str] = None       # file inside the repo; for 'native', the folder ('' = root)
    revision: Optional[str] = None       # pinned commit (40 hex) where known, else None = 'main'
    sha256: Optional[str] = None         # of the file (of model.safetensors for 'native'); None = unknown
    local_dir: Optional[str] = None      # built-in models shipped in checkpoints/ (relative to it)
    license: str = "unknown"
    class_names: Tuple[str, ...] = ()    # part classes, when a segmentation branch exists
    crop: Optional[Tuple[int, int, int, int]] = None  # (top, bottom, left, right) display crop, e.g. cars
    tags: Tuple[str, ...] = field(default_factory=tuple)
    domain: Optional[str] = None         # what it draws ('faces', 'cars', ...): which parser can label it
    align: Optional[str] = None          # how photos are cut for it: 'ffhq' (face alignment), None (a box)

    @property
    def hub_ref(self) -> Optional[str]:
        if not self.repo_id:
            return None
        rev = f"@{self.revision}" if self.revision else ""
        return f"hf://{self.repo_id}/{self.filename or ''}{rev}"


_NGC = "NVIDIA Source Code License-NC (non-commercial)"
_ENTRIES = [
    # Built-in default (trained by this project on ToyFaces; see checkpoints/toyfaces/MODEL_CARD.md).
    ModelSpec("toyfaces", "native", 64, "ToyFaces cartoon faces, trained by EditGAN Studio (built-in default)",
              local_dir="toyfaces", license="MIT", tags=("builtin", "default"), domain="faces"),
    # NVIDIA stylegan2-ada-pytorch / stylegan3-repo pickles mirrored on the Hub (hysts/StyleGAN2 mirrors the
    # NGC set under models/). Exact file names confirmed from public code that downloads them.
    ModelSpec("ffhq-1024", "nvidia-pkl", 1024, "FFHQ faces 1024x1024 (NVIDIA StyleGAN2, config-f)",
              repo_id="hysts/StyleGAN2", filename="models/stylegan2-ffhq-1024x1024.pkl", license=_NGC,
              domain="faces", align="ffhq"),
    ModelSpec("ffhq-512", "nvidia-pkl", 512, "FFHQ faces 512x512 (NVIDIA StyleGAN2)",
              repo_id="hysts/StyleGAN2", filename="models/stylegan2-ffhq-512x512.pkl", license=_NGC,
              domain="faces", align="ffhq"),
    ModelSpec("ffhq-256", "nvidia-pkl", 256, "FFHQ faces 256x256 (NVIDIA StyleGAN2)",
              repo_id="hysts/StyleGAN2", filename="models/stylegan2-ffhq-256x256.pkl", license=_NGC,
              domain="faces", align="ffhq"),
    ModelSpec("celebahq-256", "nvidia-pkl", 256, "CelebA-HQ faces 256x256 (NVIDIA StyleGAN2)",
              repo_id="hysts/StyleGAN2", filename="models/stylegan2-celebahq-256x256.pkl", license=_NGC,
              domain="faces"),
    ModelSpec("metfaces-1024", "nvidia-pkl", 1024, "MetFaces portraits 1024x1024 (NVIDIA StyleGAN2-ADA)",
              repo_id="hysts/StyleGAN2", filename="models/stylegan2-metfaces-1024x1024.pkl", license=_NGC,
              domain="faces", align="ffhq"),
    ModelSpec("afhqcat-512", "nvidia-pkl", 512, "AFHQ cats 512x512 (NVIDIA StyleGAN2-ADA)",
              repo_id="hysts/StyleGAN2", filename="models/stylegan2-afhqcat-512x512.pkl", license=_NGC, domain="cats"),
    ModelSpec("afhqdog-512", "nvidia-pkl", 512, "AFHQ dogs 512x512 (NVIDIA StyleGAN2-ADA)",
              repo_id="hysts/StyleGAN2", filename="models/stylegan2-afhqdog-512x512.pkl", license=_NGC, domain="dogs"),
    ModelSpec("afhqwild-512", "nvidia-pkl", 512, "AFHQ wild animals 512x512 (NVIDIA StyleGAN2-ADA)",
              repo_id="hysts/StyleGAN2", filename="models/stylegan2-afhqwild-512x512.pkl", license=_NGC,
              domain="wild animals"),
    ModelSpec("lsundog-256", "nvidia-pkl", 256, "LSUN dogs 256x256 (NVIDIA StyleGAN2)",
              repo_id="hysts/StyleGAN2", filename="models/stylegan2-lsundog-256x256.pkl", license=_NGC, domain="dogs"),
    ModelSpec("brecahad-512", "nvidia-pkl", 512, "BreCaHAD histology 512x512 (NVIDIA StyleGAN2-ADA)",
              repo_id="hysts/StyleGAN2", filename="models/stylegan2-brecahad-512x512.pkl", license=_NGC,
              domain="histology"),
    ModelSpec("cifar10-32", "nvidia-pkl", 32, "CIFAR-10, class-conditional 32x32 (NVIDIA StyleGAN2-ADA)",
              repo_id="hysts/StyleGAN2", filename="models/stylegan2-cifar10-32x32.pkl", license=_NGC, domain="cifar10"),
    ModelSpec("ffhq-512-draggan", "nvidia-pkl", 512, "FFHQ 512x512 (copy used by DragGAN)",
              repo_id="DragGan/DragGan-Models", filename="stylegan2-ffhq-512x512.pkl",
              revision="20dedd0259ff3009fceefa531c3be8ae4f11cd82", license=_NGC, domain="faces", align="ffhq"),
    ModelSpec("stylegan-human-1024", "nvidia-pkl", 1024, "StyleGAN-Human full bodies (1024x512 in a 1024 net)",
              repo_id="public-data/StyleGAN-Human", filename="models/stylegan_human_v2_1024.pkl",
              license="StyleGAN-Human licence (research)", domain="bodies"),
    # rosinality stylegan2-pytorch conversions of the original config-f networks (what EditGAN used).
    ModelSpec("car-512", "rosinality-pt", 512, "LSUN cars, config-f (512x384 in a 512 net; crop rows 64:448)",
              repo_id="ZeqiangLai/StyleGAN2", filename="stylegan2-car-config-f.pt",
              revision="bb4e00dc8ac0afbb9e0a5b6f72754c679673ee2e", license=_NGC, crop=(64, 448, 0, 512), domain="cars"),
    ModelSpec("cat-256", "rosinality-pt", 256, "LSUN cats, config-f (rosinality conversion)",
              repo_id="aaronb/StyleGAN2", filename="stylegan2-cat-config-f.pt", license=_NGC, domain="cats"),
    ModelSpec("church-256", "rosinality-pt", 256, "LSUN churches, config-f (rosinality conversion)",
              repo_id="aaronb/StyleGAN2", filename="stylegan2-church-config-f.pt", license=_NGC, domain="churches"),
    ModelSpec("horse-256", "rosinality-pt", 256, "LSUN horses, config-f (rosinality conversion)",
              repo_id="aaronb/StyleGAN2", filename="stylegan2-horse-config-f.pt", license=_NGC, domain="horses"),
    ModelSpec("ffhq-1024-rosinality", "rosinality-pt", 1024, "FFHQ config-f (rosinality conversion)",
              repo_id="aaronb/StyleGAN2", filename="stylegan2-ffhq-config-f.pt", license=_NGC, domain="faces",
              align="ffhq"),
]

REGISTRY: Dict[str, ModelSpec] = {spec.name: spec for spec in _ENTRIES}
# The parts of a face and the colours they are painted in: the classes of the built-in model (ToyFaces uses them)
# and what a model without a branch of its own is annotated and painted with until its branch says otherwise.
# Colours are far apart so that painted masks decode unambiguously.
FACE_PARTS: Tuple[Tuple[str, Tuple[int, int, int]], ...] = (
    ("background", (0, 0, 0)),
    ("skin", (255, 204, 153)),
    ("hair", (140, 70, 20)),
    ("ears", (255, 128, 0)),
    ("eyebrows", (90, 0, 160)),
    ("eye_whites", (255, 255, 255)),
    ("irises", (0, 120, 255)),
    ("nose", (255, 0, 128)),
    ("lips", (220, 0, 0)),
    ("mouth", (0, 200, 120)),
    ("neck", (180, 180, 0)),
    ("clothing", (0, 60, 120)),
)

DEFAULT_MODEL = "toyfaces"


def get_spec(name: str) -> Optional[ModelSpec]:
    return REGISTRY.get(name)


# ----------------------------------------------------------------------------------------------------------
# Parsers: transformers semantic-segmentation models that label a generator's samples (editgan_core/pipeline/labeling.py).


@dataclass(frozen=True)
class ParserSpec:
    name: str                            # registry key, e.g. 'face-parsing'
    description: str
    domain: str                          # what it parses; matched against ModelSpec.domain by labeling.parser_for
    repo_id: Optional[str] = None        # Hugging Face Hub model repo (config.json, model.safetensors, ...)
    revision: Optional[str] = None       # pinned commit (40 hex) where known, else None = 'main'
    local_dir: Optional[str] = None      # built-in parsers shipped in checkpoints/ (relative to it)
    license: str = "unknown"
    models: Tuple[str, ...] = ()         # when set, the only generators it is made for (else: its whole domain)

    @property
    def hub_ref(self) -> Optional[str]:
        if not self.repo_id:
            return None
        return f"hf://{self.repo_id}" + (f"@{self.revision}" if self.revision else "")


_PARSER_ENTRIES = [
    # SegFormer (mit-b5) fine-tuned on CelebAMask-HQ; 19 labels, CC0-1.0 on its model card. Its labels were fixed
    # on the Hub in January 2024 in commit 373bfce -- only that short hash is known here (no internet to read the
    # full 40-hex commit), so the revision is left None ('main', which holds the fixed labels) until someone pins it.
    ParserSpec("face-parsing", "Face parts on photos (SegFormer on CelebAMask-HQ, 19 labels)", "faces",
               repo_id="jonathandinu/face-parsing", license="CC0-1.0"),
    # Built-in: trained by this project on ToyFaces renders (checkpoints/toyfaces/parser/, its own seed range).
    ParserSpec("toyfaces-parser", "ToyFaces parts (SegFormer trained by EditGAN Studio, built-in)", "faces",
               local_dir="toyfaces/parser", license="MIT", models=("toyfaces",)),
]

PARSERS: Dict[str, ParserSpec] = {spec.name: spec for spec in _PARSER_ENTRIES}
