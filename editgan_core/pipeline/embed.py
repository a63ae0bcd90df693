"""Embedding images into W+: an encoder's first guess, then optimisation of the latent.

``embed(G, images, encoder=..., steps=100)`` returns the best W+ per image (lowest loss over the iterations,
not the last), its reconstruction and the losses. The loss is L2 + ``perceptual_weight`` x a perceptual
distance (:mod:`editgan_core.models.perceptual`); noise inputs are fixed ('const'). The learning rate ramps up over
the first 5% of steps and follows a cosine down to zero, as the EditGAN release does. Several images embed
together as one batch with independent latents (and independent best iterates).

``progress(step, steps, loss)`` is called every step; ``should_stop()`` returning True ends the run early and
the best latents found so far are returned (``result.stopped`` says so).

``pivotal_tune(G, ws, target)`` is the higher-fidelity option (PTI, Roich et al. 2021): the embedded latent is kept
as a pivot and a copy of the synthesis network's weights is tuned so that the pivot renders the photo, while
latents near it keep rendering what they rendered (PTI's locality term), so editing vectors and the branch go on
working. The tuned weights travel as a delta from the model's (``Tuning``; ``save_tuning`` / ``load_tuning``).

The encoder (``Encoder``) is a small convolutional network with one linear head for all W+ layers, trained by
``train_encoder`` on generator samples (latent L2 against truncated W, psi in [0.5, 1], plus image
reconstruction) and on renders or real images (image reconstruction only), as the paper trains its encoder.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np
import torch
import torch.nn as nn

from .. import budget
from ..errors import EditGANError, check_finite
from ..models.perceptual import Distance, FallbackDistance
from ..runtime import adapt_threads
from ..settings import EMBED, PIVOTAL
from ..storage import files
from ..storage.identity import check_identity

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
    """fp16 on disk: half the size."""
    return files.save_module(path, files.ENCODER, enc, asdict(enc.cfg), generator=generator, extra=extra, half=True)


def load_encoder(path: os.PathLike, *, expect_generator: Optional[Dict[str, object]] = None) -> Encoder:
    enc, _ = files.load_module(path, files.ENCODER, lambda cfg: Encoder(EncoderConfig(**cfg)),
                               expect_generator=expect_generator)
    return enc


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
    budget.require(budget.embed_bytes(G, len(target)), f"embedding {len(target)} image(s) at once",
                   "embed fewer images at a time")
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
        check_finite(loss, "the embedding", step)
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


# ----------------------------------------------------------------------------------------------------------
# Pivotal tuning.


@dataclass
class Tuning:
    """A generator tuned on one photo: ``G`` (a copy; the model's own is untouched) and ``delta`` (parameter name
    -> tuned minus original, float16: what is saved), with the PSNR of the pivot's render before and after."""
    G: torch.nn.Module
    delta: Dict[str, torch.Tensor]
    base: torch.nn.Module               # the model it was tuned from
    psnr_before: float
    psnr: float
    steps: int
    stopped: bool
    seconds: float


