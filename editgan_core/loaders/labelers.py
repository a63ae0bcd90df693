"""Labelers: semantic-segmentation models from the Hub or a folder, loaded safely, once per process.

A *labeler* is any transformers ``AutoModelForSemanticSegmentation`` model with its image processor (SegFormer,
DPT, UperNet, BEiT, ...), e.g. ``jonathandinu/face-parsing`` for faces. :func:`load_labeler` takes

* a parser registry name (``face-parsing``, ``toyfaces-parser``; :data:`editgan_core.loaders.registry.PARSERS`),
* ``hf://org/repo[/subfolder][@revision]``, or
* a local folder written by ``save_pretrained`` (``config.json``, ``model.safetensors``,
  ``preprocessor_config.json``),

and resolves Hub ones with the generators' rules (:func:`editgan_core.loaders.hub.download_file`: the standard Hub
cache, a pinned commit served from the cache, offline from the cache, ``HF_ENDPOINT`` read at each call). The
config is read first, so a file that is not a semantic-segmentation model is refused before its weights are
downloaded. Weights are read from safetensors only (never a pickled ``pytorch_model.bin``) and no code from a
repo is run. Each folder is loaded once per process, on the CPU in float32. Mapping its labels onto a branch's
classes is :mod:`editgan_core.pipeline.labeling`'s.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import EditGANError, LabelerError, ModelNotFoundError
from ..settings import LABEL
from ..storage.files import FORMATS
from . import hub
from .hub import download_file, entry_missing
from .registry import CHECKPOINTS_DIR, PARSERS, REGISTRY

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
PROCESSOR_FILE = "preprocessor_config.json"
ARCH_SUFFIX = "ForSemanticSegmentation"


@dataclass(eq=False)
class Labeler:
    """A transformers semantic-segmentation model and its image processor, on the CPU in float32."""
    ref: str                               # what was asked for
    label_names: List[str]                 # the model's labels, by id
    domain: Optional[str]                  # 'faces', ...: from the parser registry entry when known
    path: Path                             # the local folder it was loaded from
    model: object = field(repr=False)
    processor: object = field(repr=False)
    spec: Optional[object] = field(default=None, repr=False)   # the registry's ParserSpec, when known
    architecture: str = ""

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def predict(self, images: np.ndarray, *, batch: int = LABEL.batch) -> np.ndarray:
        """uint8 images [N, H, W, 3] -> the labeler's label ids [N, H, W] (uint8; int32 past 256 labels): the
        processor's input, the model's logits upsampled bilinearly to H x W, argmax. Deterministic."""
        arr = np.asarray(images)
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3 or 0 in arr.shape:
            raise LabelerError(f"the labeler takes uint8 RGB images [N, H, W, 3]; got {arr.dtype} {arr.shape}")
        n, h, w, _ = arr.shape
        out = np.empty((n, h, w), np.uint8 if self.num_labels <= 256 else np.int32)
        with torch.inference_mode():
            for i in range(0, n, max(1, int(batch))):
                chunk = [np.ascontiguousarray(a) for a in arr[i:i + batch]]
                try:
                    px = self.processor(images=chunk, return_tensors="pt")["pixel_values"].float()
                except Exception as e:  # noqa: BLE001 -- any processor failure, said in words
                    raise LabelerError(f"the labeler {self.ref} could not read images of shape {arr.shape[1:]} "
                                       f"({type(e).__name__}: {e})") from e
                logits = self.model(pixel_values=px).logits
                for j in range(len(chunk)):   # one at a time: full-size logits of a batch can be large
                    up = F.interpolate(logits[j:j + 1].float(), size=(h, w), mode="bilinear", align_corners=False)
                    out[i + j] = up.argmax(1)[0].numpy().astype(out.dtype)
        return out


_MODELS: Dict[str, Tuple[object, object, str]] = {}      # resolved folder -> (model, processor, architecture)
_LABELERS: Dict[Tuple[str, str], Labeler] = {}           # (resolved folder, ref) -> Labeler
_LOCK = threading.Lock()


def load_labeler(ref: str, *, cache_dir: Optional[str] = None, endpoint: Optional[str] = None,
                 token: Optional[str] = None, local_files_only: bool = False) -> Labeler:
    """A parser registry name, ``hf://org/repo[/sub][@rev]`` or a local ``save_pretrained`` folder -> a
    :class:`Labeler`, loaded once per process (the same folder asked again is not read again)."""
    folder, spec, repo_id = resolve_labeler(ref, cache_dir=cache_dir, endpoint=endpoint, token=token,
                                            local_files_only=local_files_only)
    key = str(folder.resolve())
    with _LOCK:
        labeler = _LABELERS.get((key, str(ref)))
        if labeler is not None:
            return labeler
        if key not in _MODELS:
            _MODELS[key] = _load_folder(folder, str(ref))
        model, processor, arch = _MODELS[key]
        if spec is None and repo_id:     # hf://jonathandinu/face-parsing is the registry's face-parsing
            spec = next((p for p in PARSERS.values() if p.repo_id == repo_id), None)
        id2label = model.config.id2label
        names = [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(model.config.num_labels)]
        labeler = Labeler(ref=str(ref), label_names=names, domain=spec.domain if spec is not None else None,
                          path=folder, model=model, processor=processor, spec=spec, architecture=arch)
        _LABELERS[(key, str(ref))] = labeler
        return labeler


def resolve_labeler(ref: str, *, cache_dir: Optional[str] = None, endpoint: Optional[str] = None,
                    token: Optional[str] = None, local_files_only: bool = False):
    """-> (local folder, ParserSpec or None, Hub repo id or None). Downloads what is missing (config first, checked
    before the weights are fetched); refuses what is not a semantic-segmentation model."""
    ref = str(ref).strip()
    if not ref:
        raise ModelNotFoundError("no labeler given")
    kw = dict(cache_dir=cache_dir, endpoint=hub.hub_endpoint(endpoint), token=token,
              local_files_only=local_files_only)
    spec = PARSERS.get(ref)
    if spec is not None:
        if spec.local_dir:
            folder = CHECKPOINTS_DIR / spec.local_dir
            if not (folder / CONFIG_FILE).is_file():
                raise ModelNotFoundError(f"built-in parser {spec.name!r} is missing: expected a transformers folder "
                                         f"at {folder} ({CONFIG_FILE}, {WEIGHTS_FILE}, {PROCESSOR_FILE})")
            check_folder(folder, spec.name)
            return folder, spec, None
        return _download(spec.repo_id, "", spec.revision, spec.name, **kw), spec, spec.repo_id
    if ref in REGISTRY:
        raise LabelerError(f"{ref!r} is a generator in the registry, not a segmentation model; labelers are "
                           f"{', '.join(sorted(PARSERS))}, hf://org/repo or a transformers folder")
    if ref.startswith("hf://"):
        repo_id, sub, rev = hub.parse_hf_ref(ref)
        sub = sub.strip("/")
        if sub and "." in Path(sub).name:
            if Path(sub).name not in (CONFIG_FILE, WEIGHTS_FILE, PROCESSOR_FILE):
                raise LabelerError(f"{ref} names a file; a labeler is a Hub folder holding {CONFIG_FILE}, "
                                   f"{WEIGHTS_FILE} and {PROCESSOR_FILE} (hf://org/repo or hf://org/repo/folder)")
            parent = Path(sub).parent.as_posix()
            sub = "" if parent == "." else parent
        return _download(repo_id, sub, rev, ref, **kw), None, repo_id
    path = Path(os.path.expanduser(ref))
    if path.is_file():
        if path.name in (CONFIG_FILE, WEIGHTS_FILE, PROCESSOR_FILE):
            path = path.parent
        else:
            kind = (" (a StyleGAN checkpoint is a generator)" if path.suffix.lower() in (".pkl", ".pt", ".pth")
                    else "")
            raise LabelerError(f"{path} is a file{kind}; a labeler is a transformers folder ({CONFIG_FILE}, "
                               f"{WEIGHTS_FILE}, {PROCESSOR_FILE}), a parser name or hf://org/repo")
    if path.is_dir():
        check_folder(path, str(path))
        return path, None, None
    raise ModelNotFoundError(f"unknown labeler {ref!r}: not a parser in the registry ({', '.join(sorted(PARSERS))}), "
                             f"not an existing folder, and not an hf://org/repo reference")


def _download(repo_id: str, sub: str, revision: Optional[str], what: str, **kw) -> Path:
    prefix = f"{sub}/" if sub else ""
    config = download_file(repo_id, prefix + CONFIG_FILE, revision, **kw)
    check_config(_read_config(config), f"{what} ({repo_id}/{prefix}{CONFIG_FILE})")
    download_file(repo_id, prefix + PROCESSOR_FILE, revision, **kw)
    try:
        download_file(repo_id, prefix + WEIGHTS_FILE, revision, **kw)
    except ModelNotFoundError as e:
        if not entry_missing(e):
            raise
        try:   # sharded safetensors: the index, then each shard
            index = download_file(repo_id, prefix + WEIGHTS_INDEX_FILE, revision, **kw)
        except ModelNotFoundError as e2:
            if not entry_missing(e2):
                raise
            raise LabelerError(f"{repo_id}{'/' + sub if sub else ''} has no {WEIGHTS_FILE}: labeler weights are read "
                               f"from safetensors only (a pickled pytorch_model.bin is never loaded)") from None
        for shard in sorted(set(_read_config(index).get("weight_map", {}).values())):
            download_file(repo_id, prefix + shard, revision, **kw)
    return config.parent


def _read_config(path: Path) -> dict:
    try:
        cfg = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise LabelerError(f"{path}: not a readable JSON file ({e})") from None
    if not isinstance(cfg, dict):
        raise LabelerError(f"{path}: not a model config (a JSON object)")
    return cfg


def check_config(cfg: dict, where: str) -> str:
    """Refuse a config that is not a semantic-segmentation model transformers can build without running repo
    code; -> its architecture name."""
    fmt = cfg.get("format")
    kind = next((f.what for f in FORMATS if f.id == fmt), None)
    if kind or str(fmt or "").startswith("editgan-studio/") or ("generator" in cfg and "model_type" not in cfg):
        raise LabelerError(f"{where} is an EditGAN Studio {kind or 'file'} (a StyleGAN2 model), not a semantic-"
                           f"segmentation model; a labeler is a transformers model such as a SegFormer")
    model_type = cfg.get("model_type")
    if not model_type:
        raise LabelerError(f"{where} has no model_type: not a transformers model config")
    if cfg.get("auto_map"):
        raise LabelerError(f"{where} needs the repo's own Python code (auto_map); EditGAN Studio never runs code "
                           f"from a model repo")
    supported = _segmentation_types()
    archs = [str(a) for a in cfg.get("architectures") or []]
    seg_archs = [a for a in archs if a.endswith(ARCH_SUFFIX)]
    if archs and not seg_archs:
        raise LabelerError(f"{where} is a {', '.join(archs)} (model_type {model_type!r}), not a semantic-"
                           f"segmentation model (an ...{ARCH_SUFFIX}: {', '.join(supported.values())})")
    if model_type not in supported:
        raise LabelerError(f"{where}: model_type {model_type!r} has no semantic-segmentation model in transformers "
                           f"(supported: {', '.join(sorted(supported))})")
    return seg_archs[0] if seg_archs else supported[model_type]


def check_folder(folder: Path, what: str) -> str:
    """A local folder: the config is a semantic-segmentation model, with a processor config and safetensors
    weights beside it. -> the architecture."""
    cfg_path = folder / CONFIG_FILE
    if not cfg_path.is_file():
        raise LabelerError(f"{what}: no {CONFIG_FILE} in {folder}; a labeler is a transformers folder "
                           f"({CONFIG_FILE}, {WEIGHTS_FILE}, {PROCESSOR_FILE}) as save_pretrained writes it")
    arch = check_config(_read_config(cfg_path), f"{what} ({CONFIG_FILE})")
    if not (folder / WEIGHTS_FILE).is_file() and not (folder / WEIGHTS_INDEX_FILE).is_file():
        pickled = [n for n in PICKLE_WEIGHTS if (folder / n).is_file()]
        said = f"; it has {pickled[0]}, a pickle, which is never loaded" if pickled else ""
        raise LabelerError(f"{what}: no {WEIGHTS_FILE} in {folder} (labeler weights are read from safetensors "
                           f"only{said})")
    if not (folder / PROCESSOR_FILE).is_file():
        raise LabelerError(f"{what}: no {PROCESSOR_FILE} in {folder}: the image processor that prepares the "
                           f"labeler's input (save it with the processor's save_pretrained)")
    return arch


def _segmentation_types() -> Dict[str, str]:
    try:
        # here, as below: importing transformers takes 4 s (editgan_core: 1.7 s); only labelers need it
        from transformers.models.auto.modeling_auto import MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES
    except ImportError as e:
        raise EditGANError("labelling needs the transformers package: pip install transformers "
                           "(or pip install 'editgan-studio[label]')") from e
    return dict(MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES)


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No progress bars or info lines from transformers while loading (our messages say what happens)."""
    from transformers.utils import logging as tlog  # here: 4 s to import

    level, bars = tlog.get_verbosity(), tlog.is_progress_bar_enabled()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        tlog.set_verbosity(level)
        if bars:
            tlog.enable_progress_bar()


