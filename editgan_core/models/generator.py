"""StyleGAN2 generator (NVIDIA architecture, skip/orig/resnet synthesis) in plain PyTorch.

Parameter names equal the official NVIDIA ones (``mapping.fc0.weight``, ``synthesis.b64.conv0.affine.bias``,
...), so a state dict from an NVIDIA pickle loads as is and the native ``model.safetensors`` uses the same
keys. Weights are stored raw and scaled at run time (equalised learning rate), exactly as NVIDIA does, so the
same module can be trained.

The architecture is fully described by :class:`GeneratorConfig`, which is saved as ``config.json`` next to
the weights; nothing is guessed from file names.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..runtime import adapt_threads
from . import ops

NOISE_MODES = ("const", "random", "none")
ARCHITECTURES = ("skip", "orig", "resnet")


@dataclass
class GeneratorConfig:
    """Everything needed to rebuild a StyleGAN2 generator. Saved inside every native checkpoint."""

    z_dim: int = 512                    # input latent size (0 = none)
    c_dim: int = 0                      # conditioning label size (0 = unconditional)
    w_dim: int = 512                    # intermediate latent size
    img_resolution: int = 256           # output resolution, a power of two >= 4
    img_channels: int = 3               # output colour channels
    channel_base: int = 32768           # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int = 512
    channels: Optional[Dict[int, int]] = None  # explicit {resolution: channels}; overrides base/max
    mapping_layers: int = 8             # number of fully-connected mapping layers
    mapping_layer_features: Optional[int] = None  # hidden width of the mapping (None = w_dim)
    mapping_lr_multiplier: float = 0.01  # equalised-lr multiplier of the mapping layers
    mapping_activation: str = "lrelu"
    embed_features: Optional[int] = None  # label embedding width (None = w_dim; 0 when c_dim == 0)
    w_avg_beta: Optional[float] = 0.998  # decay of the tracked average w during training
    architecture: str = "skip"          # synthesis architecture: 'skip', 'orig' or 'resnet'
    conv_clamp: Optional[float] = None  # clamp conv outputs to +-conv_clamp (NVIDIA default 256)
    num_fp16_res: int = 0               # highest resolutions that may run in fp16 (CUDA only)
    use_noise: bool = True              # per-layer noise inputs
    resample_filter: Tuple[float, ...] = (1.0, 3.0, 3.0, 1.0)

    def __post_init__(self) -> None:
        r = int(self.img_resolution)
        if r < 4 or r & (r - 1):
            raise InputError(f"img_resolution must be a power of two >= 4, got {self.img_resolution}")
        if self.architecture not in ARCHITECTURES:
            raise InputError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if self.z_dim <= 0 and self.c_dim <= 0:
            raise InputError("a generator needs z_dim > 0 or c_dim > 0")
        if self.channels is not None:
            self.channels = {int(k): int(v) for k, v in self.channels.items()}
            missing = [res for res in self.block_resolutions if res not in self.channels]
            if missing:
                raise InputError(f"config.channels lacks resolutions {missing}")
        self.resample_filter = tuple(float(v) for v in self.resample_filter)

    # Derived quantities -------------------------------------------------------------------------
    @property
    def resolution_log2(self) -> int:
        return int(round(math.log2(self.img_resolution)))

    @property
    def block_resolutions(self) -> List[int]:
        return [2 ** i for i in range(2, self.resolution_log2 + 1)]

    @property
    def num_ws(self) -> int:
        return 2 * self.resolution_log2 - 2

    def channels_at(self, res: int) -> int:
        if self.channels is not None:
            return self.channels[res]
        return min(self.channel_base // res, self.channel_max)

    @property
    def fp16_resolution(self) -> int:
        return max(2 ** (self.resolution_log2 + 1 - self.num_fp16_res), 8)

    # (De)serialisation ----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if d["channels"] is not None:
            d["channels"] = {str(k): v for k, v in d["channels"].items()}
        d["resample_filter"] = list(d["resample_filter"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "GeneratorConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"unknown generator config keys {unknown}")
        return cls(**d)


# ------------------------------------------------------------------------------------------------
# Layers. Each holds parameters and calls the functions in ops.py.


class FullyConnectedLayer(nn.Module):
    def __init__(self, in_features: int, out_features: int, *, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # [N, in] -> [N, out]
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return ops.bias_act(x.matmul(w.t()), b, act=self.activation)


class MappingNetwork(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = cfg.z_dim, cfg.c_dim, cfg.w_dim
        self.num_ws = cfg.num_ws
        self.num_layers = cfg.mapping_layers
        embed = cfg.w_dim if cfg.embed_features is None else cfg.embed_features
        if cfg.c_dim == 0:
            embed = 0
        hidden = cfg.w_dim if cfg.mapping_layer_features is None else cfg.mapping_layer_features
        features = [cfg.z_dim + embed] + [hidden] * (cfg.mapping_layers - 1) + [cfg.w_dim]
        if cfg.c_dim > 0:
            self.embed = FullyConnectedLayer(cfg.c_dim, embed)
        for idx in range(cfg.mapping_layers):
            setattr(self, f"fc{idx}", FullyConnectedLayer(
                features[idx], features[idx + 1], activation=cfg.mapping_activation,
                lr_multiplier=cfg.mapping_lr_multiplier))
        self.register_buffer("w_avg", torch.zeros([cfg.w_dim]))

    def forward(self, z: Optional[torch.Tensor], c: Optional[torch.Tensor]) -> torch.Tensor:
        """z [N, z_dim], c [N, c_dim] -> w [N, w_dim] (not broadcast, not truncated)."""
        x = None
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise InputError(f"z must be [N, {self.z_dim}], got {None if z is None else tuple(z.shape)}")
            x = ops.normalize_2nd_moment(z.to(self.w_avg.dtype))
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise InputError(f"this generator is conditional: c must be [N, {self.c_dim}], "
                                 f"got {None if c is None else tuple(c.shape)}")
            y = ops.normalize_2nd_moment(self.embed(c.to(self.w_avg.dtype)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        return x


class SynthesisLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, *, w_dim: int, resolution: int, up: int = 1,
                 kernel_size: int = 3, use_noise: bool = True, conv_clamp: Optional[float] = None,
                 taps: torch.Tensor):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.resolution, self.up = resolution, up
        self.use_noise = use_noise
        self.conv_clamp = conv_clamp
        self.padding = kernel_size // 2
        self.register_buffer("taps", taps.clone(), persistent=False)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def _weight_sq(self) -> Optional[torch.Tensor]:
        """sum over k x k of weight^2 [O, I] in float32 for demodulation, kept while the weight is unchanged
        (None while the weight itself is being trained: then it is computed with its gradient)."""
        w = self.weight
        if w.requires_grad and torch.is_grad_enabled():
            return None
        key = (w.data_ptr(), w._version, w.dtype, w.device)
        if getattr(self, "_wsq_key", None) != key:
            with torch.no_grad():
                self._wsq = w.float().square().sum(dim=[2, 3])
            self._wsq_key = key
        return self._wsq

    def forward(self, x: torch.Tensor, w: torch.Tensor, *, noise_mode: str = "const", fused: bool = True,
                gain: float = 1.0, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        styles = self.affine(w)                                         # [N, I]
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device,
                                generator=generator) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = ops.modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                                 taps=self.taps, fused=fused, weight_sq=None if fused else self._weight_sq())
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return ops.bias_act(x, self.bias, act="lrelu", gain=ops.SQRT2 * gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, *, w_dim: int, conv_clamp: Optional[float] = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor, *, fused: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = ops.modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused)
        return ops.bias_act(x, self.bias, act="linear", clamp=self.conv_clamp)


class SkipConv(nn.Module):
    """1x1 bias-free upsampling conv of the 'resnet' architecture (NVIDIA Conv2dLayer with up=2)."""

    def __init__(self, in_channels: int, out_channels: int, *, taps: torch.Tensor):
        super().__init__()
        self.register_buffer("taps", taps.clone(), persistent=False)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, gain: float) -> torch.Tensor:
        x = torch.nn.functional.conv2d(x, (self.weight * self.weight_gain).to(x.dtype))
        x = ops.upsample2d(x, self.taps)
        return ops.bias_act(x, None, act="linear", gain=gain)


class SynthesisBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, *, cfg: GeneratorConfig, resolution: int,
                 is_last: bool, use_fp16: bool):
        super().__init__()
        taps = ops.filter_taps(cfg.resample_filter)
        self.in_channels = in_channels
        self.resolution = resolution
        self.is_last = is_last
        self.architecture = cfg.architecture
        self.use_fp16 = use_fp16
        self.register_buffer("taps", taps.clone(), persistent=False)
        self.num_conv = 0
        self.num_torgb = 0
        layer_kw = dict(w_dim=cfg.w_dim, resolution=resolution, use_noise=cfg.use_noise,
                        conv_clamp=cfg.conv_clamp, taps=taps)
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, **layer_kw)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, **layer_kw)
        self.num_conv += 1
        if is_last or cfg.architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, cfg.img_channels, w_dim=cfg.w_dim, conv_clamp=cfg.conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and cfg.architecture == "resnet":
            self.skip = SkipConv(in_channels, out_channels, taps=taps)

    def forward(self, x: Optional[torch.Tensor], img: Optional[torch.Tensor], ws: torch.Tensor, *,
                noise_mode: str, fused: bool, fp16: bool, features: Optional[list],
                generator: Optional[torch.Generator], memory_format: torch.memory_format = torch.contiguous_format,
                ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        w_iter = iter(ws.unbind(dim=1))
        dtype = torch.float16 if (fp16 and self.use_fp16) else ws.dtype
        kw = dict(noise_mode=noise_mode, fused=fused, generator=generator)
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
            x = x.contiguous(memory_format=memory_format)
            if features is not None:
                features.append(x)
            x = self.conv1(x, next(w_iter), **kw)
            if features is not None:
                features.append(x)
        else:
            x = x.to(dtype)
            if self.architecture == "resnet":
                y = self.skip(x, gain=math.sqrt(0.5))
                x = self.conv0(x, next(w_iter), **kw)
                if features is not None:
                    features.append(x)
                x = self.conv1(x, next(w_iter), gain=math.sqrt(0.5), **kw)
                x = y + x
            else:
                x = self.conv0(x, next(w_iter), **kw)
                if features is not None:
                    features.append(x)
                x = self.conv1(x, next(w_iter), **kw)
            if features is not None:
                features.append(x)
        if img is not None:
            img = ops.upsample2d(img, self.taps)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused=fused).to(ws.dtype)
            img = y if img is None else (img.add_(y) if not torch.is_grad_enabled() else img + y)
        return x, img


class SynthesisNetwork(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        self.w_dim = cfg.w_dim
        self.img_resolution = cfg.img_resolution
        self.block_resolutions = cfg.block_resolutions
        self.num_ws = 0
        for res in self.block_resolutions:
            in_ch = cfg.channels_at(res // 2) if res > 4 else 0
            block = SynthesisBlock(in_ch, cfg.channels_at(res), cfg=cfg, resolution=res,
                                   is_last=(res == cfg.img_resolution), use_fp16=(res >= cfg.fp16_resolution))
            self.num_ws += block.num_conv + (block.num_torgb if res == cfg.img_resolution else 0)
            setattr(self, f"b{res}", block)
        assert self.num_ws == cfg.num_ws

    def _cpu_micro_batch(self) -> int:
        largest = max(self.cfg.channels_at(r) * r * r for r in self.block_resolutions)
        return max(1, (1 << 24) // largest)

    def forward(
        self,
        ws: torch.Tensor,                   # [N, num_ws, w_dim]
        *,
        noise_mode: str = "const",          # 'const' (stored noise), 'random' or 'none'
        fused: Optional[bool] = None,       # None: fused at batch 1 or with grad, activation scaling otherwise
        fp16: bool = False,                 # top num_fp16_res resolutions in fp16 (for CUDA; slow on CPU)
        return_features: bool = False,      # also return every synthesis-layer output
        generator: Optional[torch.Generator] = None,  # for noise_mode='random'
        stop_at: Optional[int] = None,      # run the blocks up to this resolution only (skip architecture)
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, List[torch.Tensor]]]:
        """W+ -> image [N, C, H, W] (float, roughly [-1, 1]); optionally also the feature list.

        Features, in order: the 4x4 const (broadcast to the batch), then the output of every synthesis
        conv after noise and activation (b4.conv1, b8.conv0, b8.conv1, ...): num_ws tensors in all.

        ``stop_at`` (a block resolution, skip architecture): only the blocks up to that resolution run; the image
        is the skip generator's running image there (what later blocks upsample and add their detail to) and the
        features are those of the blocks that ran. The W+ entries of later layers are not read.
        """
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise InputError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        if noise_mode not in NOISE_MODES:
            raise InputError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if stop_at is not None and stop_at != self.img_resolution:
            if stop_at not in self.block_resolutions or self.cfg.architecture != "skip":
                raise InputError(f"stop_at must be one of {self.block_resolutions} on a skip generator "
                                 f"(this one: {self.cfg.architecture}), got {stop_at}")
        param = self.b4.const
        ws = ws.to(device=param.device, dtype=param.dtype)
        chunk = self._cpu_micro_batch()
        if param.device.type == "cpu" and not torch.is_grad_enabled() and fused is None and ws.shape[0] > chunk:
            # Large CPU batches run in micro-batches: beyond ~64 MB per activation the extra passes of the
            # batched (activation-scaling) form cost more than batching saves. Measured in bench/generator.py.
            outs = [self.forward(part, noise_mode=noise_mode, fp16=fp16, return_features=return_features,
                                 generator=generator, stop_at=stop_at) for part in ws.split(chunk)]
            if not return_features:
                return torch.cat(outs)
            return torch.cat([o[0] for o in outs]), [torch.cat(f) for f in zip(*[o[1] for o in outs])]
        if fused is None:
            # The grouped (fused) conv is fastest at batch 1; for batches on CPU the activation-scaling
            # form shares one weight tensor across the batch and is several times faster.
            fused = ws.shape[0] == 1 or (param.device.type == "cuda" and not fp16)
        # Channels-last activations make oneDNN's CPU convolutions 1.2-2x faster; same values.
        memory_format = torch.channels_last if param.device.type == "cpu" else torch.contiguous_format
        features: Optional[list] = [] if return_features else None
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            cur = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, cur, noise_mode=noise_mode, fused=fused, fp16=fp16, features=features,
                           generator=generator, memory_format=memory_format)
            if res == stop_at:
                break
        if return_features:
            return img, features
        return img


class Generator(nn.Module):
    """Mapping + synthesis. ``G(z, c)`` gives images; ``G.mapping_ws`` and ``G.synthesis`` give control."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        self.z_dim, self.c_dim, self.w_dim = cfg.z_dim, cfg.c_dim, cfg.w_dim
        self.img_resolution, self.img_channels = cfg.img_resolution, cfg.img_channels
        self.synthesis = SynthesisNetwork(cfg)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(cfg)

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def truncate(self, ws: torch.Tensor, psi: float = 1.0, cutoff: Optional[int] = None) -> torch.Tensor:
        """Pull W+ codes towards w_avg: ws [N, num_ws, w_dim]; only the first ``cutoff`` layers if given."""
        if psi == 1:
            return ws
        avg = self.mapping.w_avg.to(ws.dtype)
        if cutoff is None:
            return avg.lerp(ws, psi)
        ws = ws.clone()
        ws[:, :cutoff] = avg.lerp(ws[:, :cutoff], psi)
        return ws

    def mapping_ws(self, z: Optional[torch.Tensor], c: Optional[torch.Tensor] = None, *,
                   truncation_psi: float = 1.0, truncation_cutoff: Optional[int] = None) -> torch.Tensor:
        """z [N, z_dim] (and c [N, c_dim]) -> W+ [N, num_ws, w_dim], truncated around w_avg."""
        w = self.mapping(z, c)
        ws = w.unsqueeze(1).repeat([1, self.num_ws, 1])
        return self.truncate(ws, truncation_psi, truncation_cutoff)

    def forward(self, z: Optional[torch.Tensor], c: Optional[torch.Tensor] = None, *,
                truncation_psi: float = 1.0, truncation_cutoff: Optional[int] = None,
                noise_mode: str = "const", **synthesis_kwargs):
        ws = self.mapping_ws(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, **synthesis_kwargs)

    # Convenience -------------------------------------------------------------------------------------
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def feature_channels(self) -> List[int]:
        """Channels of each tensor that ``synthesis(..., return_features=True)`` returns."""
        chans = [self.cfg.channels_at(4), self.cfg.channels_at(4)]
        for res in self.cfg.block_resolutions[1:]:
            chans += [self.cfg.channels_at(res)] * 2
        return chans

    def ws_read_up_to(self, res: int) -> int:
        """How many W+ entries, from the first, the blocks up to resolution ``res`` read (its toRGB included):
        what ``synthesis(..., stop_at=res)`` depends on."""
        n = 0
        for r in self.cfg.block_resolutions:
            block = getattr(self.synthesis, f"b{r}")
            if r == res:
                return n + block.num_conv + block.num_torgb
            n += block.num_conv
        raise InputError(f"{res} is not a block resolution of this generator ({self.cfg.block_resolutions})")

    def feature_resolutions(self) -> List[int]:
        res = [4, 4]
        for r in self.cfg.block_resolutions[1:]:
            res += [r, r]
        return res


