"""The ToyFaces judge: a network trained with full supervision on renders that predicts the part mask and the
attributes of an image. It SCORES results only; nothing in the editing pipeline trains on it or calls it.

    python -m editgan_core.toyfaces.judge train --res 64 --out checkpoints/toyfaces/judge.safetensors
    python -m editgan_core.toyfaces.judge eval  --weights checkpoints/toyfaces/judge.safetensors --n 1000

Training seeds start at 10,000,000 and evaluation seeds at 20,000,000 (see dataset.SEEDS): disjoint from the
GAN's training renders and from each other.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..runtime import tune_allocator
from ..storage import files
from .dataset import SEEDS, render_set
from .palette import CLASS_INDEX, CLASS_NAMES, NUM_CLASSES
from .render import ATTRIBUTES, NUM_ATTRIBUTES

JUDGE_FORMAT = files.JUDGE.id


@dataclass
class JudgeConfig:
    res: int = 64
    width: int = 32
    num_classes: int = NUM_CLASSES
    num_attributes: int = NUM_ATTRIBUTES


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Judge(nn.Module):
    """A small U-Net: mask logits at full resolution, attributes from the pooled bottleneck."""

    def __init__(self, cfg: JudgeConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        chans = [w, 2 * w, 4 * w, 8 * w, 8 * w]
        self.enc = nn.ModuleList([_block(3, chans[0])] + [_block(chans[i - 1], chans[i]) for i in range(1, 5)])
        self.dec = nn.ModuleList([_block(chans[i + 1] + chans[i], chans[i]) for i in range(4)])
        self.seg = nn.Conv2d(chans[0], cfg.num_classes, 1)
        self.attr = nn.Sequential(nn.Linear(chans[4] + chans[3], 256), nn.ReLU(inplace=True),
                                  nn.Linear(256, cfg.num_attributes))

    def features(self, img: torch.Tensor) -> Tuple[List[torch.Tensor], torch.Tensor]:
        if img.shape[-1] != self.cfg.res or img.shape[-2] != self.cfg.res:
            img = F.interpolate(img, size=(self.cfg.res, self.cfg.res), mode="bilinear", align_corners=False,
                                antialias=True)
        skips = []
        x = img
        for i, blk in enumerate(self.enc):
            x = blk(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        pooled = torch.cat([skips[4].mean((2, 3)), skips[3].mean((2, 3))], 1)   # [N, 16w]
        return skips, pooled

    def forward(self, img: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """img [N, 3, H, W] in [-1, 1] -> (mask logits [N, C, H, W], attributes [N, A] in [0, 1], features)."""
        h, w = img.shape[-2:]
        skips, pooled = self.features(img)
        x = skips[4]
        for i in range(3, -1, -1):
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = self.dec[i](torch.cat([x, skips[i]], 1))
        logits = self.seg(x)
        if logits.shape[-2:] != (h, w):
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        return logits, torch.sigmoid(self.attr(pooled)), pooled


def to_input(images_uint8: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [-1, 1] (the generator's range)."""
    return torch.from_numpy(np.ascontiguousarray(images_uint8)).permute(0, 3, 1, 2).float() / 127.5 - 1


# ------------------------------------------------------------------------------------------------
# Persistence.

def save_judge(model: Judge, path: Path, metrics: Optional[dict] = None, *, half: bool = True) -> Path:
    """Weights in float16 by default (half the size), loaded back as float32 by load_judge."""
    return files.save_module(path, files.JUDGE, model, asdict(model.cfg), half=half,
                             extra={"classes": CLASS_NAMES, "attributes": ATTRIBUTES, "metrics": metrics or {}})


def load_judge(path: Path) -> Judge:
    """A judge written by :func:`save_judge` (format and version checked; a CheckpointError names the file)."""
    model, _ = files.load_module(path, files.JUDGE, lambda cfg: Judge(JudgeConfig(**cfg)))
    return model.requires_grad_(False)


# ------------------------------------------------------------------------------------------------
# Scores.