def _load_folder(folder: Path, ref: str) -> Tuple[object, object, str]:
    arch = check_folder(folder, ref)
    from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation  # here: 4 s to import

    with _quiet_transformers():
        try:
            model, info = AutoModelForSemanticSegmentation.from_pretrained(
                str(folder), output_loading_info=True, use_safetensors=True, local_files_only=True,
                trust_remote_code=False)
        except Exception as e:  # noqa: BLE001 -- whatever transformers raises, said with the folder
            raise LabelerError(f"{ref}: could not load the segmentation model in {folder} "
                               f"({type(e).__name__}: {e})") from e
        missing = sorted(info.get("missing_keys") or [])
        mismatched = list(info.get("mismatched_keys") or [])
        if missing or mismatched:
            bad = missing or [str(m[0] if isinstance(m, (tuple, list)) else m) for m in mismatched]
            raise LabelerError(f"{ref}: {WEIGHTS_FILE} in {folder} is not a complete {arch}: "
                               f"{len(bad)} weights {'missing' if missing else 'of the wrong shape'} "
                               f"({', '.join(bad[:4])}{', ...' if len(bad) > 4 else ''})")
        try:
            try:
                processor = AutoImageProcessor.from_pretrained(str(folder), local_files_only=True, backend="pil")
            except Exception:  # noqa: BLE001 -- no PIL backend for this processor: transformers' own choice
                processor = AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
        except Exception as e:  # noqa: BLE001
            raise LabelerError(f"{ref}: could not load the image processor ({PROCESSOR_FILE}) in {folder} "
                               f"({type(e).__name__}: {e})") from e
    model = model.to(device="cpu", dtype=torch.float32).eval().requires_grad_(False)
    return model, processor, type(model).__name__
