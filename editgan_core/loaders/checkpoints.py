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
import math
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from ..errors import CheckpointError, UnsafePickleError
from ..models.generator import Generator, GeneratorConfig
from ..storage import files
from ..storage.files import sha256_file  # noqa: F401 -- also the loaders' name for it
from .safe_pickle import EasyDictStub, PersistentStub, TFNetworkStub, safe_load_pickle

NATIVE_FORMAT = files.GENERATOR.id
NATIVE_FORMAT_VERSION = files.GENERATOR.version
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
KNOWN_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".safetensors", ".json")
_LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_ROSINALITY_W_AVG_SAMPLES = 10_000


@dataclass
class LoadedGenerator:
    """A generator plus where it came from. ``G`` is on CPU, float32, in eval mode."""

    G: Generator
    format: str                      # one of the formats in the module docstring
    path: str                        # the file or folder that was read
    sha256: Optional[str] = None     # of the file read (of model.safetensors for a native folder)
    notes: List[str] = field(default_factory=list)   # what was assumed or derived while loading
    meta: Dict[str, Any] = field(default_factory=dict)  # extra native metadata (model card, source, ...)

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


def _to_tensor(v: Any, name: str) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        return v.detach().to(torch.float32).contiguous()
    if isinstance(v, np.ndarray):
        return torch.from_numpy(np.array(v, dtype=np.float32, copy=True)).reshape(v.shape)
    raise CheckpointError(f"{name} is not a tensor (got {type(v).__name__})")


# ------------------------------------------------------------------------------------------------
# NVIDIA-layout state dict -> config.

_KEY_CONV = re.compile(r"^synthesis\.b(\d+)\.conv1\.weight$")


def config_from_state_dict(sd: Dict[str, torch.Tensor], **hints: Any) -> GeneratorConfig:
    """Infer a GeneratorConfig from NVIDIA-named tensors; ``hints`` supply what shapes cannot tell."""
    res = sorted(int(m.group(1)) for k in sd for m in [_KEY_CONV.match(k)] if m)
    if not res or "synthesis.b4.const" not in sd:
        sample = ", ".join(sorted(sd)[:6])
        raise CheckpointError(f"this is not a StyleGAN2 generator: no synthesis.b4.const / synthesis.b*.conv1 "
                              f"weights (found keys like {sample})")
    img_res = res[-1]
    expected = [2 ** i for i in range(2, int(math.log2(img_res)) + 1)]
    if res != expected or img_res & (img_res - 1):
        raise CheckpointError(f"synthesis blocks at resolutions {res}; expected powers of two {expected}")
    for r in res:
        k = sd[f"synthesis.b{r}.conv1.weight"].shape
        if len(k) != 4 or k[2] != 3 or k[3] != 3:
            raise CheckpointError(f"synthesis.b{r}.conv1.weight has shape {tuple(k)}; expected [O, I, 3, 3]")
    channels = {r: int(sd[f"synthesis.b{r}.conv1.weight"].shape[0]) for r in res}
    w_dim = int(sd["synthesis.b4.conv1.affine.weight"].shape[1])
    n_map = 0
    while f"mapping.fc{n_map}.weight" in sd:
        n_map += 1
    if n_map == 0:
        raise CheckpointError("the generator has no mapping network (mapping.fc0.weight missing)")
    embed = sd.get("mapping.embed.weight")
    c_dim = int(embed.shape[1]) if embed is not None else 0
    embed_features = int(embed.shape[0]) if embed is not None else None
    z_dim = int(sd["mapping.fc0.weight"].shape[1]) - (embed_features or 0)
    layer_features = int(sd["mapping.fc0.weight"].shape[0]) if n_map > 1 else None
    torgb = [r for r in res if f"synthesis.b{r}.torgb.weight" in sd]
    if any(f"synthesis.b{r}.skip.weight" in sd for r in res):
        arch = "resnet"
    elif torgb == [img_res] and len(res) > 1:
        arch = "orig"
    else:
        arch = "skip"
    if img_res not in torgb:
        raise CheckpointError(f"the last synthesis block (b{img_res}) has no torgb layer")
    base, cmax, explicit = _channel_formula(channels)
    cfg = dict(
        z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_res,
        img_channels=int(sd[f"synthesis.b{img_res}.torgb.weight"].shape[0]),
        channel_base=base, channel_max=cmax, channels=explicit, mapping_layers=n_map,
        mapping_layer_features=layer_features if layer_features != w_dim else None,
        embed_features=embed_features if (embed_features is not None and embed_features != w_dim) else None,
        architecture=arch, use_noise="synthesis.b4.conv1.noise_strength" in sd,
    )
    cfg.update({k: v for k, v in hints.items() if v is not None})
    try:
        return GeneratorConfig(**cfg)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"inconsistent generator settings: {e}") from e


