"""An independent re-statement of rosinality's stylegan2-pytorch generator, for parity tests.

Written from the published architecture facts (see shared docs): weights carry the 1/sqrt(fan_in) scale at
run time, upsampling is a transposed convolution followed by a blur given as an explicit 2-D kernel applied
by zero-insertion + padding + conv2d, and noise is injected as ``x + weight * noise``. It deliberately uses
none of editgan_core's ops, so agreement is evidence, not tautology.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Dict, List

import torch
import torch.nn.functional as F


def _kernel2d() -> torch.Tensor:
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = k[None, :] * k[:, None]
    return k / k.sum()


def _upfirdn(x: torch.Tensor, kernel: torch.Tensor, up: int, pad0: int, pad1: int) -> torch.Tensor:
    n, c, h, w = x.shape
    if up > 1:
        y = torch.zeros(n, c, h * up, w * up, dtype=x.dtype)
        y[:, :, ::up, ::up] = x
        x = y
    x = F.pad(x, [pad0, pad1, pad0, pad1])
    k = torch.flip(kernel, [0, 1])[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, k, groups=c)


def random_state_dict(size: int, style_dim: int, n_mlp: int, channel_multiplier: int, *, seed: int = 0,
                      train_format: bool = False) -> Dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ch = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * channel_multiplier, 128: 128 * channel_multiplier,
          256: 64 * channel_multiplier}
    ch = {k: max(v // 16, 4) for k, v in ch.items()}  # tiny
    sd: Dict[str, torch.Tensor] = OrderedDict()
    lr = 0.01
    for i in range(1, n_mlp + 1):
        sd[f"style.{i}.weight"] = torch.randn(style_dim, style_dim, generator=g) / lr
        sd[f"style.{i}.bias"] = torch.randn(style_dim, generator=g)
    sd["input.input"] = torch.randn(1, ch[4], 4, 4, generator=g)

    def styled(prefix: str, cin: int, cout: int):
        sd[f"{prefix}.conv.weight"] = torch.randn(1, cout, cin, 3, 3, generator=g)
        sd[f"{prefix}.conv.modulation.weight"] = torch.randn(cin, style_dim, generator=g)
        sd[f"{prefix}.conv.modulation.bias"] = 1 + 0.1 * torch.randn(cin, generator=g)
        sd[f"{prefix}.noise.weight"] = 0.2 * torch.randn(1, generator=g)
        sd[f"{prefix}.activate.bias"] = 0.1 * torch.randn(cout, generator=g)

    def rgb(prefix: str, cin: int):
        sd[f"{prefix}.conv.weight"] = torch.randn(1, 3, cin, 1, 1, generator=g)
        sd[f"{prefix}.conv.modulation.weight"] = torch.randn(cin, style_dim, generator=g)
        sd[f"{prefix}.conv.modulation.bias"] = 1 + 0.1 * torch.randn(cin, generator=g)
        sd[f"{prefix}.bias"] = 0.1 * torch.randn(1, 3, 1, 1, generator=g)

    styled("conv1", ch[4], ch[4])
    rgb("to_rgb1", ch[4])
    log = int(math.log2(size))
    i = 0
    cin = ch[4]
    for lg in range(3, log + 1):
        cout = ch[2 ** lg]
        styled(f"convs.{i}", cin, cout)
        styled(f"convs.{i + 1}", cout, cout)
        sd[f"convs.{i}.conv.blur.kernel"] = _kernel2d() * 4
        rgb(f"to_rgbs.{lg - 3}", cout)
        sd[f"to_rgbs.{lg - 3}.upsample.kernel"] = _kernel2d() * 4
        i += 2
        cin = cout
    for j in range(2 * log - 3):
        r = 2 ** ((j + 5) // 2)
        sd[f"noises.noise_{j}"] = torch.randn(1, 1, r, r, generator=g)
    return sd


def _eq_linear(x, w, b, lr=1.0, act=False):
    out = F.linear(x, w * (lr / math.sqrt(w.shape[1])))
    if act:
        return F.leaky_relu(out + b * lr, 0.2) * math.sqrt(2)
    return out + b * lr


def _modconv(x, sd, prefix, style, *, demodulate=True, upsample=False):
    w = sd[f"{prefix}.conv.weight"]
    _, cout, cin, k, _ = w.shape
    s = _eq_linear(style, sd[f"{prefix}.conv.modulation.weight"], sd[f"{prefix}.conv.modulation.bias"])
    n = x.shape[0]
    weight = (1 / math.sqrt(cin * k * k)) * w * s.view(n, 1, cin, 1, 1)
    if demodulate:
        d = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8)
        weight = weight * d.view(n, cout, 1, 1, 1)
    if upsample:
        weight = weight.view(n, cout, cin, k, k).transpose(1, 2).reshape(n * cin, cout, k, k)
        out = F.conv_transpose2d(x.reshape(1, n * cin, *x.shape[2:]), weight, stride=2, groups=n)
        out = out.view(n, cout, *out.shape[2:])
        return _upfirdn(out, _kernel2d() * 4, 1, 1, 1)
    weight = weight.view(n * cout, cin, k, k)
    out = F.conv2d(x.reshape(1, n * cin, *x.shape[2:]), weight, padding=k // 2, groups=n)
    return out.view(n, cout, *out.shape[2:])


def forward(sd: Dict[str, torch.Tensor], latent: torch.Tensor) -> torch.Tensor:
    """latent: W+ [N, n_latent, style_dim] -> image; stored noises used (randomize_noise=False)."""
    n_rgb = sum(1 for k in sd if k.startswith("to_rgbs.") and k.endswith(".conv.weight"))

    def styled(x, prefix, style, noise_key, up=False):
        out = _modconv(x, sd, prefix, style, upsample=up)
        out = out + sd[f"{prefix}.noise.weight"] * sd[noise_key]
        return F.leaky_relu(out + sd[f"{prefix}.activate.bias"].view(1, -1, 1, 1), 0.2) * math.sqrt(2)

    def to_rgb(x, prefix, style, skip):
        out = _modconv(x, sd, prefix, style, demodulate=False) + sd[f"{prefix}.bias"]
        if skip is not None:
            out = out + _upfirdn(skip, _kernel2d() * 4, 2, 2, 1)
        return out

    n = latent.shape[0]
    out = sd["input.input"].repeat(n, 1, 1, 1)
    out = styled(out, "conv1", latent[:, 0], "noises.noise_0")
    skip = to_rgb(out, "to_rgb1", latent[:, 1], None)
    i = 1
    for j in range(n_rgb):
        out = styled(out, f"convs.{2 * j}", latent[:, i], f"noises.noise_{2 * j + 1}", up=True)
        out = styled(out, f"convs.{2 * j + 1}", latent[:, i + 1], f"noises.noise_{2 * j + 2}")
        skip = to_rgb(out, f"to_rgbs.{j}", latent[:, i + 2], skip)
        i += 2
    return skip


def mapping(sd: Dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    x = z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8)
    i = 1
    while f"style.{i}.weight" in sd:
        x = _eq_linear(x, sd[f"style.{i}.weight"], sd[f"style.{i}.bias"], lr=0.01, act=True)
        i += 1
    return x


def num_latents(sd: Dict[str, torch.Tensor]) -> int:
    n_rgb = sum(1 for k in sd if k.startswith("to_rgbs.") and k.endswith(".conv.weight"))
    return 2 * (n_rgb + 2) - 2


def images(sd, z) -> List[torch.Tensor]:
    w = mapping(sd, z)
    return forward(sd, w.unsqueeze(1).repeat(1, num_latents(sd), 1))
