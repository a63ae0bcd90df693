"""Train the default ToyFaces generator by distilling the renderer into a StyleGAN2 (CPU-friendly).

    python -m editgan_core.toyfaces.distill --out runs/distill64 --res 64 --kimg 450 --minutes 100
    python -m editgan_core.toyfaces.distill --out runs/distill64 --resume             # continue
    python -m editgan_core.toyfaces.distill --out runs/distill64 --export checkpoints/toyfaces

Why: adversarial training (editgan_core.training.gan) did not converge in the hours two CPU cores allow (see
docs/results.md). The renderer, though, knows which face each latent should be. Every latent z is tied to a
face: the first 25 coordinates of the mapping network's normalised input give the face's attributes
(``params_from_gaussian``, the same per-attribute distributions as the renderer's own sampler), and the
generator learns z -> render(params(z)) by regression (L1 on pixels and on image gradients). The network is
this package's unchanged StyleGAN2 (mapping + modulated synthesis, W+ latents, per-layer features); only the
training signal differs. The remaining z coordinates carry nothing, so samples are as varied as the
renderer's faces.

The mapping layers train at the same effective learning rate as the synthesis (their 0.01 equalised-lr
multiplier exists to keep adversarial training stable; regression needs the mapping to learn). A held-out
set of latents measures generalisation. The loop, checkpoints (``ckpt.safetensors``, atomic, resumed exactly),
EMA and export are the shared engine's (:mod:`editgan_core.training.engine`); this module holds the loss and the data.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import multiprocessing as mp
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch
from PIL import Image

from ..models.generator import Generator, GeneratorConfig, images_to_uint8
from ..models.ops import normalize_2nd_moment
from ..runtime import tune_allocator
from ..storage import files
from ..training.engine import TrainingLoop, checkpoint_path, read_checkpoint, read_config
from .palette import CLASS_INDEX
from .render import NUM_ATTRIBUTES, FaceParams, params_from_gaussian, render


@dataclass
class DistillConfig:
    res: int = 64
    z_dim: int = 32                   # 25 attribute coordinates + 7 spare; 256 learned ~2x slower (measured)
    channel_base: int = 2048
    channel_max: int = 128
    mapping_layers: int = 2
    batch: int = 32
    lr: float = 0.02                  # 0.002 learned far slower in 32-px trials (val MAE 34 vs 21 at 300 steps)
    mapping_lr_scale: float = 100.0   # x lr for the mapping's stored weights (undoes its 0.01 multiplier)
    grad_weight: float = 1.0          # weight of the image-gradient L1 term
    part_weight: float = 0.0          # extra L1 weight on small parts (brows, eyes, nose, lips, mouth); needs masks
    kimg: float = 300.0               # length of the cosine learning-rate schedule
    ema_kimg: float = 10.0
    data_size: int = 30000
    val_size: int = 512
    seed: int = 0


def latent_params(z: torch.Tensor) -> List[FaceParams]:
    """The face each latent stands for: attributes from the first 25 normalised coordinates of z."""
    zn = normalize_2nd_moment(z.double())[:, :NUM_ATTRIBUTES].numpy()
    return [params_from_gaussian(row) for row in zn]


def _render_one(args: Tuple[np.ndarray, int]) -> Tuple[np.ndarray, np.ndarray]:
    x, res = args
    return render(params_from_gaussian(x), res)


def render_latents(z: torch.Tensor, res: int, workers: int = 2) -> Tuple[np.ndarray, np.ndarray]:
    """-> images uint8 [N, res, res, 3], masks uint8 [N, res, res] for the faces of latents z [N, z_dim]."""
    zn = normalize_2nd_moment(z.double())[:, :NUM_ATTRIBUTES].numpy()
    jobs = [(row, res) for row in zn]
    if workers > 1 and len(jobs) > 64:
        with mp.get_context("fork").Pool(workers) as pool:
            out = pool.map(_render_one, jobs, chunksize=64)
    else:
        out = [_render_one(j) for j in jobs]
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


def make_dataset(cfg: DistillConfig, cache: Path, workers: int = 2):
    """Latents, renders and (with part_weight) masks, cached: z [N, z_dim], images uint8 [N, res, res, 3],
    masks uint8 [N, res, res] or None."""
    masks_needed = cfg.part_weight > 0
    path = cache / f"distill_{cfg.res}_{cfg.data_size}_{cfg.z_dim}_{cfg.seed}{'_masks' if masks_needed else ''}.npz"
    if not path.exists():
        z = torch.randn([cfg.data_size + cfg.val_size, cfg.z_dim],
                        generator=torch.Generator().manual_seed(10_000 + cfg.seed))
        imgs, masks = render_latents(z, cfg.res, workers=workers)
        arrays = {"z": z.numpy(), "images": imgs, **({"masks": masks} if masks_needed else {})}

        def write(p):
            with open(p, "wb") as f:
                np.savez(f, **arrays)

        files.atomic_write(path, write)
    d = np.load(path)
    return torch.from_numpy(d["z"]), d["images"], (d["masks"] if masks_needed else None)


def make_generator(cfg: DistillConfig) -> Generator:
    gcfg = GeneratorConfig(z_dim=cfg.z_dim, w_dim=cfg.z_dim, img_resolution=cfg.res, channel_base=cfg.channel_base,
                           channel_max=cfg.channel_max, mapping_layers=cfg.mapping_layers, conv_clamp=None,
                           use_noise=False)
    with torch.random.fork_rng(devices=[]):   # seeded weights without touching the caller's RNG
        torch.manual_seed(cfg.seed)
        return Generator(gcfg)


SMALL_PARTS = ("eyebrows", "eye_whites", "irises", "nose", "lips", "mouth")


def regression_loss(fake: torch.Tensor, real: torch.Tensor, grad_weight: float,
                    weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """L1 on pixels (optionally weighted per pixel, normalised by the mean weight) + L1 on image gradients."""
    if weight is None:
        loss = (fake - real).abs().mean()
    else:
        loss = ((fake - real).abs() * weight).mean() / weight.mean()
    if grad_weight:
        dx = lambda t: t[..., :, 1:] - t[..., :, :-1]  # noqa: E731
        dy = lambda t: t[..., 1:, :] - t[..., :-1, :]  # noqa: E731
        loss = loss + grad_weight * ((dx(fake) - dx(real)).abs().mean() + (dy(fake) - dy(real)).abs().mean())
    return loss


def to_float(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


class Distiller(TrainingLoop):
    trainer = "editgan_core.toyfaces.distill"
    state_attrs = ("G", "G_ema", "opt", "rng")
    log_every = 50

    def __init__(self, cfg: DistillConfig, z: torch.Tensor, images: np.ndarray, masks: Optional[np.ndarray] = None):
        self.cfg = cfg
        self.z_train, self.img_train = z[:cfg.data_size], images[:cfg.data_size]
        self.mask_train = None if masks is None else masks[:cfg.data_size]
        self.small_parts = [CLASS_INDEX[c] for c in SMALL_PARTS]
        self.z_val, self.img_val = z[cfg.data_size:], images[cfg.data_size:]
        self.G = make_generator(cfg).train()
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        mapping = list(self.G.mapping.parameters())
        ids = {id(p) for p in mapping}
        rest = [p for p in self.G.parameters() if id(p) not in ids]
        self.opt = torch.optim.Adam([{"params": rest, "lr": cfg.lr, "base": cfg.lr},
                                     {"params": mapping, "lr": cfg.lr * cfg.mapping_lr_scale,
                                      "base": cfg.lr * cfg.mapping_lr_scale}], betas=(0.9, 0.99), eps=1e-8)
        self.step = 0
        self.rng = np.random.default_rng(cfg.seed)
        self.log: list = []

    def lr_factor(self) -> float:
        t = min(self.step * self.cfg.batch / (self.cfg.kimg * 1000), 1.0)
        warm = min(1.0, self.step / 200)
        return warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))

    def train_step(self) -> dict:
        cfg = self.cfg
        idx = np.sort(self.rng.choice(len(self.z_train), cfg.batch, replace=False))
        z, real = self.z_train[idx], to_float(self.img_train[idx])
        for g in self.opt.param_groups:
            g["lr"] = g["base"] * self.lr_factor()
        weight = None
        if cfg.part_weight and self.mask_train is not None:
            small = np.isin(self.mask_train[idx], self.small_parts)
            weight = torch.from_numpy(1.0 + cfg.part_weight * small.astype(np.float32))[:, None]
        fake = self.G(z, fused=False)
        loss = regression_loss(fake, real, cfg.grad_weight, weight)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.ema(0.5 ** (cfg.batch / (cfg.ema_kimg * 1000)) if self.step > 500 else 0.0, buffers=False)
        self.step += 1
        return {"step": self.step, "kimg": round(self.step * cfg.batch / 1000, 3), "loss": round(loss.item(), 5),
                "lr_factor": round(self.lr_factor(), 4)}

    @torch.no_grad()
    def validate(self, n: int = 256) -> float:
        """Mean absolute pixel error (0..255) of G_ema on held-out latents."""
        fake = images_to_uint8(self.G_ema(self.z_val[:n])).numpy().astype(np.float32)
        return float(np.abs(fake - self.img_val[:n].astype(np.float32)).mean())

    @torch.no_grad()
    def update_w_avg(self, n: int = 20000) -> None:
        z = torch.randn([n, self.cfg.z_dim], generator=torch.Generator().manual_seed(7))
        self.G_ema.mapping.w_avg.copy_(self.G_ema.mapping(z, None).mean(0))

    @torch.no_grad()
    def comparison_grid(self, path: Path, n: int = 8) -> None:
        """Top row: renders of held-out latents; bottom row: what G_ema makes of the same latents."""
        fake = images_to_uint8(self.G_ema(self.z_val[:n])).numpy()
        grid = np.concatenate([np.concatenate(list(self.img_val[:n]), 1), np.concatenate(list(fake), 1)], 0)
        Image.fromarray(grid).save(path)

    # -- the engine's hooks ---------------------------------------------------------------------------
    def timing(self, seconds: float, steps: int) -> dict:
        return {"sec": round(seconds, 2), "img_per_sec": round(steps * self.cfg.batch / seconds, 1)}

    def annotate(self, rec: dict, snapshot_step: bool) -> None:
        if snapshot_step:
            rec["val_mae"] = round(self.validate(), 3)

    def snapshot(self, out: Path, final: bool) -> None:
        self.comparison_grid(out / "latest.png")


def export(d: Distiller, dst: Path, wall_minutes: float) -> None:
    """G_ema in the native format, plus the seed-0 reference image the tests compare against."""
    d.update_w_avg()
    d.export_generator(dst, {"method": "renderer distillation (L1 + gradient L1 regression)", **d.summary(),
                             "val_mae": round(d.validate(), 3), "wall_minutes": round(wall_minutes, 1)})
    z = torch.from_numpy(np.random.RandomState(0).randn(1, d.cfg.z_dim)).float()
    with torch.no_grad():
        ref = images_to_uint8(d.G_ema(z, truncation_psi=0.7))[0].numpy()
    files.atomic_write(dst / "reference_seed0_psi0.7.png", lambda p: Image.fromarray(ref).save(p, format="PNG"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m editgan_core.toyfaces.distill", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="run folder (checkpoint, comparison grids, log)")
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--kimg", type=float, default=300.0, help="train until this many thousand images")
    p.add_argument("--minutes", type=float, default=None, help="stop (and save) after this wall time")
    p.add_argument("--data-size", type=int, default=30000)
    p.add_argument("--snap-every", type=int, default=500, help="steps between checkpoints and grids")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 0.02)")
    p.add_argument("--part-weight", type=float, default=0.0, help="extra L1 weight on eyes, brows, nose, mouth")
    p.add_argument("--init", default=None, help="start from the weights (G and G_ema) of this run checkpoint")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--export", default=None, help="write G_ema in the native format to this folder")
    p.add_argument("--workers", type=int, default=2, help="processes for rendering the dataset")
    args = p.parse_args(argv)

    tune_allocator()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = checkpoint_path(out)
    cfg = DistillConfig(res=args.res, kimg=args.kimg, data_size=args.data_size, part_weight=args.part_weight)
    if args.lr is not None:
        cfg.lr = args.lr
    init = None
    if (args.resume or args.export) and ckpt.exists():
        cfg = DistillConfig(**read_config(ckpt, Distiller.trainer))
    elif args.init:   # fine-tune: architecture and data of the initial run, new schedule and loss settings
        init = read_checkpoint(args.init, Distiller.trainer)
        cfg = dataclasses.replace(DistillConfig(**init.config), kimg=cfg.kimg, lr=cfg.lr, part_weight=cfg.part_weight)
    cache = out.parent if str(out.parent) else Path(".")
    z, images, masks = make_dataset(cfg, cache, workers=args.workers)
    d = Distiller(cfg, z, images, masks)
    if (args.resume or args.export) and ckpt.exists():
        d.resume(ckpt)
    elif init is not None:
        d.G.load_state_dict(init.modules["G_ema"])
        d.G_ema.load_state_dict(init.modules["G_ema"])
        d.log = [dict(r, init=True) for r in init.log]
        print(f"initialised from {args.init} (step {init.step})", flush=True)
    if args.export:
        minutes = sum(r.get("sec", 0) for r in d.log) / 60
        export(d, Path(args.export), minutes)
        print(f"exported to {args.export}")
        return 0
    d.run(out, kimg=cfg.kimg, minutes=args.minutes, snap_every=args.snap_every)
    return 0


if __name__ == "__main__":
    sys.exit(main())
