"""Tensor operations of StyleGAN2, written as plain functions over tensors.

Everything here is pure PyTorch: no compiled extensions, no device literals. The numerics follow the
official NVIDIA StyleGAN2 (stylegan2-ada-pytorch / stylegan3 repositories) operation by operation, so
that weights trained there give the same images here to float32 rounding. Where we compute something in
a different but mathematically identical way for speed (separable FIR filters, activation scaling for
batches), the docstring says so.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

SQRT2 = math.sqrt(2.0)


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) along ``dim`` (StyleGAN's pixel norm of z)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


# ------------------------------------------------------------------------------------------------
# FIR filtering (upfirdn2d restricted to what StyleGAN2's generator needs).


def filter_taps(f: Sequence[float] = (1, 3, 3, 1)) -> torch.Tensor:
    """Normalised 1-D taps of a separable low-pass filter; the 2-D filter is their outer product.

    NVIDIA's ``setup_filter`` builds the 2-D filter ``outer(f, f) / sum(outer(f, f))``, which equals
    ``outer(f / sum(f), f / sum(f))`` exactly. Keeping it separable halves the filtering work.
    """
    t = torch.as_tensor(f, dtype=torch.float32)
    if t.ndim != 1 or t.numel() < 1:
        raise ValueError(f"resample filter must be a 1-D list of taps, got shape {tuple(t.shape)}")
    return t / t.sum()


def _depthwise_filter(taps: torch.Tensor, x: torch.Tensor, gain: float) -> torch.Tensor:
    """``gain * outer(taps, taps)`` as a depthwise conv weight [C, 1, k, k] for x's channels, device, dtype."""
    f = torch.outer(taps, taps).to(device=x.device, dtype=x.dtype) * gain
    return f[None, None].expand(x.shape[1], 1, -1, -1)


def fir_filter2d(
    x: torch.Tensor,            # [N, C, H, W]
    taps: torch.Tensor,         # [k] normalised 1-D taps
    padding: Tuple[int, int, int, int],  # (left, right, top, bottom), may be negative (crop)
    gain: float = 1.0,          # overall gain of the 2-D filter
) -> torch.Tensor:
    """Pad (or crop), then filter with ``gain * outer(taps, taps)`` as one depthwise convolution.

    StyleGAN's taps are symmetric, so correlation equals NVIDIA's flipped-filter convolution. The
    depthwise convolution keeps the input's memory format (channels-last runs ~3x faster on CPU).
    """
    px0, px1, py0, py1 = padding
    c = x.shape[1]
    weight = _depthwise_filter(taps, x, gain)
    if px0 == px1 >= 0 and py0 == py1 >= 0:
        return F.conv2d(x, weight, padding=(py0, px0), groups=c)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    return F.conv2d(x, weight, groups=c)


def upsample2d(x: torch.Tensor, taps: torch.Tensor, up: int = 2) -> torch.Tensor:
    """Zero-insertion upsampling by ``up`` followed by the low-pass filter (NVIDIA ``upsample2d``).

    Output is [N, C, H*up, W*up]; the filter gets gain up**2 to preserve the mean. Zero insertion, NVIDIA's
    padding ((k+up-1)//2, (k-up)//2) and filtering together equal one depthwise transposed convolution with
    stride ``up`` and padding k-1-(k+up-1)//2 (exact for symmetric filters), which is what we run.
    """
    c = x.shape[1]
    k = taps.numel()
    p0, p1 = (k + up - 1) // 2, (k - up) // 2
    pad = k - 1 - p0
    if pad < 0 or (x.shape[2] - 1) * up + k - 2 * pad != x.shape[2] * up + p0 + p1 - k + 1:
        raise ValueError(f"upsample2d: unsupported filter length {k} for up={up}")
    return F.conv_transpose2d(x, _depthwise_filter(taps, x, up * up), stride=up, padding=pad, groups=c)


# ------------------------------------------------------------------------------------------------
# Bias + activation.

ACTIVATION_GAINS = {"linear": 1.0, "lrelu": SQRT2, "relu": SQRT2}


def bias_act(
    x: torch.Tensor,                 # [N, C, ...]
    b: Optional[torch.Tensor] = None,  # [C]
    act: str = "linear",
    gain: Optional[float] = None,    # None = the activation's default gain
    clamp: Optional[float] = None,   # clamp the output to +-clamp
    alpha: float = 0.2,
) -> torch.Tensor:
    """Add bias, activate, scale, clamp, in NVIDIA ``bias_act`` order. In place when no grad is needed."""
    if act not in ACTIVATION_GAINS:
        raise ValueError(f"unsupported activation {act!r}; expected one of {sorted(ACTIVATION_GAINS)}")
    gain = ACTIVATION_GAINS[act] if gain is None else float(gain)
    inplace = not torch.is_grad_enabled()
    if b is not None:
        shape = [1, -1] + [1] * (x.ndim - 2)
        b = b.to(x.dtype).reshape(shape)
        x = x.add_(b) if inplace else x + b
    if act == "lrelu":
        x = F.leaky_relu(x, alpha, inplace=inplace)
    elif act == "relu":
        x = F.relu(x, inplace=inplace)
    if gain != 1:
        x = x.mul_(gain) if inplace else x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp_(-clamp, clamp) if inplace else x.clamp(-clamp, clamp)
    return x


# ------------------------------------------------------------------------------------------------
# Modulated convolution.


