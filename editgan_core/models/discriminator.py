"""StyleGAN2 residual discriminator (NVIDIA architecture), used for training and for perceptual features.

Parameter names follow NVIDIA's (``b64.fromrgb.weight``, ``b64.conv0.weight``, ``b4.fc.weight``, ...);
weights are raw with run-time equalised-learning-rate gains, like the generator.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from . import ops


@dataclass
class DiscriminatorConfig:
    img_resolution: int = 64
    img_channels: int = 3
    c_dim: int = 0
    channel_base: int = 32768
    channel_max: int = 512
    mbstd_group_size: int = 4
    mbstd_num_channels: int = 1
    conv_clamp: Optional[float] = None

    def channels_at(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)

    def to_dict(self) -> dict:
        return asdict(self)


class Conv2dLayer(nn.Module):
    """Equalised-lr conv with optional 2x downsampling (blur, then stride-2 conv) and bias + activation."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, *, bias: bool = True, act: str = "lrelu",
                 down: int = 1, conv_clamp: Optional[float] = None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn([out_ch, in_ch, kernel, kernel]))
        self.bias = nn.Parameter(torch.zeros([out_ch])) if bias else None
        self.weight_gain = 1 / math.sqrt(in_ch * kernel * kernel)
        self.act, self.down, self.kernel = act, down, kernel
        self.conv_clamp = conv_clamp
        self.register_buffer("taps", ops.filter_taps(), persistent=False)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        if self.down == 2:
            # NVIDIA conv2d_resample with down=2: low-pass filter (padding k//2 + 1 each side), then a
            # stride-2 convolution (k=3) or plain subsampling followed by the 1x1 convolution (k=1).
            fw = self.taps.numel()
            p = self.kernel // 2
            p0, p1 = p + (fw - 1) // 2, p + (fw - 2) // 2
            x = ops.fir_filter2d(x, self.taps, (p0, p1, p0, p1))
            if self.kernel == 1:
                x = F.conv2d(x[:, :, ::2, ::2], w)
            else:
                x = F.conv2d(x, w, stride=2)
        else:
            x = F.conv2d(x, w, padding=self.kernel // 2)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return ops.bias_act(x, self.bias, act=self.act, gain=ops.ACTIVATION_GAINS[self.act] * gain, clamp=clamp)


class DiscriminatorBlock(nn.Module):
    def __init__(self, in_ch: int, tmp_ch: int, out_ch: int, *, img_channels: int, conv_clamp: Optional[float]):
        super().__init__()
        self.in_ch = in_ch
        if in_ch == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_ch, 1, conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_ch, tmp_ch, 3, conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_ch, out_ch, 3, down=2, conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(tmp_ch, out_ch, 1, bias=False, act="linear", down=2)

    def forward(self, x: Optional[torch.Tensor], img: torch.Tensor) -> torch.Tensor:
        if self.in_ch == 0:
            x = self.fromrgb(img)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv0(x)
        x = self.conv1(x, gain=math.sqrt(0.5))
        return y.add_(x) if not torch.is_grad_enabled() else y + x


class FullyConnected(nn.Module):
    def __init__(self, in_f: int, out_f: int, act: str = "linear"):
        super().__init__()
        self.weight = nn.Parameter(torch.randn([out_f, in_f]))
        self.bias = nn.Parameter(torch.zeros([out_f]))
        self.weight_gain = 1 / math.sqrt(in_f)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.bias_act(x.matmul((self.weight * self.weight_gain).t()), self.bias, act=self.act)


class DiscriminatorEpilogue(nn.Module):
    def __init__(self, ch: int, res: int, *, mbstd_group: int, mbstd_ch: int, conv_clamp: Optional[float],
                 cmap_dim: int):
        super().__init__()
        self.mbstd_group, self.mbstd_ch = mbstd_group, mbstd_ch
        self.conv = Conv2dLayer(ch + mbstd_ch, ch, 3, conv_clamp=conv_clamp)
        self.fc = FullyConnected(ch * res * res, ch, act="lrelu")
        self.out = FullyConnected(ch, max(cmap_dim, 1))

    def minibatch_std(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.mbstd_group, n) if self.mbstd_group else n
        while n % g:
            g -= 1
        f = self.mbstd_ch
        y = x.reshape(g, -1, f, c // f, h, w)
        y = y - y.mean(dim=0)
        y = y.square().mean(dim=0)
        y = (y + 1e-8).sqrt()
        y = y.mean(dim=[2, 3, 4])
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mbstd_ch:
            x = self.minibatch_std(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        return self.out(x)


class Discriminator(nn.Module):
    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.cfg = cfg
        log2 = int(math.log2(cfg.img_resolution))
        self.block_resolutions = [2 ** i for i in range(log2, 2, -1)]
        for res in self.block_resolutions:
            in_ch = cfg.channels_at(res) if res < cfg.img_resolution else 0
            setattr(self, f"b{res}", DiscriminatorBlock(in_ch, cfg.channels_at(res), cfg.channels_at(res // 2),
                                                        img_channels=cfg.img_channels, conv_clamp=cfg.conv_clamp))
        self.b4 = DiscriminatorEpilogue(cfg.channels_at(4), 4, mbstd_group=cfg.mbstd_group_size,
                                        mbstd_ch=cfg.mbstd_num_channels, conv_clamp=cfg.conv_clamp, cmap_dim=0)

    def forward(self, img: torch.Tensor, *, return_features: bool = False):
        """img [N, C, H, W] in [-1, 1] -> logits [N, 1] (and the block outputs, fine to coarse)."""
        x = None
        feats: List[torch.Tensor] = []
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, img)
            feats.append(x)
        out = self.b4(x)
        return (out, feats) if return_features else out
