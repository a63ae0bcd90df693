"""Write a TensorFlow StyleGAN2 pickle ((G, D, Gs) of dnnlib.tflib.network.Network) from a Generator.

Variables follow the TF naming and layout facts (see shared/docs/formats.md): dense weights [in, out],
conv weights [k, k, in, out] (upsampling convs spatially flipped), mod_bias stored without its +1.
"""

import pickle

import numpy as np

from editgan_core.models.generator import Generator
from fakes.fake_modules import stand_in_modules


class Network:
    def __init__(self, state):
        self._state = state

    def __getstate__(self):
        return self._state


def _modules():
    return stand_in_modules({"dnnlib": {}, "dnnlib.tflib": {}, "dnnlib.tflib.network": {"Network": Network}})


def _net(name, variables, components=None, static_kwargs=None):
    return Network({"version": 4, "name": name, "static_kwargs": static_kwargs or {},
                    "components": components or {}, "build_module_src": "raise RuntimeError('executed')",
                    "build_func_name": "G_main", "variables": list(variables.items())})


def tf_variables(G: Generator):
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in G.state_dict().items()}
    cfg = G.cfg
    mapping = {}
    for i in range(cfg.mapping_layers):
        mapping[f"Dense{i}/weight"] = sd[f"mapping.fc{i}.weight"].T.copy()
        mapping[f"Dense{i}/bias"] = sd[f"mapping.fc{i}.bias"]
    syn = {"4x4/Const/const": sd["synthesis.b4.const"][None]}

    def layer(dst, src, flip=False, noise=None):
        w = sd[f"{src}.weight"].transpose(2, 3, 1, 0)
        if flip:
            w = w[::-1, ::-1]
        syn[f"{dst}/weight"] = np.ascontiguousarray(w)
        syn[f"{dst}/bias"] = sd[f"{src}.bias"]
        syn[f"{dst}/mod_weight"] = sd[f"{src}.affine.weight"].T.copy()
        syn[f"{dst}/mod_bias"] = sd[f"{src}.affine.bias"] - 1
        if noise is not None:
            syn[f"{dst}/noise_strength"] = sd[f"{src}.noise_strength"]
            syn[f"noise{noise}"] = sd[f"{src}.noise_const"][None, None]

    layer("4x4/Conv", "synthesis.b4.conv1", noise=0)
    layer("4x4/ToRGB", "synthesis.b4.torgb")
    for lg in range(3, cfg.resolution_log2 + 1):
        r = 2 ** lg
        layer(f"{r}x{r}/Conv0_up", f"synthesis.b{r}.conv0", flip=True, noise=2 * lg - 5)
        layer(f"{r}x{r}/Conv1", f"synthesis.b{r}.conv1", noise=2 * lg - 4)
        layer(f"{r}x{r}/ToRGB", f"synthesis.b{r}.torgb")
    return mapping, syn, {"dlatent_avg": sd["mapping.w_avg"], "lod": np.float32(0)}


def save_tf_pickle(G: Generator, path, **kwarg_overrides):
    cfg = G.cfg
    mapping, syn, top = tf_variables(G)
    kwargs = dict(latent_size=cfg.z_dim, dlatent_size=cfg.w_dim, resolution=cfg.img_resolution,
                  num_channels=3, label_size=0, fmap_base=cfg.channel_base // 2, fmap_max=cfg.channel_max,
                  mapping_layers=cfg.mapping_layers, truncation_psi=0.5, architecture="skip")
    kwargs.update(kwarg_overrides)
    with _modules():
        Gs = _net("G", top, {"mapping": _net("G_mapping", mapping), "synthesis": _net("G_synthesis", syn)}, kwargs)
        D = _net("D", {"x": np.zeros(2, np.float32)})
        with open(path, "wb") as f:
            pickle.dump((Gs, D, Gs), f, protocol=4)