def pivotal_tune(G, ws: torch.Tensor, target: torch.Tensor, *, steps: int = PIVOTAL.steps, lr: float = PIVOTAL.lr,
                 distance: Optional[Distance] = None, perceptual_weight: float = PIVOTAL.perceptual_weight,
                 locality_weight: float = PIVOTAL.locality_weight, locality_reach: float = PIVOTAL.locality_reach,
                 seed: int = 0, progress: Optional[Callable[[int, int, float], None]] = None,
                 should_stop: Optional[Callable[[], bool]] = None) -> Tuning:
    """Tune a copy of ``G``'s synthesis weights so that ``ws`` [1, num_ws, w_dim] (the pivot, from ``embed``)
    renders ``target`` [1, 3, R, R]. Loss: L2 + ``perceptual_weight`` x distance to the photo, plus
    ``locality_weight`` x the same distance between the tuned and the original render of a latent a fraction
    ``locality_reach`` of the way from the pivot to a random sample. The best weights (lowest photo loss) are kept;
    ``should_stop()`` ends early with them."""
    t0 = time.time()
    R = G.img_resolution
    if ws.ndim != 3 or ws.shape[0] != 1 or target.shape != (1, 3, R, R):
        raise EditGANError(f"pivotal tuning takes one latent [1, num_ws, w_dim] and one image [1, 3, {R}, {R}]; "
                           f"got {tuple(ws.shape)} and {tuple(target.shape)}")
    weights = 4 * 4 * sum(p.numel() for p in G.synthesis.parameters())    # the copy, its gradient, Adam's two
    budget.require(budget.embed_bytes(G, 2 if locality_weight > 0 else 1) + weights, "pivotal tuning",
                   "use the embedding without tuning, or close other work")
    dev = G.w_avg.device
    target, ws = target.to(dev, torch.float32), ws.to(dev, torch.float32).detach()
    distance = (distance or FallbackDistance()).to(dev)
    G.requires_grad_(False)
    tuned = copy.deepcopy(G).eval()
    params = dict(tuned.synthesis.named_parameters())
    for p in params.values():
        p.requires_grad_(True)
    opt = torch.optim.Adam(params.values(), lr=lr)
    gen = torch.Generator().manual_seed(seed)

    def photo_loss(img):
        return ((img - target).square().mean() + perceptual_weight * distance(img, target).mean())

    with torch.no_grad():
        before = G.synthesis(ws)
        best_loss, best = float(photo_loss(before)), {k: v.detach().clone() for k, v in params.items()}
    stopped, done = False, 0
    for step in range(steps):
        if should_stop is not None and should_stop():
            stopped = True
            break
        adapt_threads()
        loss = photo_loss(tuned.synthesis(ws, fused=False))
        if loss.item() < best_loss:                   # the weights that gave this loss, before the step
            best_loss, best = loss.item(), {k: v.detach().clone() for k, v in params.items()}
        total = loss
        if locality_weight > 0:
            with torch.no_grad():
                z = torch.randn(1, G.z_dim, generator=gen).to(dev)
                w_r = ws + locality_reach * (G.mapping_ws(z) - ws)
                ref = G.synthesis(w_r)
            img_r = tuned.synthesis(w_r, fused=False)
            total = total + locality_weight * ((img_r - ref).square().mean() + distance(img_r, ref).mean())
        check_finite(total, "pivotal tuning", step)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        done = step + 1
        if progress is not None:
            progress(done, steps, loss.item())
    with torch.no_grad():
        if float(photo_loss(tuned.synthesis(ws))) >= best_loss:
            for k, v in params.items():
                v.copy_(best[k])
        tuned.requires_grad_(False)
    originals = dict(G.synthesis.named_parameters())
    delta = {k: (v.detach() - originals[k]).half().cpu() for k, v in params.items()}
    # the copy carries the float16-rounded delta, so that the session's generator and a reloaded one are the same
    _add_delta(tuned, G, delta)
    with torch.no_grad():
        after = tuned.synthesis(ws)
    return Tuning(tuned, delta, G, float(psnr(before, target)), float(psnr(after, target)), done, stopped,
                  time.time() - t0)


def _add_delta(tuned, G, delta: Dict[str, torch.Tensor]) -> None:
    originals = dict(G.synthesis.named_parameters())
    with torch.no_grad():
        for k, p in tuned.synthesis.named_parameters():
            p.copy_(originals[k] + delta[k].to(p.device, p.dtype))


def tuned_generator(G, delta: Dict[str, torch.Tensor]):
    """A copy of ``G`` with a saved tuning's delta added to its synthesis weights (``G`` is untouched)."""
    names = dict(G.synthesis.named_parameters())
    wrong = [k for k, v in delta.items() if k not in names or tuple(v.shape) != tuple(names[k].shape)]
    if wrong or set(delta) != set(names):
        raise EditGANError(f"this tuning does not fit the generator's synthesis network "
                           f"({len(wrong)} tensors of other names or shapes, {len(set(names) - set(delta))} missing)")
    tuned = copy.deepcopy(G).eval().requires_grad_(False)
    _add_delta(tuned, G, delta)
    return tuned


def save_tuning(path: os.PathLike, tuning: Tuning, generator: Dict[str, object], extra: Optional[dict] = None
                ) -> Path:
    meta = {"generator": generator, "psnr_before": round(tuning.psnr_before, 2), "psnr": round(tuning.psnr, 2),
            "steps": tuning.steps, "base_weights": _fingerprint(tuning.base), **(extra or {})}
    return files.save(path, files.TUNING, {f"delta.{k}": v for k, v in tuning.delta.items()}, meta)


def load_tuning(path: os.PathLike, G, *, expect_generator: Optional[Dict[str, object]] = None):
    """-> (the tuned copy of ``G``, metadata). Refuses a tuning of another generator."""
    tensors, meta = files.load(path, files.TUNING)
    check_identity(meta.get("generator", {}), expect_generator, f"tuning {Path(path).name}")
    if meta.get("base_weights") not in (None, _fingerprint(G)):      # same shapes, other weights (no sha known)
        raise EditGANError(f"tuning {Path(path).name} belongs to another model: it was tuned from other weights")
    delta = {k[len("delta."):]: v for k, v in tensors.items() if k.startswith("delta.")}
    return tuned_generator(G, delta), meta


def _fingerprint(G) -> str:
    """sha256 of the synthesis weights a tuning was made from (its delta means nothing on other weights)."""
    h = hashlib.sha256()
    for k, v in G.synthesis.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