def _channel_formula(channels: Dict[int, int]) -> Tuple[int, int, Optional[Dict[int, int]]]:
    """Find channel_base/channel_max reproducing ``channels``; else return them explicitly."""
    cmax = max(channels.values())
    uncapped = [c * r for r, c in channels.items() if c < cmax]
    base = min(uncapped) if uncapped else cmax * max(channels)
    if all(min(base // r, cmax) == c for r, c in channels.items()):
        return base, cmax, None
    return 32768, 512, dict(channels)


def generator_from_state_dict(cfg: GeneratorConfig, sd: Dict[str, torch.Tensor], *, what: str) -> Generator:
    """Build a Generator and load tensors, with a precise error for every missing/extra/misshaped key."""
    G = Generator(cfg)
    own = G.state_dict()
    sd = {k: v for k, v in sd.items() if not k.endswith("resample_filter")}
    missing = sorted(set(own) - set(sd))
    if missing == ["mapping.w_avg"]:
        sd = dict(sd, **{"mapping.w_avg": torch.zeros_like(own["mapping.w_avg"])})
        missing = []
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{what}: tensors do not match a StyleGAN2 generator with this config: "
                              f"missing {missing[:8]}{'...' if len(missing) > 8 else ''}, "
                              f"unexpected {unexpected[:8]}{'...' if len(unexpected) > 8 else ''}")
    for k, v in own.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{what}: {k} has shape {tuple(sd[k].shape)}, expected {tuple(v.shape)}")
    G.load_state_dict({k: _to_tensor(v, k) for k, v in sd.items()})
    return G.eval().requires_grad_(False)


# ------------------------------------------------------------------------------------------------
# NVIDIA pickles.


def _stub_tensors(stub: PersistentStub, prefix: str, out: Dict[str, torch.Tensor]) -> None:
    st = stub.state
    for group in ("_parameters", "_buffers"):
        for k, v in (st.get(group) or {}).items():
            if v is not None:
                out[prefix + k] = _to_tensor(v, prefix + k)
    for k, m in (st.get("_modules") or {}).items():
        if m is None:
            continue
        if not isinstance(m, PersistentStub):
            raise CheckpointError(f"sub-module {prefix + k} is not a network object ({type(m).__name__})")
        _stub_tensors(m, prefix + k + ".", out)


def _child(stub: PersistentStub, name: str) -> Optional[PersistentStub]:
    m = (stub.state.get("_modules") or {}).get(name)
    return m if isinstance(m, PersistentStub) else None


def _init_kwarg(stub: PersistentStub, name: str) -> Any:
    kw = stub.state.get("_init_kwargs") or {}
    if name in kw:
        return kw[name]
    for nest in ("synthesis_kwargs", "mapping_kwargs"):
        sub = kw.get(nest) or {}
        if isinstance(sub, dict) and name in sub:
            return sub[name]
    return None


def _from_nvidia_generator(G: PersistentStub, notes: List[str]) -> Generator:
    synthesis, mapping = _child(G, "synthesis"), _child(G, "mapping")
    if synthesis is None or mapping is None:
        raise CheckpointError(f"the pickled {G.class_name} has no synthesis/mapping networks: not a StyleGAN2 "
                              f"generator")
    if _child(synthesis, "input") is not None or "layer_names" in synthesis.state:
        raise CheckpointError("this is a StyleGAN3 (alias-free) generator; EditGAN Studio supports StyleGAN2 "
                              "generators only")
    sd: Dict[str, torch.Tensor] = {}
    _stub_tensors(G, "", sd)
    blocks = sorted(int(k[1:]) for k in (synthesis.state.get("_modules") or {}) if re.fullmatch(r"b\d+", k))
    if not blocks:
        raise CheckpointError("the pickled synthesis network has no b4..bN blocks: not a StyleGAN2 generator")
    b4 = _child(synthesis, "b4")
    conv = _child(b4, "conv1") if b4 is not None else None
    fc0 = _child(mapping, "fc0")
    hints: Dict[str, Any] = {}
    if conv is not None:
        act = conv.state.get("activation", "lrelu")
        if act != "lrelu":
            raise CheckpointError(f"synthesis activation {act!r} is not supported (only 'lrelu')")
        hints["conv_clamp"] = conv.state.get("conv_clamp")
        if "conv_clamp" not in conv.state:
            hints["conv_clamp"] = _init_kwarg(G, "conv_clamp")
        clamp = hints["conv_clamp"]
        hints["conv_clamp"] = float(clamp) if clamp is not None else None
    use_fp16 = [bool(_child(synthesis, f"b{r}").state.get("use_fp16", False)) for r in blocks]
    hints["num_fp16_res"] = sum(use_fp16)
    if fc0 is not None:
        hints["mapping_lr_multiplier"] = float(fc0.state.get("bias_gain", 0.01))
        hints["mapping_activation"] = str(fc0.state.get("activation", "lrelu"))
    beta = mapping.state.get("w_avg_beta", 0.998)
    hints["w_avg_beta"] = float(beta) if beta is not None else None
    arch = (b4.state.get("architecture") if b4 is not None else None) or "skip"
    cfg = config_from_state_dict(sd, **hints)
    if cfg.architecture != arch:
        raise CheckpointError(f"architecture {arch!r} in the pickle does not match its tensors ({cfg.architecture!r})")
    filt = sd.get(f"synthesis.b{blocks[-1]}.resample_filter")
    if filt is not None:
        ours = torch.outer(torch.tensor(cfg.resample_filter), torch.tensor(cfg.resample_filter))
        if filt.shape != ours.shape or not torch.allclose(filt, ours / ours.sum(), atol=1e-6):
            raise CheckpointError("the generator uses a resample filter other than [1, 3, 3, 1]; not supported")
    img_res = G.state.get("img_resolution")
    if img_res is not None and int(img_res) != cfg.img_resolution:
        raise CheckpointError(f"img_resolution {img_res} disagrees with the synthesis blocks ({cfg.img_resolution})")
    if hints["num_fp16_res"]:
        notes.append(f"trained with fp16 in the top {hints['num_fp16_res']} resolutions; runs in float32 here")
    return generator_from_state_dict(cfg, sd, what="NVIDIA pickle")


def _load_nvidia(obj: Any, key: Optional[str], notes: List[str]) -> Generator:
    if isinstance(obj, PersistentStub):
        return _from_nvidia_generator(obj, notes)
    if not isinstance(obj, dict):
        raise CheckpointError(f"unexpected pickle content ({type(obj).__name__}); not a StyleGAN2 snapshot")
    nets = sorted(k for k, v in obj.items() if isinstance(v, PersistentStub))
    if key is None:
        if "G_ema" not in obj:
            hint = (f"; it holds {', '.join(nets)}" if nets else "")
            extra = " -- pass key='G' (CLI: --key G) to use the non-averaged generator" if "G" in nets else ""
            raise CheckpointError(f"this snapshot has no G_ema generator{hint}{extra}")
        key = "G_ema"
    if key not in obj or not isinstance(obj[key], PersistentStub):
        raise CheckpointError(f"this snapshot has no network {key!r} (it holds {', '.join(nets) or 'none'})")
    if key != "G_ema":
        notes.append(f"using {key!r} instead of G_ema")
    return _from_nvidia_generator(obj[key], notes)


# ------------------------------------------------------------------------------------------------
# rosinality stylegan2-pytorch.

def _is_rosinality(sd: Dict[str, Any]) -> bool:
    return "input.input" in sd and "conv1.conv.weight" in sd


def _rosinality_to_nvidia(sd: Dict[str, Any]) -> Tuple[Dict[str, torch.Tensor], GeneratorConfig]:
    t = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    out: Dict[str, torch.Tensor] = {}
    n_mlp = 0
    while f"style.{n_mlp + 1}.weight" in t:
        out[f"mapping.fc{n_mlp}.weight"] = t[f"style.{n_mlp + 1}.weight"]
        out[f"mapping.fc{n_mlp}.bias"] = t[f"style.{n_mlp + 1}.bias"]
        n_mlp += 1
    if n_mlp == 0:
        raise CheckpointError("rosinality checkpoint without mapping layers (style.1.weight missing)")
    n_rgb = 0
    while f"to_rgbs.{n_rgb}.conv.weight" in t:
        n_rgb += 1
    size = 4 * 2 ** n_rgb

    def styled(src: str, dst: str, noise: Optional[str]) -> None:
        w = t[f"{src}.conv.weight"]
        if w.ndim != 5 or w.shape[0] != 1 or w.shape[3] != 3:
            raise CheckpointError(f"{src}.conv.weight has shape {tuple(w.shape)}; expected [1, O, I, 3, 3]")
        out[f"{dst}.weight"] = w[0]
        out[f"{dst}.affine.weight"] = t[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = t[f"{src}.conv.modulation.bias"]
        out[f"{dst}.bias"] = t[f"{src}.activate.bias"]
        out[f"{dst}.noise_strength"] = t[f"{src}.noise.weight"].reshape([])
        if noise is not None:
            out[f"{dst}.noise_const"] = t[noise].reshape(t[noise].shape[-2:])

    def to_rgb(src: str, dst: str) -> None:
        out[f"{dst}.weight"] = t[f"{src}.conv.weight"][0]
        out[f"{dst}.affine.weight"] = t[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = t[f"{src}.conv.modulation.bias"]
        out[f"{dst}.bias"] = t[f"{src}.bias"].reshape(-1)

    try:
        out["synthesis.b4.const"] = t["input.input"][0]
        has_noise = "noises.noise_0" in t
        styled("conv1", "synthesis.b4.conv1", "noises.noise_0" if has_noise else None)
        to_rgb("to_rgb1", "synthesis.b4.torgb")
        for j in range(n_rgb):
            r = 8 * 2 ** j
            i0, i1 = 2 * j, 2 * j + 1
            styled(f"convs.{i0}", f"synthesis.b{r}.conv0", f"noises.noise_{i0 + 1}" if has_noise else None)
            styled(f"convs.{i1}", f"synthesis.b{r}.conv1", f"noises.noise_{i1 + 1}" if has_noise else None)
            to_rgb(f"to_rgbs.{j}", f"synthesis.b{r}.torgb")
    except KeyError as e:
        raise CheckpointError(f"rosinality checkpoint is missing tensor {e.args[0]} (size {size})") from None
    if not has_noise:  # rosinality files always carry noises; keep the layers' noise slot deterministic
        for k in list(out):
            if k.endswith(".noise_strength"):
                r = int(re.match(r"synthesis\.b(\d+)", k).group(1))
                out[k.replace("noise_strength", "noise_const")] = torch.zeros([r, r])
    cfg = config_from_state_dict(out, mapping_lr_multiplier=0.01, conv_clamp=None, num_fp16_res=0)
    return out, cfg


def _load_rosinality(obj: Dict[str, Any], notes: List[str]) -> Generator:
    if "g_ema" in obj:
        sd, latent_avg = obj["g_ema"], obj.get("latent_avg")
        if not isinstance(sd, dict):
            raise CheckpointError("rosinality checkpoint: 'g_ema' is not a state dict")
    else:
        sd, latent_avg = obj, obj.get("latent_avg")
    nv, cfg = _rosinality_to_nvidia(sd)
    if isinstance(latent_avg, torch.Tensor):
        nv["mapping.w_avg"] = latent_avg.reshape(-1)
    G = generator_from_state_dict(cfg, nv, what="rosinality checkpoint")
    if not isinstance(latent_avg, torch.Tensor):
        # The train format stores no average latent; estimate it the way rosinality's mean_latent does,
        # with a fixed seed so that truncation is reproducible.
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            z = torch.randn([_ROSINALITY_W_AVG_SAMPLES, cfg.z_dim], generator=gen)
            G.mapping.w_avg.copy_(G.mapping(z, None).mean(0))
        notes.append(f"no latent_avg in the file: w_avg estimated from {_ROSINALITY_W_AVG_SAMPLES} samples "
                     f"(seed 0)")
    return G


# ------------------------------------------------------------------------------------------------
# TensorFlow pickles.

_TF_KWARGS = {
    "latent_size": ("z_dim", 512), "label_size": ("c_dim", 0), "dlatent_size": ("w_dim", 512),
    "resolution": ("img_resolution", 1024), "num_channels": ("img_channels", 3),
    "mapping_layers": ("mapping_layers", 8), "label_fmaps": ("embed_features", None),
    "mapping_fmaps": ("mapping_layer_features", None), "mapping_nonlinearity": ("mapping_activation", "lrelu"),
    "mapping_lrmul": ("mapping_lr_multiplier", 0.01), "w_avg_beta": ("w_avg_beta", 0.995),
    "fmap_base": ("channel_base", 16384), "fmap_max": ("channel_max", 512),
    "num_fp16_res": ("num_fp16_res", 0), "conv_clamp": ("conv_clamp", None),
    "architecture": ("architecture", "skip"), "use_noise": ("use_noise", True),
}
_TF_IGNORED = {"truncation_psi", "truncation_cutoff", "style_mixing_prob", "structure", "conditioning",
               "fused_modconv", "resample_kernel", "nonlinearity", "is_template_graph", "components",
               "dtype", "randomize_noise", "fmap_decay", "fmap_min", "normalize_latents", "dlatent_avg_beta",
               "num_fp16_res_synthesis"}


def _tf_variables(net: TFNetworkStub, prefix: str, out: Dict[str, Any]) -> None:
    for item in net.state.get("variables") or []:
        name, value = item
        out[prefix + str(name)] = value
    for comp_name, comp in (net.state.get("components") or {}).items():
        if isinstance(comp, TFNetworkStub):
            _tf_variables(comp, prefix + str(comp_name) + "/", out)


def _load_tf(obj: Any, notes: List[str]) -> Generator:
    if isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(o, TFNetworkStub) for o in obj):
        Gs = obj[2]
    elif isinstance(obj, TFNetworkStub):
        Gs = obj
    else:
        raise CheckpointError("TensorFlow pickle without a (G, D, Gs) tuple or a generator network")
    version = Gs.state.get("version", 0)
    if not isinstance(version, int) or version < 4:
        raise CheckpointError(f"TensorFlow network format version {version} is too old (StyleGAN1?); only "
                              f"StyleGAN2 pickles (version 4) are supported")
    kwargs = dict(Gs.state.get("static_kwargs") or {})
    unknown = sorted(set(kwargs) - set(_TF_KWARGS) - _TF_IGNORED)
    if unknown:
        raise CheckpointError(f"TensorFlow generator with unknown settings {unknown}; not a StyleGAN2 network")
    if kwargs.get("resample_kernel", [1, 3, 3, 1]) != [1, 3, 3, 1]:
        raise CheckpointError("TensorFlow generator with a resample kernel other than [1, 3, 3, 1]")
    if kwargs.get("nonlinearity", "lrelu") != "lrelu":
        raise CheckpointError("TensorFlow generator with a non-lrelu nonlinearity is not supported")
    cfg_kw = {dst: kwargs.get(src, default) for src, (dst, default) in _TF_KWARGS.items()}
    cfg_kw["channel_base"] = int(cfg_kw["channel_base"]) * 2
    if cfg_kw["w_avg_beta"] is None:
        cfg_kw["w_avg_beta"] = 1.0
    tf: Dict[str, Any] = {}
    _tf_variables(Gs, "", tf)
    if any("ToRGB_lod" in k for k in tf):
        raise CheckpointError("progressive-growing ('orig' with ToRGB_lod) TensorFlow generators are not supported")

    def arr(name: str) -> np.ndarray:
        if name not in tf:
            raise CheckpointError(f"TensorFlow generator is missing variable {name!r}")
        return np.asarray(tf[name], dtype=np.float32)

    sd: Dict[str, Any] = {"mapping.w_avg": arr("dlatent_avg")} if "dlatent_avg" in tf else {}
    for i in range(int(cfg_kw["mapping_layers"])):
        sd[f"mapping.fc{i}.weight"] = arr(f"mapping/Dense{i}/weight").T
        sd[f"mapping.fc{i}.bias"] = arr(f"mapping/Dense{i}/bias")
    if int(cfg_kw["c_dim"]) > 0:
        sd["mapping.embed.weight"] = arr("mapping/LabelEmbed/weight").T
        sd["mapping.embed.bias"] = arr("mapping/LabelEmbed/bias")
    img_res = int(cfg_kw["img_resolution"])
    log2 = int(math.log2(img_res))

    def layer(tf_name: str, dst: str, *, flip: bool = False, noise_idx: Optional[int] = None, rgb: bool = False):
        w = arr(f"{tf_name}/weight")
        if flip:
            w = w[::-1, ::-1]
        sd[f"{dst}.weight"] = np.ascontiguousarray(w.transpose(3, 2, 0, 1))
        sd[f"{dst}.bias"] = arr(f"{tf_name}/bias")
        sd[f"{dst}.affine.weight"] = arr(f"{tf_name}/mod_weight").T
        sd[f"{dst}.affine.bias"] = arr(f"{tf_name}/mod_bias") + 1
        if not rgb and cfg_kw["use_noise"]:
            sd[f"{dst}.noise_strength"] = arr(f"{tf_name}/noise_strength").reshape([])
            sd[f"{dst}.noise_const"] = arr(f"synthesis/noise{noise_idx}")[0, 0]

    sd["synthesis.b4.const"] = arr("synthesis/4x4/Const/const")[0]
    layer("synthesis/4x4/Conv", "synthesis.b4.conv1", noise_idx=0)
    arch = cfg_kw["architecture"]
    for lg in range(2, log2 + 1):
        r = 2 ** lg
        if r > 4:
            layer(f"synthesis/{r}x{r}/Conv0_up", f"synthesis.b{r}.conv0", flip=True, noise_idx=2 * lg - 5)
            layer(f"synthesis/{r}x{r}/Conv1", f"synthesis.b{r}.conv1", noise_idx=2 * lg - 4)
            if arch == "resnet":
                w = arr(f"synthesis/{r}x{r}/Skip/weight")[::-1, ::-1]
                sd[f"synthesis.b{r}.skip.weight"] = np.ascontiguousarray(w.transpose(3, 2, 0, 1))
        if arch == "skip" or r == img_res:
            layer(f"synthesis/{r}x{r}/ToRGB", f"synthesis.b{r}.torgb", rgb=True)
    sd = {k: _to_tensor(v, k) for k, v in sd.items()}
    try:
        cfg = GeneratorConfig(**cfg_kw)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"TensorFlow generator settings are inconsistent: {e}") from e
    notes.append("converted from a TensorFlow StyleGAN2 pickle (read without TensorFlow)")
    return generator_from_state_dict(cfg, sd, what="TensorFlow pickle")


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
        return LoadedGenerator(_load_tf(obj, notes), "tf-pkl", str(path), sha, notes)
    if isinstance(obj, PersistentStub) or (isinstance(obj, dict) and any(isinstance(v, PersistentStub)
                                                                         for v in obj.values())):
        return LoadedGenerator(_load_nvidia(obj, key, notes), "nvidia-pkl", str(path), sha, notes)
    if isinstance(obj, dict) and obj and all(isinstance(v, (EasyDictStub, dict, str, int, float)) or v is None
                                             for v in obj.values()) and "G_ema" not in obj:
        raise CheckpointError(f"{path.name} holds no networks (keys: {', '.join(map(str, list(obj)[:8]))}); "
                              f"is it a training log or an options file?")
    if isinstance(obj, dict):
        return LoadedGenerator(_load_torch_obj(obj, key, notes, path), _torch_format(obj), str(path), sha, notes)
    raise CheckpointError(f"{path.name}: unexpected pickle content ({type(obj).__name__}); not a StyleGAN2 checkpoint")


def _torch_format(obj: Any) -> str:
    if isinstance(obj, dict) and ("g_ema" in obj or _is_rosinality(obj)):
        return "rosinality-pt"
    return "nvidia-state"


def _load_torch_obj(obj: Any, key: Optional[str], notes: List[str], path: Path) -> Generator:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path.name}: expected a dict of tensors, got {type(obj).__name__}")
    if "g_ema" in obj or _is_rosinality(obj):
        return _load_rosinality(obj, notes)
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
