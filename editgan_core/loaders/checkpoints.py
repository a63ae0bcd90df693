"""Reading and writing generator checkpoints.

Supported inputs, all converted into one native representation (:class:`Generator` with NVIDIA key names):

==================  =====================================================================================
``native``          folder with ``config.json`` + ``model.safetensors`` (or a lone ``.safetensors`` whose
                    metadata carries the config) -- what this project writes
``nvidia-pkl``      stylegan2-ada-pytorch / stylegan3-repo pickles (``G_ema`` chosen), read by the
                    allow-list unpickler in :mod:`editgan_core.loaders.safe_pickle`
``rosinality-pt``   rosinality stylegan2-pytorch ``.pt`` (train format and convert format)
``nvidia-state``    a ``torch.save``-d NVIDIA-layout state dict (``synthesis.b4.const``, ...)
``tf-pkl``          StyleGAN2 TensorFlow pickles (``(G, D, Gs)``), read without TensorFlow
==================  =====================================================================================

The architecture is read from tensor shapes and from attributes stored in the file, never from its name.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from ..errors import CheckpointError, UnsafePickleError
from ..models.generator import Generator, GeneratorConfig
from ..storage import files
from ..storage.files import sha256_file  # noqa: F401 -- also the loaders' name for it
from .published import (config_from_state_dict, generator_from_state_dict, is_rosinality, load_nvidia, load_rosinality,
                        load_tf)
from .safe_pickle import EasyDictStub, PersistentStub, TFNetworkStub, safe_load_pickle

NATIVE_FORMAT = files.GENERATOR.id
NATIVE_FORMAT_VERSION = files.GENERATOR.version
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
KNOWN_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".safetensors", ".json")
_LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C


@dataclass
class LoadedGenerator:
    """A generator plus where it came from. ``G`` is on CPU, float32, in eval mode."""

    G: Generator
    format: str                      # one of the formats in the module docstring
    path: str                        # the file or folder that was read
    sha256: Optional[str] = None     # of the file read (of model.safetensors for a native folder)
    notes: List[str] = field(default_factory=list)   # what was assumed or derived while loading
    meta: Dict[str, Any] = field(default_factory=dict)  # extra native metadata (model card, source, ...)
    kit: Optional[str] = None        # the kit folder it was opened from (storage/kits.py): its companions are there

    @property
    def config(self) -> GeneratorConfig:
        return self.G.cfg


# ------------------------------------------------------------------------------------------------
# Helpers.




def _describe_magic(head: bytes) -> Optional[str]:
    for magic, what in ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
                        (b"\x89HDF", "an HDF5 file (Keras?)"), (b"\x1f\x8b", "a gzip archive"),
                        (b"ONNX", "an ONNX model"), (b"<", "an HTML/XML page (a failed download?)")):
        if head.startswith(magic):
            return what
    return None


def sniff(path: Path) -> str:
    """Identify a file's container from its first bytes: 'zip', 'pickle', 'safetensors', 'json', 'dir'."""
    if path.is_dir():
        return "dir"
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): the download or copy did not finish")
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[:1] == b"\x80":
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < size:
        return "safetensors"
    if head.lstrip()[:1] == b"{":
        return "json"
    what = _describe_magic(head)
    raise CheckpointError(f"{path} is not a checkpoint we can read" + (f": it looks like {what}" if what else
                          f" (it starts with bytes {head[:8]!r})"))


def _check_suffix(path: Path) -> None:
    if path.is_dir():
        return
    if path.suffix.lower() not in KNOWN_SUFFIXES:
        raise CheckpointError(
            f"{path.name}: unsupported file type '{path.suffix or '(none)'}'. Expected an NVIDIA pickle (.pkl), a "
            f"rosinality or torch file (.pt/.pth), a native model (.safetensors, or a folder with config.json "
            f"and model.safetensors) or a TensorFlow StyleGAN2 pickle (.pkl)")


# ------------------------------------------------------------------------------------------------
# Native format.


