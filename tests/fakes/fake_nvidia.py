"""Write pickles laid out exactly like NVIDIA's stylegan2-ada-pytorch / stylegan3 snapshots, without their code.

A real snapshot pickles each network through ``torch_utils.persistence._reconstruct_persistent_obj(meta)``
with ``meta = {type, version, module_src, class_name, state}`` where ``state`` is the module ``__dict__``.
We register stand-in modules named ``torch_utils.persistence`` and ``dnnlib.util`` only while pickling, so
the file names the same globals a real one does. The reconstruct function here is deliberately a bomb:
if a loader ever called the file's own code path, the test would fail loudly.
"""

from __future__ import annotations

import math
import pickle
from collections import OrderedDict
from typing import Any, Dict, Optional

import torch

from editgan_core.models.generator import Generator
from fakes.fake_modules import stand_in_modules

MODULE_SRC = "raise RuntimeError('the loader executed module_src from the pickle')\n"


def _bomb(meta):  # pragma: no cover - must never run
    raise RuntimeError("the real persistence hook ran")


class EasyDict(dict):
    pass


def fake_modules():
    _bomb.__qualname__ = _bomb.__name__ = "_reconstruct_persistent_obj"
    return stand_in_modules({"torch_utils": {}, "torch_utils.persistence": {"_reconstruct_persistent_obj": _bomb},
                             "dnnlib": {}, "dnnlib.util": {"EasyDict": EasyDict}})


class Net:
    """Pickles as a persistent-class object with the given class name and module state."""

    def __init__(self, class_name: str, params=None, buffers=None, modules=None, attrs=None, init_kwargs=None):
        self.class_name = class_name
        self.state = {
            "training": False,
            "_parameters": OrderedDict((k, torch.nn.Parameter(v.clone(), requires_grad=v.dtype.is_floating_point))
                                       for k, v in (params or {}).items()),
            "_buffers": OrderedDict((k, v.clone()) for k, v in (buffers or {}).items()),
            "_non_persistent_buffers_set": set(),
            "_backward_hooks": OrderedDict(),
            "_forward_hooks": OrderedDict(),
            "_forward_pre_hooks": OrderedDict(),
            "_state_dict_hooks": OrderedDict(),
            "_load_state_dict_pre_hooks": OrderedDict(),
            "_modules": OrderedDict(modules or {}),
            "_init_args": (),
            "_init_kwargs": init_kwargs or {},
            **(attrs or {}),
        }

    def __reduce__(self):
        meta = dict(type="class", version=6, module_src=MODULE_SRC, class_name=self.class_name, state=self.state)
        return (_bomb, (meta,))


def _fc(sd, prefix, lr, activation):
    w = sd[prefix + ".weight"]
    return Net("FullyConnectedLayer", params={"weight": w, "bias": sd[prefix + ".bias"]},
               attrs={"in_features": w.shape[1], "out_features": w.shape[0], "activation": activation,
                      "weight_gain": lr / math.sqrt(w.shape[1]), "bias_gain": lr})