def confusion(pred: np.ndarray, true: np.ndarray, c: int = NUM_CLASSES) -> np.ndarray:
    return np.bincount(true.astype(np.int64).ravel() * c + pred.astype(np.int64).ravel(), minlength=c * c).reshape(c, c)


def iou_from_confusion(cm: np.ndarray) -> np.ndarray:
    inter = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - np.diag(cm)
    return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


@torch.no_grad()
def predict(model: Judge, images: torch.Tensor, batch: int = 64) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """images float [N, 3, H, W] in [-1, 1] -> (labels uint8 [N, H, W], attributes [N, A], features [N, F])."""
    masks, attrs, feats = [], [], []
    for i in range(0, len(images), batch):
        logits, a, f = model(images[i:i + batch])
        masks.append(logits.argmax(1).to(torch.uint8).cpu().numpy())
        attrs.append(a.cpu().numpy())
        feats.append(f.cpu().numpy())
    return np.concatenate(masks), np.concatenate(attrs), np.concatenate(feats)


def _components(binary: np.ndarray) -> List[np.ndarray]:
    """Connected components (4-neighbour) of a small binary image, as lists of (y, x) arrays."""
    h, w = binary.shape
    seen = np.zeros_like(binary, dtype=bool)
    comps = []
    for y0, x0 in zip(*np.nonzero(binary)):
        if seen[y0, x0]:
            continue
        stack, pts = [(y0, x0)], []
        seen[y0, x0] = True
        while stack:
            y, x = stack.pop()
            pts.append((y, x))
            for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                ny, nx = y + dy, x + dx
                if 0 <= ny < h and 0 <= nx < w and binary[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        comps.append(np.array(pts))
    return comps


def is_valid_face(mask: np.ndarray) -> Tuple[bool, List[str]]:
    """Plausibility check used for the 'valid face' rate: returns (ok, reasons it failed)."""
    n = mask.shape[0] * mask.shape[1]
    why = []
    area = {c: (mask == CLASS_INDEX[c]).sum() / n for c in ("skin", "nose", "lips", "mouth")}
    if not 0.08 <= area["skin"] <= 0.7:
        why.append(f"skin area {area['skin']:.2f}")
    eyes = np.isin(mask, [CLASS_INDEX["eye_whites"], CLASS_INDEX["irises"]])
    comps = [c for c in _components(eyes) if len(c) >= max(2, n // 4096)]
    if len(comps) != 2:
        why.append(f"{len(comps)} eyes")
    if area["nose"] < 0.0008:
        why.append("no nose")
    if area["lips"] + area["mouth"] < 0.0008:
        why.append("no mouth")
    if not why:
        eye_y = np.mean([c[:, 0].mean() for c in comps])
        nose_y = np.nonzero(mask == CLASS_INDEX["nose"])[0].mean()
        mouth_y = np.nonzero(np.isin(mask, [CLASS_INDEX["lips"], CLASS_INDEX["mouth"]]))[0].mean()
        if not eye_y < nose_y < mouth_y:
            why.append("eyes, nose and mouth out of order")
        left, right = sorted(comps, key=lambda c: c[:, 1].mean())
        if abs(left[:, 0].mean() - right[:, 0].mean()) > mask.shape[0] * 0.15:
            why.append("eyes at different heights")
    return not why, why


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets [N, F]."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # sqrtm(s1 s2) via the eigen-decomposition of the symmetric s1^1/2 s2 s1^1/2
    w1, v1 = np.linalg.eigh(s1)
    r1 = (v1 * np.sqrt(np.clip(w1, 0, None))) @ v1.T
    m = r1 @ s2 @ r1
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def evaluate(model: Judge, n: int = 1000, res: Optional[int] = None, workers: int = 2) -> Dict[str, object]:
    res = res or model.cfg.res
    imgs, masks, attrs = render_set(range(SEEDS["eval"], SEEDS["eval"] + n), res, workers=workers)
    pred, pattrs, _ = predict(model, to_input(imgs))
    iou = iou_from_confusion(confusion(pred, masks))
    mae = np.abs(pattrs - attrs).mean(0)
    return {"n": n, "res": res, "miou": float(np.nanmean(iou)),
            "iou": {c: round(float(v), 4) for c, v in zip(CLASS_NAMES, iou)},
            "pixel_accuracy": float((pred == masks).mean()),
            "attribute_mae": {a: round(float(v), 4) for a, v in zip(ATTRIBUTES, mae)},
            "valid_face_rate_renders": float(np.mean([is_valid_face(m)[0] for m in masks]))}


# ------------------------------------------------------------------------------------------------
# Training.

def train(*, res: int = 64, n_train: int = 12000, steps: int = 3000, batch: int = 32, lr: float = 2e-3,
          width: int = 32, workers: int = 2, log=print, seed: int = 0, log_every: int = 100) -> Judge:
    """Train a judge on ``n_train`` renders; ``log`` gets a JSON line (step, losses) every ``log_every`` steps and
    at the end. Deterministic for a given ``seed``; the caller's torch RNG is left as it was."""
    t0 = time.time()
    imgs, masks, attrs = render_set(range(SEEDS["judge_train"], SEEDS["judge_train"] + n_train), res,
                                    workers=workers)
    log(f"rendered {n_train} training images at {res}px in {time.time() - t0:.0f}s")
    x_all, m_all, a_all = to_input(imgs), torch.from_numpy(masks).long(), torch.from_numpy(attrs)
    with torch.random.fork_rng(devices=[]):   # seeded initial weights without touching the global RNG
        torch.manual_seed(seed)
        model = Judge(JudgeConfig(res=res, width=width))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    # Rare thin parts weigh more, so that mIoU (not pixel accuracy) is what improves.
    freq = np.bincount(masks.ravel(), minlength=NUM_CLASSES) / masks.size
    weight = torch.tensor(np.clip((freq + 1e-4) ** -0.5, None, 30), dtype=torch.float32)
    weight = weight / weight.mean()
    g = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(1, steps + 1):
        idx = torch.randint(0, n_train, (batch,), generator=g)
        x, m, a = x_all[idx], m_all[idx], a_all[idx]
        if torch.rand([], generator=g) < 0.5:   # colour jitter keeps it honest on GAN colours
            x = (x * (1 + 0.1 * torch.randn(batch, 3, 1, 1, generator=g)) + 0.05 * torch.randn(batch, 3, 1, 1, generator=g))
        logits, pa, _ = model(x)
        loss_seg = F.cross_entropy(logits, m, weight=weight)
        loss_attr = F.mse_loss(pa, a)
        loss = loss_seg + 10 * loss_attr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % log_every == 0 or step == steps:
            log(json.dumps({"step": step, "loss_seg": round(loss_seg.item(), 4), "loss_attr": round(loss_attr.item(), 5),
                            "elapsed_s": round(time.time() - t0)}))
    return model.eval().requires_grad_(False)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m editgan_core.toyfaces.judge", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--res", type=int, default=64)
    t.add_argument("--n-train", type=int, default=12000)
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--width", type=int, default=32)
    t.add_argument("--eval-n", type=int, default=1000)
    t.add_argument("--out", default="checkpoints/toyfaces/judge.safetensors")
    t.add_argument("--workers", type=int, default=2, help="processes for rendering")
    e = sub.add_parser("eval")
    e.add_argument("--weights", default="checkpoints/toyfaces/judge.safetensors")
    e.add_argument("--n", type=int, default=1000)
    args = p.parse_args(argv)
    tune_allocator()
    if args.cmd == "train":
        t0 = time.time()
        model = train(res=args.res, n_train=args.n_train, steps=args.steps, batch=args.batch, width=args.width,
                      workers=args.workers)
        metrics = evaluate(model, n=args.eval_n, workers=args.workers)
        metrics["train_seconds"] = round(time.time() - t0)
        metrics["settings"] = {k: getattr(args, k) for k in ("res", "n_train", "steps", "batch", "width")}
        save_judge(model, Path(args.out), metrics)
        print(json.dumps(metrics, indent=2))
    else:
        print(json.dumps(evaluate(load_judge(Path(args.weights)), n=args.n), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