def save_native(G: Generator, out_dir: os.PathLike, *, source: Optional[Dict[str, Any]] = None,
                extra: Optional[Dict[str, Any]] = None) -> Path:
    """Write ``config.json`` + ``model.safetensors`` (config also in the safetensors metadata), atomically."""
    out = Path(out_dir)
    meta = {**files.descriptor(files.GENERATOR), "architecture": "stylegan2", "generator": G.cfg.to_dict(),
            "source": source or {}, **(extra or {})}
    tensors = {k: v.detach().to("cpu", torch.float32) for k, v in G.state_dict().items()}
    files.save(out / WEIGHTS_NAME, files.GENERATOR, tensors, meta)
    files.write_text(out / CONFIG_NAME, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return out


def _parse_native_meta(text: str, where: str) -> Dict[str, Any]:
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{where} is not valid JSON: {e}") from e
    return files.check(meta, files.GENERATOR, where)


def _load_native(path: Path, notes: List[str]) -> Tuple[Generator, Dict[str, Any], Path]:
    if path.is_dir():
        weights, cfg_path = path / WEIGHTS_NAME, path / CONFIG_NAME
    elif path.suffix.lower() == ".json":
        weights, cfg_path = path.with_name(WEIGHTS_NAME), path
    else:
        weights, cfg_path = path, path.with_name(CONFIG_NAME)
    if not weights.exists():
        raise CheckpointError(f"{weights} not found: a native model needs {WEIGHTS_NAME}")
    try:
        with safe_open(str(weights), framework="pt") as f:
            md = f.metadata() or {}
        # the descriptor's key; files written before files.py used "editgan_config" (the shipped model does)
        embedded = md.get(files.METADATA_KEY, md.get(files.LEGACY_METADATA_KEY))
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights} is truncated or corrupt ({e})") from e
    files.check_tensors(tensors, files.GENERATOR, weights.name)
    try:
        if embedded is not None:
            meta = _parse_native_meta(embedded, f"{weights.name} metadata")
        elif cfg_path.exists():
            meta = _parse_native_meta(cfg_path.read_text(), str(cfg_path))
        else:
            # A bare safetensors state dict in NVIDIA layout: infer what shapes allow.
            meta = {"generator": config_from_state_dict(tensors).to_dict(), "source": {}}
            notes.append("no config found: architecture inferred from tensor shapes")
        cfg = GeneratorConfig.from_dict(meta["generator"])
        return generator_from_state_dict(cfg, tensors, what=str(weights)), meta, weights
    except files.DAMAGE as e:      # a config of the wrong types (InputError is a ValueError too)
        raise CheckpointError(f"{weights.name}: invalid generator config ({files.clip(str(e), 200)})") from e


# ------------------------------------------------------------------------------------------------
# Entry point.


MAX_INFLATION = 16             # a zip entry may unpack to at most this x its packed size (torch stores them unpacked)
MAX_UNPACKED = 8 * 2 ** 30     # and a checkpoint to at most this many bytes in all (the largest real ones: ~1 GB)


def _check_inflation(path: Path) -> None:
    """Refuse a zip whose entries say they unpack far beyond their packed size (a zip bomb), before reading any:
    torch.save stores its entries unpacked, so a real checkpoint unpacks to about its own size."""
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"{path.name} is a truncated or corrupt zip/torch file ({e})") from None
    total = sum(i.file_size for i in infos)
    worst = max(infos, key=lambda i: i.file_size / max(i.compress_size, 1), default=None)
    if total > MAX_UNPACKED or (worst is not None and worst.file_size > MAX_INFLATION * max(worst.compress_size, 1)
                                + 2 ** 20):
        raise CheckpointError(f"{path.name} would unpack to {total / 2 ** 20:.0f} MiB from {path.stat().st_size / 2 ** 20:.1f} "
                              f"MiB on disk; a checkpoint does not (a zip bomb?): it was not read")


def _torch_load(path: Path) -> Any:
    try:
        # rosinality's train.py stores its argparse.Namespace: plain attributes, safe to allow.
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- torch raises many types; classify by message
        msg = str(e)
        if "Weights only load failed" in msg or "Unsupported global" in msg or "Unsupported operand" in msg:
            found = re.search(r"GLOBAL ([\w\.]+)", msg)
            raise UnsafePickleError(
                f"{path.name} asks for {found.group(1) if found else 'a global'} that a plain checkpoint does not "
                f"need; it was refused and nothing was executed") from None
        raise CheckpointError(f"{path.name} is truncated or corrupt ({type(e).__name__}: {msg.splitlines()[0]})") from None


