"""Published StyleGAN2 checkpoints -> the project's Generator: the conversions behind
:func:`editgan_core.loaders.checkpoints.load_generator` for every format it reads that is not the native one.

- NVIDIA-layout state dicts: the architecture read from tensor shapes (``config_from_state_dict``);
- NVIDIA pickles (stylegan2-ada-pytorch, stylegan3 repo), as the allow-list unpickler's stubs (``load_nvidia``);
- rosinality's stylegan2-pytorch files, keys renamed to NVIDIA's (``load_rosinality``);
- StyleGAN2 TensorFlow pickles, read without TensorFlow (``load_tf``).

Parity with the official code on every format is tested in tests/test_checkpoints.py.
"""

from __future__ import annotations

import math
import re
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from ..errors import CheckpointError
from ..models.generator import Generator, GeneratorConfig
from .safe_pickle import PersistentStub, TFNetworkStub

_ROSINALITY_W_AVG_SAMPLES = 10_000


def to_tensor(v: Any, name: str) -> torch.Tensor:
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
    G.load_state_dict({k: to_tensor(v, k) for k, v in sd.items()})
    return G.eval().requires_grad_(False)


# ------------------------------------------------------------------------------------------------
# NVIDIA pickles.


def _stub_tensors(stub: PersistentStub, prefix: str, out: Dict[str, torch.Tensor]) -> None:
    st = stub.state
    for group in ("_parameters", "_buffers"):
        for k, v in (st.get(group) or {}).items():
            if v is not None:
                out[prefix + k] = to_tensor(v, prefix + k)
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


def load_nvidia(obj: Any, key: Optional[str], notes: List[str]) -> Generator:
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

def is_rosinality(sd: Dict[str, Any]) -> bool:
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


def load_rosinality(obj: Dict[str, Any], notes: List[str]) -> Generator:
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


def load_tf(obj: Any, notes: List[str]) -> Generator:
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
    sd = {k: to_tensor(v, k) for k, v in sd.items()}
    try:
        cfg = GeneratorConfig(**cfg_kw)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"TensorFlow generator settings are inconsistent: {e}") from e
    notes.append("converted from a TensorFlow StyleGAN2 pickle (read without TensorFlow)")
    return generator_from_state_dict(cfg, sd, what="TensorFlow pickle")