def generator_net(G: Generator, *, flat_kwargs: bool = False, class_name: str = "Generator") -> Net:
    cfg = G.cfg
    sd = {k: v.detach() for k, v in G.state_dict().items()}
    f = torch.tensor(cfg.resample_filter)
    filt = torch.outer(f, f) / torch.outer(f, f).sum()
    blocks = OrderedDict()
    for res in cfg.block_resolutions:
        p = f"synthesis.b{res}"
        mods = OrderedDict()
        for conv in ("conv0", "conv1"):
            if f"{p}.{conv}.weight" not in sd:
                continue
            q = f"{p}.{conv}"
            params = {"weight": sd[q + ".weight"], "bias": sd[q + ".bias"]}
            buffers = {"resample_filter": filt}
            if cfg.use_noise:
                params["noise_strength"] = sd[q + ".noise_strength"]
                buffers["noise_const"] = sd[q + ".noise_const"]
            mods[conv] = Net("SynthesisLayer", params=params, buffers=buffers,
                             modules={"affine": _fc(sd, q + ".affine", 1.0, "linear")},
                             attrs={"resolution": res, "up": 2 if conv == "conv0" else 1, "use_noise": cfg.use_noise,
                                    "activation": "lrelu", "conv_clamp": cfg.conv_clamp, "padding": 1,
                                    "act_gain": math.sqrt(2), "w_dim": cfg.w_dim})
        if f"{p}.torgb.weight" in sd:
            q = f"{p}.torgb"
            mods["torgb"] = Net("ToRGBLayer", params={"weight": sd[q + ".weight"], "bias": sd[q + ".bias"]},
                                modules={"affine": _fc(sd, q + ".affine", 1.0, "linear")},
                                attrs={"conv_clamp": cfg.conv_clamp,
                                       "weight_gain": 1 / math.sqrt(sd[q + ".weight"].shape[1])})
        if f"{p}.skip.weight" in sd:
            mods["skip"] = Net("Conv2dLayer", params={"weight": sd[f"{p}.skip.weight"]},
                               buffers={"resample_filter": filt}, attrs={"up": 2, "activation": "linear"})
        params = {"const": sd[f"{p}.const"]} if res == 4 else {}
        blocks[f"b{res}"] = Net("SynthesisBlock", params=params, buffers={"resample_filter": filt}, modules=mods,
                                attrs={"resolution": res, "architecture": cfg.architecture, "is_last":
                                       res == cfg.img_resolution, "use_fp16": res >= cfg.fp16_resolution,
                                       "in_channels": 0 if res == 4 else cfg.channels_at(res // 2),
                                       "channels_last": False})
    synthesis = Net("SynthesisNetwork", modules=blocks,
                    attrs={"w_dim": cfg.w_dim, "img_resolution": cfg.img_resolution,
                           "block_resolutions": cfg.block_resolutions, "num_ws": cfg.num_ws})
    maps = OrderedDict()
    if cfg.c_dim:
        maps["embed"] = _fc(sd, "mapping.embed", 1.0, "linear")
    for i in range(cfg.mapping_layers):
        maps[f"fc{i}"] = _fc(sd, f"mapping.fc{i}", cfg.mapping_lr_multiplier, cfg.mapping_activation)
    mapping = Net("MappingNetwork", buffers={"w_avg": sd["mapping.w_avg"]}, modules=maps,
                  attrs={"z_dim": cfg.z_dim, "c_dim": cfg.c_dim, "w_dim": cfg.w_dim, "num_ws": cfg.num_ws,
                         "num_layers": cfg.mapping_layers, "w_avg_beta": cfg.w_avg_beta})
    syn_kw = EasyDict(channel_base=cfg.channel_base, channel_max=cfg.channel_max, num_fp16_res=cfg.num_fp16_res,
                      conv_clamp=cfg.conv_clamp, architecture=cfg.architecture)
    if flat_kwargs:
        init = dict(z_dim=cfg.z_dim, c_dim=cfg.c_dim, w_dim=cfg.w_dim, img_resolution=cfg.img_resolution,
                    img_channels=cfg.img_channels, mapping_kwargs=EasyDict(num_layers=cfg.mapping_layers), **syn_kw)
    else:
        init = dict(z_dim=cfg.z_dim, c_dim=cfg.c_dim, w_dim=cfg.w_dim, img_resolution=cfg.img_resolution,
                    img_channels=cfg.img_channels, mapping_kwargs=EasyDict(num_layers=cfg.mapping_layers),
                    synthesis_kwargs=syn_kw)
    return Net(class_name, modules=OrderedDict(synthesis=synthesis, mapping=mapping), init_kwargs=init,
               attrs={"z_dim": cfg.z_dim, "c_dim": cfg.c_dim, "w_dim": cfg.w_dim,
                      "img_resolution": cfg.img_resolution, "img_channels": cfg.img_channels,
                      "num_ws": cfg.num_ws})


def save_snapshot(G: Generator, path, *, flat_kwargs: bool = False, include_ema: bool = True,
                  extra: Optional[Dict[str, Any]] = None, G_train: Optional[Generator] = None) -> None:
    with fake_modules():
        snap: Dict[str, Any] = {"G": generator_net(G_train or G, flat_kwargs=flat_kwargs),
                                "D": Net("Discriminator", params={"x": torch.zeros(2)})}
        if include_ema:
            snap["G_ema"] = generator_net(G, flat_kwargs=flat_kwargs)
        snap["augment_pipe"] = None
        snap["training_set_kwargs"] = EasyDict(path="ffhq.zip", resolution=G.cfg.img_resolution)
        snap.update(extra or {})
        with open(path, "wb") as f:
            pickle.dump(snap, f)