def load_generator(path: os.PathLike, *, key: Optional[str] = None) -> LoadedGenerator:
    """Load any supported generator file (see module docstring) onto the CPU in float32."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    _check_suffix(path)
    kind = sniff(path)
    notes: List[str] = []
    if kind in ("dir", "safetensors", "json"):
        G, meta, weights = _load_native(path, notes)
        return LoadedGenerator(G, "native", str(path), sha256_file(weights), notes, meta)
    sha = sha256_file(path)
    if kind == "zip":
        if not zipfile.is_zipfile(path):
            raise CheckpointError(f"{path.name} is a truncated or corrupt zip/torch file")
        _check_inflation(path)
        obj = _torch_load(path)
        return LoadedGenerator(_load_torch_obj(obj, key, notes, path), _torch_format(obj), str(path), sha, notes)
    # Pickle: legacy torch.save, NVIDIA, or TensorFlow.
    with open(path, "rb") as f:
        head = f.read(16)
    if head[2:3] == b"\x8a":  # LONG1: legacy torch.save starts with its magic number
        obj = _torch_load(path)
        return LoadedGenerator(_load_torch_obj(obj, key, notes, path), _torch_format(obj), str(path), sha, notes)
    with open(path, "rb") as f:
        obj = safe_load_pickle(f)
    if isinstance(obj, TFNetworkStub) or (isinstance(obj, tuple) and any(isinstance(o, TFNetworkStub) for o in obj)):
        return LoadedGenerator(load_tf(obj, notes), "tf-pkl", str(path), sha, notes)
    if isinstance(obj, PersistentStub) or (isinstance(obj, dict) and any(isinstance(v, PersistentStub)
                                                                         for v in obj.values())):
        return LoadedGenerator(load_nvidia(obj, key, notes), "nvidia-pkl", str(path), sha, notes)
    if isinstance(obj, dict) and obj and all(isinstance(v, (EasyDictStub, dict, str, int, float)) or v is None
                                             for v in obj.values()) and "G_ema" not in obj:
        raise CheckpointError(f"{path.name} holds no networks (keys: {', '.join(map(str, list(obj)[:8]))}); "
                              f"is it a training log or an options file?")
    if isinstance(obj, dict):
        return LoadedGenerator(_load_torch_obj(obj, key, notes, path), _torch_format(obj), str(path), sha, notes)
    raise CheckpointError(f"{path.name}: unexpected pickle content ({type(obj).__name__}); not a StyleGAN2 checkpoint")


def _torch_format(obj: Any) -> str:
    if isinstance(obj, dict) and ("g_ema" in obj or is_rosinality(obj)):
        return "rosinality-pt"
    return "nvidia-state"


def _load_torch_obj(obj: Any, key: Optional[str], notes: List[str], path: Path) -> Generator:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path.name}: expected a dict of tensors, got {type(obj).__name__}")
    if "g_ema" in obj or is_rosinality(obj):
        return load_rosinality(obj, notes)
    sd = obj
    for k in ([key] if key else []) + ["G_ema", "g_ema", "state_dict", "generator"]:
        if k and isinstance(obj.get(k), dict):
            sd = obj[k]
            break
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise CheckpointError(f"{path.name} holds no tensors (keys: {', '.join(map(str, list(obj)[:8]))})")
    if "synthesis.b4.const" not in sd:
        if any(k.startswith(("g.", "d.", "generator.", "discriminator.")) for k in sd) or "d" in obj:
            raise CheckpointError(f"{path.name} is a training checkpoint without g_ema")
        sample = ", ".join(sorted(sd)[:5])
        raise CheckpointError(f"{path.name} is not a StyleGAN2 generator (another architecture? keys like {sample})")
    cfg = config_from_state_dict(sd)
    notes.append("NVIDIA-layout state dict: architecture inferred from shapes; conv_clamp and fp16 settings "
                 "are not stored in such files (assumed none)")
    return generator_from_state_dict(cfg, sd, what=path.name)


def convert(src: os.PathLike, dst: os.PathLike, *, key: Optional[str] = None) -> Path:
    """Convert any supported checkpoint to the native folder format."""
    loaded = load_generator(src, key=key)
    source = {"file": Path(src).name, "format": loaded.format, "sha256": loaded.sha256, "notes": loaded.notes}
    extra = {k: v for k, v in loaded.meta.items() if k not in ("format", "format_version", "architecture",
                                                                "generator", "source")}
    if loaded.format == "native":
        source = loaded.meta.get("source", source)
    return save_native(loaded.G, dst, source=source, extra=extra)