def images_to_uint8(img: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] float -> [N, H, W, C] uint8, exactly as NVIDIA's generate.py: (x * 127.5 + 128).clamp."""
    return (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)


# ------------------------------------------------------------------------------------------------
# Sampling: the first step of the pipeline.


@dataclass
class Generated:
    ws: torch.Tensor            # [N, num_ws, w_dim], truncated
    images: torch.Tensor        # [N, C, R, R] float in about [-1, 1]
    seeds: Optional[List[int]] = None

    def uint8(self) -> torch.Tensor:
        """[N, R, R, C] uint8, as NVIDIA's generate.py writes PNGs."""
        return images_to_uint8(self.images)


def seeds_to_z(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    """NVIDIA's convention: z = np.random.RandomState(seed).randn(1, z_dim) per seed (float64, cast to float32),
    so seed N of a published model gives the same picture here as with the official tools."""
    for s in seeds:
        if not 0 <= int(s) < 2 ** 32:
            raise InputError(f"seed {s} is out of range: seeds are 0 to 4294967295 (numpy RandomState)")
    return torch.from_numpy(np.concatenate([np.random.RandomState(int(s)).randn(1, z_dim) for s in seeds])).float()


def class_labels(G: "Generator", class_idx: Optional[int], n: int) -> Optional[torch.Tensor]:
    """One-hot labels [n, c_dim] for a conditional generator (None for an unconditional one)."""
    if not G.c_dim:
        return None
    if class_idx is None:
        raise InputError(f"this generator is conditional ({G.c_dim} classes): give a class index")
    if not 0 <= int(class_idx) < G.c_dim:
        raise InputError(f"class index must be between 0 and {G.c_dim - 1}, got {class_idx}")
    c = torch.zeros([n, G.c_dim])
    c[:, int(class_idx)] = 1
    return c


def generate(G: "Generator", seeds: Optional[Sequence[int]] = None, *,
             z: Optional[torch.Tensor] = None,          # [N, z_dim] instead of seeds
             class_idx: Optional[int] = None,           # required for conditional generators
             truncation_psi: float = 1.0,
             truncation_cutoff: Optional[int] = None,
             noise_mode: str = "const",
             batch: int = 1) -> Generated:   # images per synthesis pass; 1 = bit-identical to generate.py
    """Seeds (or z) -> W+ and images, exactly as NVIDIA's generate.py renders them."""
    if (seeds is None) == (z is None):
        raise InputError("give either seeds or z")
    seeds = None if seeds is None else [int(s) for s in seeds]
    dev = G.w_avg.device
    z = (seeds_to_z(seeds, G.z_dim) if seeds is not None else z.float()).to(dev)
    c = class_labels(G, class_idx, len(z))
    ws, images = [], []
    with torch.no_grad():
        for i in range(0, len(z), batch):
            adapt_threads()
            part = G.mapping_ws(z[i:i + batch], None if c is None else c[i:i + batch].to(dev),
                                truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
            ws.append(part)
            images.append(G.synthesis(part, noise_mode=noise_mode))
    return Generated(torch.cat(ws), torch.cat(images), seeds)
