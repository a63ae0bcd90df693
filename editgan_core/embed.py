"""Embedding images into W+: an encoder's first guess, then optimisation of the latent.

``embed(G, images, encoder=..., steps=100)`` returns the best W+ per image (lowest loss over the iterations,
not the last), its reconstruction and the losses. The loss is L2 + ``perceptual_weight`` x a perceptual
distance (:mod:`editgan_core.perceptual`); noise inputs are fixed ('const'). The learning rate ramps up over
the first 5% of steps and follows a cosine down to zero, as the EditGAN release does. Several images embed
together as one batch with independent latents (and independent best iterates).

``progress(step, steps, loss)`` is called every step; ``should_stop()`` returning True ends the run early and
the best latents found so far are returned (``result.stopped`` says so).

The encoder (``Encoder``) is a small convolutional network with one linear head for all W+ layers, trained by
``train_encoder`` on generator samples (latent L2 against truncated W, psi in [0.5, 1], plus image
reconstruction) and on renders or real images (image reconstruction only), as the paper trains its encoder.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np
import torch
import torch.nn as nn

from . import files
from .errors import EditGANError
from .identity import check_identity
from .perceptual import Distance, FallbackDistance
from .runtime import adapt_threads
from .settings import EMBED



# ----------------------------------------------------------------------------------------------------------
# Encoder.


@dataclass
class EncoderConfig:
    resolution: int
    num_ws: int
    w_dim: int
    width: int = 32
    max_width: int = 256


class Encoder(nn.Module):
    """Image [N, 3, R, R] in [-1, 1] -> W+ [N, num_ws, w_dim] = w_avg + predicted offset."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.width
        layers = [nn.Conv2d(3, ch, 3, padding=1), nn.LeakyReLU(0.2)]
        res = cfg.resolution
        while res > 4:
            nxt = min(ch * 2, cfg.max_width)
            layers += [nn.Conv2d(ch, nxt, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                       nn.Conv2d(nxt, nxt, 3, padding=1), nn.LeakyReLU(0.2)]
            ch, res = nxt, res // 2
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(ch * 16, cfg.num_ws * cfg.w_dim)
        nn.init.zeros_(self.head.bias)
        with torch.no_grad():
            self.head.weight.mul_(0.1)
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.body(img)
        delta = self.head(x.flatten(1)).view(-1, self.cfg.num_ws, self.cfg.w_dim)
        return self.w_avg + delta


def save_encoder(enc: Encoder, path: os.PathLike, generator: Dict[str, object], extra: Optional[dict] = None) -> Path:
    meta = {"config": asdict(enc.cfg), "generator": generator, **(extra or {})}
    return files.save(path, files.ENCODER, dict(enc.state_dict()), meta, half=True)   # fp16 on disk: half the size


def load_encoder(path: os.PathLike, *, expect_generator: Optional[Dict[str, object]] = None) -> Encoder:
    path = Path(path)
    state, meta = files.load(path, files.ENCODER)
    check_identity(meta.get("generator", {}), expect_generator, f"encoder {path.name}")
    enc = Encoder(EncoderConfig(**meta["config"]))
    enc.load_state_dict(state)
    return enc.eval()


def train_encoder(G, *, steps: int, batch: int = 16, lr: float = 1e-3, real_images: Optional[np.ndarray] = None,
                  real_fraction: float = 0.25, distance: Optional[Distance] = None, latent_weight: float = 5.0,
                  encoder: Optional[Encoder] = None, seed: int = 0, log: Optional[Callable[[dict], None]] = None,
                  minutes: Optional[float] = None) -> Encoder:
    """Train (or continue training) an encoder for G. ``real_images`` uint8 [M, R, R, 3] add image-only loss."""
    dev = G.w_avg.device
    enc = encoder or Encoder(EncoderConfig(G.img_resolution, G.num_ws, G.w_dim)).to(dev)
    enc.w_avg.copy_(G.w_avg)
    enc.train()
    G.requires_grad_(False)
    distance = distance or FallbackDistance()
    opt = torch.optim.Adam(enc.parameters(), lr=lr, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_real = int(round(batch * real_fraction)) if real_images is not None and len(real_images) else 0
    t0 = time.time()
    for step in range(steps):
        # Cosine decay over the steps, or over the time budget when that ends first.
        frac = step / steps if minutes is None else max(step / steps, (time.time() - t0) / (minutes * 60))
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        n_fake = batch - n_real
        z = torch.randn([n_fake, G.z_dim], generator=gen).to(dev)
        psi = torch.empty(n_fake, 1, 1).uniform_(0.5, 1.0, generator=gen).to(dev)
        with torch.no_grad():
            w = G.mapping_ws(z)
            w = G.w_avg.lerp(w, psi)
            x_fake = G.synthesis(w)
        x = x_fake
        if n_real:
            idx = rng.choice(len(real_images), n_real, replace=False)
            x_real = torch.from_numpy(real_images[idx]).permute(0, 3, 1, 2).float().to(dev) / 127.5 - 1
            x = torch.cat([x_fake, x_real])
        w_hat = enc(x)
        rec = G.synthesis(w_hat, fused=False)
        loss_img = (rec - x).square().mean((1, 2, 3)) + distance(rec, x)
        loss_lat = (w_hat[:n_fake] - w).square().mean((1, 2))
        loss = loss_img.mean() + latent_weight * loss_lat.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if log and (step % 50 == 0 or step == steps - 1):
            log({"step": step, "loss": round(loss.item(), 5), "img": round(loss_img.mean().item(), 5),
                 "latent": round(loss_lat.mean().item(), 5), "sec": round(time.time() - t0, 1)})
        if minutes is not None and time.time() - t0 > minutes * 60:
            break
    return enc.eval()


# ----------------------------------------------------------------------------------------------------------
# Optimisation.


@dataclass
class EmbedResult:
    ws: torch.Tensor            # [N, num_ws, w_dim], best iterate per image
    image: torch.Tensor         # [N, 3, R, R] reconstruction from ws
    loss: torch.Tensor          # [N] best loss
    psnr: torch.Tensor          # [N] dB, reconstruction vs target
    steps: int                  # optimisation steps run
    stopped: bool               # ended by should_stop()
    history: list               # mean loss per step
    seconds: float


def keep_best(loss: torch.Tensor, best_loss: torch.Tensor, best: torch.Tensor, current: torch.Tensor
              ) -> torch.Tensor:
    """Per-image best iterate: where ``loss`` [N] beats ``best_loss``, copy ``current`` into ``best`` (in place).
    -> the new best losses (detached). Shared by embedding, mask edits and refinement."""
    with torch.no_grad():
        better = loss < best_loss
        best[better] = current[better]
        return torch.where(better, loss, best_loss)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2), per image."""
    mse = (a.clamp(-1, 1) - b.clamp(-1, 1)).square().mean((1, 2, 3))
    return 10 * torch.log10(4.0 / mse.clamp_min(1e-10))


def embed(G, target: torch.Tensor, *, steps: int = EMBED.steps, lr: float = EMBED.lr,
          encoder: Optional[Encoder] = None, w_init: Optional[torch.Tensor] = None, distance: Optional[Distance] = None,
          perceptual_weight: float = EMBED.perceptual_weight, progress: Optional[Callable[[int, int, float], None]] = None,
          should_stop: Optional[Callable[[], bool]] = None) -> EmbedResult:
    """Embed images ``target`` [N, 3, R, R] in [-1, 1] into W+; see the module docstring."""
    t0 = time.time()
    R = G.img_resolution
    if target.ndim != 4 or target.shape[1] != 3 or target.shape[-1] != R or target.shape[-2] != R:
        raise EditGANError(f"images to embed must be [N, 3, {R}, {R}] (use prepare_image); got {tuple(target.shape)}")
    dev = G.w_avg.device
    target = target.to(dev, torch.float32)
    distance = (distance or FallbackDistance()).to(dev)
    G.requires_grad_(False)
    with torch.no_grad():
        if w_init is not None:
            ws0 = w_init.to(dev).float().clone()
        elif encoder is not None:
            ws0 = encoder.to(dev)(target)
        else:
            ws0 = G.w_avg.view(1, 1, -1).repeat(target.shape[0], G.num_ws, 1)
    ws = ws0.clone().requires_grad_(True)
    opt = torch.optim.Adam([ws], lr=lr, betas=(0.9, 0.999))

    def losses(img):
        return (img - target).square().mean((1, 2, 3)) + perceptual_weight * distance(img, target)

    with torch.no_grad():
        best_loss = losses(G.synthesis(ws0))
    best = ws0.clone()
    history, stopped, done = [], False, 0
    for step in range(steps):
        if should_stop is not None and should_stop():
            stopped = True
            break
        adapt_threads()
        t = step / max(steps, 1)
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, t / 0.05) * 0.5 * (1 + math.cos(math.pi * t))
        img = G.synthesis(ws, fused=False)
        loss = losses(img)
        best_loss = keep_best(loss, best_loss, best, ws)   # the current iterate's loss, before the step
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        done = step + 1
        history.append(loss.mean().item())
        if progress is not None:
            progress(done, steps, history[-1])
    with torch.no_grad():
        final = losses(G.synthesis(ws))
        better = final < best_loss
        best_loss = torch.where(better, final, best_loss)
        best[better] = ws[better]
        image = G.synthesis(best)
    return EmbedResult(best.detach(), image, best_loss, psnr(image, target), done, stopped, history, time.time() - t0)


def encoder_only(G, encoder: Encoder, target: torch.Tensor) -> EmbedResult:
    """The encoder's guess alone (no optimisation)."""
    t0 = time.time()
    with torch.no_grad():
        ws = encoder(target)
        img = G.synthesis(ws)
        loss = (img - target).square().mean((1, 2, 3))
    return EmbedResult(ws, img, loss, psnr(img, target), 0, False, [], time.time() - t0)


def stop_after(seconds: float) -> Callable[[], bool]:
    """A ``should_stop`` that fires after a wall-clock budget."""
    end = time.time() + seconds
    return lambda: time.time() > end
