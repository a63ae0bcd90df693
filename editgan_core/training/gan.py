"""Train a StyleGAN2 (this package's Generator + Discriminator) on ToyFaces renders or a folder of images.

    python -m editgan_core.training.gan --out runs/toyfaces64 --res 64 --kimg 400            # CPU settings
    python -m editgan_core.training.gan --out runs/toyfaces128 --res 128 --preset gpu --kimg 3000
    python -m editgan_core.training.gan --out runs/toyfaces64 --resume                          # continue
    python -m editgan_core.training.gan --out runs/toyfaces64 --export checkpoints/toyfaces    # ship G_ema

StyleGAN2 recipe (Karras et al. 2020, 'auto' config of stylegan2-ada): non-saturating logistic loss, lazy R1
every 16 steps, style mixing 0.9, Adam(0, 0.99), EMA generator, w_avg tracked for truncation. No path-length
regulariser (saves a third of the time on CPU). The loop, checkpoints (``ckpt.safetensors``, resumed exactly:
models, optimisers, step, RNG state), EMA and export are the shared engine's (:mod:`editgan_core.training.engine`);
this module holds the losses and the data.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..models.discriminator import Discriminator, DiscriminatorConfig
from ..models.generator import Generator, GeneratorConfig, images_to_uint8
from ..runtime import tune_allocator
from .engine import TrainingLoop, checkpoint_path, export_discriminator, read_config

PRESETS = {
    # Small nets that learn ToyFaces in a few hours on 2 CPU cores.
    "cpu": dict(z_dim=256, channel_base=2048, channel_max=128, mapping_layers=2, batch=32, lr=0.0025),
    # The goal configuration (128 px) for a GPU.
    "gpu": dict(z_dim=512, channel_base=16384, channel_max=512, mapping_layers=4, batch=64, lr=0.0025),
}


@dataclass
class TrainConfig:
    res: int = 64
    preset: str = "cpu"
    z_dim: int = 256
    channel_base: int = 2048
    channel_max: int = 128
    mapping_layers: int = 2
    batch: int = 32
    lr: float = 0.0025
    r1_gamma: Optional[float] = None     # None = 0.0002 * res^2 / batch (stylegan2-ada 'auto')
    r1_interval: int = 16
    style_mixing: float = 0.9
    ema_kimg: Optional[float] = None     # None = batch * 10 / 32
    ema_rampup: float = 0.05
    data_size: int = 30000               # images in the training set (recorded; the images are main's --data)
    use_noise: bool = True               # per-layer noise inputs (ToyFaces has no texture to model)
    seed: int = 0


def make_models(cfg: TrainConfig):
    gcfg = GeneratorConfig(z_dim=cfg.z_dim, w_dim=cfg.z_dim, img_resolution=cfg.res, channel_base=cfg.channel_base,
                           channel_max=cfg.channel_max, mapping_layers=cfg.mapping_layers, conv_clamp=None,
                           use_noise=cfg.use_noise)
    dcfg = DiscriminatorConfig(img_resolution=cfg.res, channel_base=cfg.channel_base, channel_max=cfg.channel_max)
    with torch.random.fork_rng(devices=[]):   # seeded weights without touching the caller's RNG
        torch.manual_seed(cfg.seed)
        G = Generator(gcfg)
        D = Discriminator(dcfg)
    return G, D


class Trainer(TrainingLoop):
    trainer = "editgan_core.training.gan"
    state_attrs = ("G", "D", "G_ema", "opt_G", "opt_D", "rng", "gen")
    log_every = 20

    def __init__(self, cfg: TrainConfig, out: Path, data: np.ndarray, device: torch.device):
        self.cfg, self.out, self.data, self.device = cfg, out, data, device
        self.G, self.D = make_models(cfg)
        self.G.to(device).train()
        self.D.to(device).train()
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        ratio = cfg.r1_interval / (cfg.r1_interval + 1)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=(0.0, 0.99), eps=1e-8)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.lr * ratio, betas=(0.0, 0.99 ** ratio), eps=1e-8)
        self.step = 0
        self.rng = np.random.default_rng(cfg.seed)
        self.gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
        self.r1_gamma = cfg.r1_gamma if cfg.r1_gamma is not None else 0.0002 * cfg.res ** 2 / cfg.batch
        self.ema_kimg = cfg.ema_kimg if cfg.ema_kimg is not None else cfg.batch * 10 / 32
        self.grid_z = torch.randn([16, cfg.z_dim], generator=torch.Generator().manual_seed(123))
        self.log = []

    # -- pieces ---------------------------------------------------------------------------------------
    def real_batch(self) -> torch.Tensor:
        idx = np.sort(self.rng.choice(len(self.data), self.cfg.batch, replace=False))
        x = torch.from_numpy(np.ascontiguousarray(self.data[idx])).to(self.device)
        return x.permute(0, 3, 1, 2).float() / 127.5 - 1

    def generate(self, n: int) -> torch.Tensor:
        G, cfg = self.G, self.cfg
        z = torch.randn([n, cfg.z_dim], generator=self.gen).to(self.device)
        w = G.mapping(z, None)
        with torch.no_grad():  # track w_avg for truncation, as NVIDIA does (beta 0.998)
            G.mapping.w_avg.copy_(w.detach().mean(0).lerp(G.mapping.w_avg, 0.998))
        ws = w.unsqueeze(1).repeat(1, G.num_ws, 1)
        if cfg.style_mixing > 0:
            cut = torch.randint(1, G.num_ws, (), generator=self.gen).item()
            if torch.rand([], generator=self.gen).item() < cfg.style_mixing:
                z2 = torch.randn([n, cfg.z_dim], generator=self.gen).to(self.device)
                ws = torch.cat([ws[:, :cut], G.mapping(z2, None).unsqueeze(1).repeat(1, G.num_ws - cut, 1)], 1)
        return G.synthesis(ws, noise_mode="random", fused=False, generator=self.gen)

    def train_step(self) -> dict:
        cfg = self.cfg
        # Generator: non-saturating logistic loss.
        self.G.requires_grad_(True)
        self.D.requires_grad_(False)
        fake = self.generate(cfg.batch)
        loss_G = F.softplus(-self.D(fake)).mean()
        self.opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        self.opt_G.step()
        # Discriminator: logistic loss + lazy R1 on reals.
        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        with torch.no_grad():
            fake = self.generate(cfg.batch)
        real = self.real_batch()
        do_r1 = self.step % cfg.r1_interval == 0
        real.requires_grad_(do_r1)
        logits_real = self.D(real)
        loss_D = F.softplus(self.D(fake)).mean() + F.softplus(-logits_real).mean()
        r1 = torch.zeros([])
        if do_r1:
            grad, = torch.autograd.grad(logits_real.sum(), real, create_graph=True)
            r1 = grad.square().sum([1, 2, 3]).mean()
            loss_D = loss_D + r1 * (self.r1_gamma / 2) * cfg.r1_interval
        self.opt_D.zero_grad(set_to_none=True)
        loss_D.backward()
        self.opt_D.step()
        # EMA of the generator.
        kimg = self.step * cfg.batch / 1000
        ema_nimg = min(self.ema_kimg * 1000, kimg * 1000 * cfg.ema_rampup) if cfg.ema_rampup else self.ema_kimg * 1000
        self.ema(0.5 ** (cfg.batch / max(ema_nimg, 1e-8)))
        self.step += 1
        # Diversity across the batch (mean per-pixel std), fakes vs reals: a collapse shows up here first.
        return {"step": self.step, "kimg": round(self.step * cfg.batch / 1000, 3), "loss_G": loss_G.item(),
                "loss_D": loss_D.item(), "r1": r1.item(), "div_fake": round(fake.std(0).mean().item(), 4),
                "div_real": round(real.detach().std(0).mean().item(), 4)}

    # -- what the engine's loop writes next to a checkpoint -----------------------------------------
    def snapshot(self, out: Path, final: bool) -> None:
        if not final:
            self.sample_grid(out / f"samples_{self.step:06d}.png", 1.0)
        self.sample_grid(out / "latest.png", 0.7)

    def sample_grid(self, path: Path, psi: float = 1.0) -> None:
        with torch.no_grad():
            img = self.G_ema(self.grid_z.to(self.device), truncation_psi=psi)
        arr = images_to_uint8(img).cpu().numpy()
        n = int(math.sqrt(len(arr)))
        rows = [np.concatenate(list(arr[r * n:(r + 1) * n]), axis=1) for r in range(n)]
        Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def export(trainer: Trainer, dst: Path, extra: dict) -> None:
    """G_ema in the native format, plus the discriminator (the perceptual distance of that generator)."""
    trainer.export_generator(dst, {**trainer.summary(), **extra})
    export_discriminator(trainer.D, dst)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m editgan_core.training.gan", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="run folder (checkpoint, samples, log)")
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--preset", choices=list(PRESETS), default="cpu")
    p.add_argument("--kimg", type=float, default=200, help="train until this many thousand images")
    p.add_argument("--minutes", type=float, default=None, help="stop (and save) after this wall time")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--r1-gamma", type=float, default=None, help="default: 0.0002 * res^2 / batch")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--no-noise", action="store_true", help="generator without per-layer noise inputs")
    p.add_argument("--data", default=None, help="the training images: a .npy of uint8 [N, res, res, 3] (ToyFaces "
                   "renders: python -m editgan_core.toyfaces.dataset --res 64 --n 30000 --out data.npy)")
    p.add_argument("--snap-every", type=int, default=200, help="steps between checkpoints and sample grids")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--export", default=None, help="write G_ema (+ D) in the native format to this folder")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)

    tune_allocator()
    device = torch.device("cuda" if (args.device == "auto" and torch.cuda.is_available()) else
                          ("cpu" if args.device == "auto" else args.device))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig(res=args.res, preset=args.preset, **PRESETS[args.preset])
    if args.batch:
        cfg.batch = args.batch
    if args.r1_gamma is not None:
        cfg.r1_gamma = args.r1_gamma
    if args.lr is not None:
        cfg.lr = args.lr
    cfg.use_noise = not args.no_noise
    ckpt = checkpoint_path(out)
    if (args.resume or args.export) and ckpt.exists():
        cfg = TrainConfig(**read_config(ckpt, Trainer.trainer))
    # Exporting needs no training data. The images are an argument: the trainer knows no dataset of its own.
    if args.export:
        data = np.zeros((0, cfg.res, cfg.res, 3), np.uint8)
    elif args.data is None:
        p.error("--data is needed to train (a .npy of uint8 images [N, res, res, 3])")
    else:
        data = np.load(args.data, mmap_mode="r", allow_pickle=False)
        if data.ndim != 4 or data.shape[1:] != (cfg.res, cfg.res, 3) or data.dtype != np.uint8:
            p.error(f"--data {args.data}: uint8 images [N, {cfg.res}, {cfg.res}, 3] needed, got {data.dtype} "
                    f"{tuple(data.shape)}")
        cfg.data_size = len(data)
    trainer = Trainer(cfg, out, data, device)
    if (args.resume or args.export) and ckpt.exists():
        trainer.resume(ckpt)
    if args.export:
        export(trainer, Path(args.export), {"device": device.type})
        trainer.sample_grid(Path(args.export) / "samples_psi1.png", 1.0)
        print(f"exported to {args.export}")
        return 0
    trainer.run(out, kimg=args.kimg, minutes=args.minutes, snap_every=args.snap_every)
    return 0


if __name__ == "__main__":
    sys.exit(main())