def modulated_conv2d(
    x: torch.Tensor,                    # [N, I, H, W]
    weight: torch.Tensor,               # [O, I, k, k] raw weight
    styles: torch.Tensor,               # [N, I] modulation coefficients
    noise: Optional[torch.Tensor] = None,  # broadcastable to the output, added after demodulation
    up: int = 1,                        # 1 or 2 (transposed convolution, then the low-pass filter)
    padding: int = 0,                   # padding of a non-upsampling conv (kernel_size // 2)
    taps: Optional[torch.Tensor] = None,  # 1-D filter taps for up=2
    demodulate: bool = True,
    fused: bool = True,                 # True: per-sample weights, grouped conv; False: scale activations
    weight_sq: Optional[torch.Tensor] = None,  # [O, I] float32 sum over k x k of weight^2, if the caller keeps it
) -> torch.Tensor:
    """StyleGAN2's modulated convolution (NVIDIA ``modulated_conv2d``) for up in {1, 2}.

    ``fused=True`` builds per-sample weights and runs one grouped convolution (what NVIDIA does at
    inference); ``fused=False`` scales the activations before and after a shared-weight convolution,
    which is much faster for batches on CPU. The two agree to ~1e-6 relative.
    """
    n = x.shape[0]
    o, i, kh, kw = weight.shape
    if x.ndim != 4 or x.shape[1] != i:
        raise ValueError(f"modulated_conv2d: x must be [N, {i}, H, W], got {tuple(x.shape)}")
    if styles.shape != (n, i):
        raise ValueError(f"modulated_conv2d: styles must be [{n}, {i}], got {tuple(styles.shape)}")

    # Pre-normalise to avoid fp16 overflow; scale-invariant under demodulation (as NVIDIA does).
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / math.sqrt(i * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
        weight_sq = None            # kept for the raw weight, not the rescaled one

    if not fused:
        if demodulate:
            # sum_{i,k} (w[o,i,k] s[n,i])^2 = (s^2 @ sum_k w^2) -- one small matmul instead of building
            # N per-sample weight tensors; equal to NVIDIA's sum up to float rounding order.
            # Computed in float32 whatever the activations' dtype (the bf16 fast path).
            wsq = weight.float().square().sum(dim=[2, 3]) if weight_sq is None else weight_sq
            dcoefs = (styles.float().square() @ wsq.t() + 1e-8).rsqrt()                 # [N, O]
        x = _scale_channels(x, styles.to(x.dtype), inplace=False)
        x = _conv(x, weight.to(x.dtype), up=up, padding=padding, taps=taps, groups=1)
        if demodulate:
            x = _scale_channels(x, dcoefs.to(x.dtype), inplace=True)
    else:
        w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)        # [N, O, I, k, k]
        if demodulate:
            w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(n, -1, 1, 1, 1)
        if n == 1:
            # No reshape: a view of a size-1 batch loses the channels-last stride pattern that oneDNN
            # checks for, which would silently double the convolution time.
            x = _conv(x, w[0].to(x.dtype), up=up, padding=padding, taps=taps, groups=1)
        else:
            x = x.reshape(1, n * i, *x.shape[2:])
            w = w.reshape(n * o, i, kh, kw)
            x = _conv(x, w.to(x.dtype), up=up, padding=padding, taps=taps, groups=n)
            x = x.reshape(n, o, *x.shape[2:])
    # Both forms add the noise after demodulation (NVIDIA: fma(x, dcoefs, noise) / x.add_(noise)).
    if noise is not None:
        x = x.add_(noise.to(x.dtype)) if not torch.is_grad_enabled() else x + noise.to(x.dtype)
    return x


def _scale_channels(x: torch.Tensor, s: torch.Tensor, *, inplace: bool) -> torch.Tensor:
    """x [N, C, H, W] * s [N, C] per channel, through an NHWC view for channels-last tensors.

    ``inplace`` is honoured only when no grad is needed; callers pass it only for tensors they own.
    """
    n, c = s.shape
    if x.is_contiguous(memory_format=torch.channels_last):
        v, s4 = x.permute(0, 2, 3, 1), s.reshape(n, 1, 1, c)
        if inplace and not torch.is_grad_enabled():
            v.mul_(s4)
            return x
        return (v * s4).permute(0, 3, 1, 2)
    if inplace and not torch.is_grad_enabled():
        return x.mul_(s.reshape(n, c, 1, 1))
    return x * s.reshape(n, c, 1, 1)


def _conv(x: torch.Tensor, w: torch.Tensor, *, up: int, padding: int, taps: Optional[torch.Tensor],
          groups: int) -> torch.Tensor:
    """Correlation (up=1) or stride-2 transposed convolution followed by the low-pass filter (up=2).

    For up=2 this reproduces NVIDIA ``conv2d_resample`` with padding k // 2: transposed convolution
    with stride 2 and the kernel not flipped, then the filter with gain 4 (padding (1, 1) for k=3).
    """
    if up == 1:
        return F.conv2d(x, w, padding=padding, groups=groups)
    if up != 2:
        raise ValueError(f"only up=1 or up=2 is supported, got up={up}")
    if taps is None:
        raise ValueError("up=2 needs the resample filter taps")
    o_total, i_per_group, kh, kw = w.shape
    # [G*O/G, I/G, k, k] -> [G*I/G, O/G, k, k] for conv_transpose2d.
    w = w.reshape(groups, o_total // groups, i_per_group, kh, kw).transpose(1, 2)
    w = w.reshape(groups * i_per_group, o_total // groups, kh, kw)
    x = F.conv_transpose2d(x, w, stride=2, groups=groups)
    fw = taps.numel()
    # conv2d_resample's padding arithmetic with padding = k // 2, up = 2.
    p = kw // 2
    p0 = p + (fw + 1) // 2 - (kw - 1)
    p1 = p + (fw - 2) // 2 - (kw - 2)
    return fir_filter2d(x, taps, (p0, p1, p0, p1), gain=4)
