"""The ToyFaces parser: a small SegFormer that labels ToyFaces parts, shipped in the transformers format.

    python -m editgan_core.toyfaces.parser train --out runs/parser --minutes 15   # -> checkpoints/toyfaces/parser
    python -m editgan_core.toyfaces.parser train --out runs/parser --resume       # continue a stopped run
    python -m editgan_core.toyfaces.parser export --out runs/parser               # the run's weights, again
    python -m editgan_core.toyfaces.parser evaluate --n 1000                      # the shipped folder, scored

It lets the app and the CLI demonstrate labelling with a segmentation model with no network: the folder
``checkpoints/toyfaces/parser`` is what ``save_pretrained`` writes (``config.json``, ``model.safetensors``,
``preprocessor_config.json``), so ``AutoModelForSemanticSegmentation.from_pretrained`` and
``AutoImageProcessor.from_pretrained`` load it like any Hub parser; ``id2label`` is the 12 ToyFaces classes in
ToyFaces order (the identity class map). Weights are float16 on disk, loaded as float32 (``dtype`` in the config).

Model: ``SegformerForSemanticSegmentation`` with four small stages whose first one keeps the input's 64 px
(stride 1 instead of SegFormer's 4), so the logits come out at 64 x 64: ToyFaces parts are 2-4 pixels wide at
64 px and a quarter-resolution output cannot draw them. The processor resizes any input to 64 x 64 and maps
it to [-1, 1], the generator's range.

Data: renders from ``SEEDS['parser']`` only (training from +0, validation from +1,000,000), disjoint from the
judge's, the benchmarks', the annotated renders' and the encoder's. Augmentation imitates what differs in
generator samples: per-part desaturation and fading into the skin (the generator's irises are dull, brows faint,
clothing greyish), colour and contrast jitter, slight blur, noise, horizontal flips (ToyFaces classes have no
left/right). The judge is never used for training; ``evaluate`` compares the two on the same held-out renders.

The loop, its checkpoint (``ckpt.safetensors``, atomic, resumed exactly) and progress are the shared engine's
(:mod:`editgan_core.training.engine`).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..loaders.hub import load_model
from ..loaders.registry import CHECKPOINTS_DIR
from ..models.generator import images_to_uint8, seeds_to_z
from ..runtime import tune_allocator
from ..storage import files
from ..training.engine import TrainingLoop, checkpoint_path, read_config
from . import judge as J
from .dataset import SEEDS, render_set
from .palette import CLASS_INDEX, CLASS_NAMES, NUM_CLASSES

PARSER_DIR = CHECKPOINTS_DIR / "toyfaces" / "parser"
VAL_OFFSET = 1_000_000            # validation renders: SEEDS['parser'] + VAL_OFFSET onwards
THIN_PARTS = ("eyebrows", "irises", "nose", "lips", "ears", "mouth")   # parts the generator draws faintly


@dataclass
class ParserConfig:
    res: int = 64
    n_train: int = 16000              # renders, seeds SEEDS['parser'] + 0 ..
    n_val: int = 256                  # renders, seeds SEEDS['parser'] + VAL_OFFSET ..
    batch: int = 16
    steps: int = 2000                 # length of the learning-rate schedule (warm-up, then cosine to 0)
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: int = 100
    seed: int = 0
    # the SegFormer (transformers SegformerConfig fields)
    hidden_sizes: List[int] = field(default_factory=lambda: [16, 32, 64, 128])
    depths: List[int] = field(default_factory=lambda: [1, 1, 2, 1])
    strides: List[int] = field(default_factory=lambda: [1, 2, 2, 2])
    patch_sizes: List[int] = field(default_factory=lambda: [3, 3, 3, 3])
    sr_ratios: List[int] = field(default_factory=lambda: [8, 4, 2, 1])
    num_attention_heads: List[int] = field(default_factory=lambda: [1, 1, 2, 4])
    mlp_ratios: List[int] = field(default_factory=lambda: [2, 4, 4, 4])
    decoder_hidden_size: int = 48
    # augmentation
    part_p: float = 0.3               # per part: probability of desaturating it / fading it into the skin
    blur_p: float = 0.5
    noise_p: float = 0.3


def make_model(cfg: ParserConfig):
    from transformers import SegformerConfig, SegformerForSemanticSegmentation  # here: transformers takes 4 s to import

    mcfg = SegformerConfig(num_channels=3, num_encoder_blocks=len(cfg.hidden_sizes), depths=list(cfg.depths),
                           sr_ratios=list(cfg.sr_ratios), hidden_sizes=list(cfg.hidden_sizes),
                           patch_sizes=list(cfg.patch_sizes), strides=list(cfg.strides),
                           num_attention_heads=list(cfg.num_attention_heads), mlp_ratios=list(cfg.mlp_ratios),
                           decoder_hidden_size=cfg.decoder_hidden_size, drop_path_rate=0.0,
                           classifier_dropout_prob=0.0, num_labels=NUM_CLASSES,
                           id2label={i: n for i, n in enumerate(CLASS_NAMES)},
                           label2id={n: i for i, n in enumerate(CLASS_NAMES)})
    with torch.random.fork_rng(devices=[]):   # seeded initial weights without touching the global RNG
        torch.manual_seed(cfg.seed)
        return SegformerForSemanticSegmentation(mcfg)


def make_processor(res: int = 64):
    """The image processor saved beside the model: resize to res x res, then [0, 255] -> [-1, 1]."""
    from transformers import SegformerImageProcessor  # here: transformers takes 4 s to import

    return SegformerImageProcessor(do_resize=True, size={"height": res, "width": res}, resample=2, do_rescale=True,
                                   rescale_factor=1 / 255, do_normalize=True, image_mean=[0.5, 0.5, 0.5],
                                   image_std=[0.5, 0.5, 0.5], do_reduce_labels=False)


def to_input(images_uint8: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [-1, 1]: what the processor gives for a 64-px image."""
    return torch.from_numpy(np.ascontiguousarray(images_uint8)).permute(0, 3, 1, 2).float() / 127.5 - 1


# ------------------------------------------------------------------------------------------------
# Augmentation: renders made to look like generator samples.

def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur (5 x 5, reflect padding), sigma [B] in pixels (0 = unchanged)."""
    b, c, h, w = x.shape
    t = torch.arange(-2, 3, dtype=x.dtype)
    k = torch.exp(-t[None] ** 2 / (2 * sigma.clamp_min(1e-3)[:, None] ** 2))
    k = k / k.sum(1, keepdim=True)                                                     # [B, 5]
    k2 = (k[:, :, None] * k[:, None, :]).repeat_interleave(c, 0)[:, None]              # [B*C, 1, 5, 5]
    y = F.conv2d(F.pad(x.reshape(1, b * c, h, w), (2, 2, 2, 2), mode="reflect"), k2, groups=b * c)
    return y.reshape(b, c, h, w)


def augment(x: torch.Tensor, m: torch.Tensor, cfg: ParserConfig, gen: torch.Generator
            ) -> Tuple[torch.Tensor, torch.Tensor]:
    """x [B, 3, H, W] in [-1, 1], m [B, H, W] long -> augmented copies (masks change only by the flip)."""
    b = x.shape[0]
    rnd = lambda *s: torch.rand(*s, generator=gen)          # noqa: E731
    nrm = lambda *s: torch.randn(*s, generator=gen)         # noqa: E731
    flip = rnd(b) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    m = torch.where(flip[:, None, None], m.flip(-1), m)
    onehot = F.one_hot(m, NUM_CLASSES).permute(0, 3, 1, 2).to(x.dtype)               # [B, C, H, W]
    # per part: desaturate (towards its own luminance) ...
    lum = x.mean(1, keepdim=True)
    desat = (rnd(b, NUM_CLASSES) < cfg.part_p) * rnd(b, NUM_CLASSES) * 0.8                # [B, C]
    a = (onehot * desat[:, :, None, None]).sum(1, keepdim=True)                         # [B, 1, H, W]
    x = x + a * (lum - x)
    # ... and fade thin parts into the face's mean skin colour (faint brows, dull irises)
    skin = onehot[:, CLASS_INDEX["skin"]:CLASS_INDEX["skin"] + 1]
    skin_mean = (x * skin).sum((2, 3), keepdim=True) / skin.sum((2, 3), keepdim=True).clamp_min(1)
    thin = torch.zeros(NUM_CLASSES)
    thin[[CLASS_INDEX[c] for c in THIN_PARTS]] = 1
    fade = (rnd(b, NUM_CLASSES) < cfg.part_p) * rnd(b, NUM_CLASSES) * 0.5 * thin
    a = (onehot * fade[:, :, None, None]).sum(1, keepdim=True)
    x = x + a * (skin_mean - x)
    # whole image: contrast, per-channel gain and offset
    mean = x.mean((1, 2, 3), keepdim=True)
    x = mean + (x - mean) * (1 + 0.1 * nrm(b, 1, 1, 1))
    x = x * (1 + 0.06 * nrm(b, 3, 1, 1)) + 0.05 * nrm(b, 3, 1, 1)
    blur = (rnd(b) < cfg.blur_p) * (0.3 + 0.6 * rnd(b))
    if bool((blur > 0).any()):
        x = torch.where((blur > 0)[:, None, None, None], _blur(x, blur), x)
    noise = (rnd(b) < cfg.noise_p) * 0.03 * rnd(b)
    x = x + noise[:, None, None, None] * nrm(*x.shape)
    return x.clamp(-1, 1), m


# ------------------------------------------------------------------------------------------------
# Scores.

def confusion(pred: np.ndarray, true: np.ndarray, c: int = NUM_CLASSES) -> np.ndarray:
    return np.bincount(true.astype(np.int64).ravel() * c + pred.astype(np.int64).ravel(),
                       minlength=c * c).reshape(c, c)


def miou_table(pred: np.ndarray, true: np.ndarray) -> dict:
    """Dataset mIoU (one confusion matrix over all pixels, as bench/embedding.py) and per-class IoU."""
    cm = confusion(pred, true)
    inter = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - np.diag(cm)
    iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    return {"miou": float(np.nanmean(iou)), "per_class": {n: round(float(v), 4) for n, v in zip(CLASS_NAMES, iou)}}


@torch.no_grad()
def predict_tensor(model, x: torch.Tensor, batch: int = 64) -> np.ndarray:
    """Inputs [N, 3, H, W] in [-1, 1] -> labels uint8 [N, H, W] (logits upsampled to H x W if needed)."""
    model.eval()
    out = []
    for part in x.split(batch):
        logits = model(pixel_values=part).logits
        if logits.shape[-2:] != part.shape[-2:]:
            logits = F.interpolate(logits, size=part.shape[-2:], mode="bilinear", align_corners=False)
        out.append(logits.argmax(1).to(torch.uint8).numpy())
    return np.concatenate(out)


# ------------------------------------------------------------------------------------------------
# The shipped folder.

def load_parser(folder: Path = PARSER_DIR):
    """-> (model, processor) of a save_pretrained folder, as any transformers user loads it (float32, eval)."""
    # here: transformers takes 4 s to import
    from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model = AutoModelForSemanticSegmentation.from_pretrained(str(folder), dtype=torch.float32)
        processor = AutoImageProcessor.from_pretrained(str(folder))
    finally:
        hf_logging.set_verbosity(verbosity)
    return model.eval().requires_grad_(False), processor


@torch.no_grad()
def label(model, processor, images_uint8: np.ndarray, batch: int = 64) -> np.ndarray:
    """uint8 images [N, H, W, 3] -> labels uint8 [N, H, W] through the processor (as a labeler does it)."""
    arr = np.asarray(images_uint8)
    h, w = arr.shape[1:3]
    out = []
    for i in range(0, len(arr), batch):
        px = processor(images=[np.ascontiguousarray(a) for a in arr[i:i + batch]], return_tensors="pt")
        logits = model(pixel_values=px["pixel_values"].float()).logits
        if logits.shape[-2:] != (h, w):
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        out.append(logits.argmax(1).to(torch.uint8).numpy())
    return np.concatenate(out)


def save_parser(model, cfg: ParserConfig, dst: Path = PARSER_DIR, *, half: bool = True,
                training: Optional[dict] = None) -> Path:
    """Write ``dst`` as save_pretrained does (weights float16 by default, ``dtype`` float32 in the config so that
    from_pretrained gives float32); the folder is replaced in one step."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".{dst.name}."))
    try:
        out = copy.deepcopy(model).cpu().eval()
        if half:
            out = out.half()
        out.save_pretrained(str(tmp))
        make_processor(cfg.res).save_pretrained(str(tmp))
        conf = json.loads((tmp / "config.json").read_text())
        conf["dtype"] = "float32"
        if training:
            conf["editgan_training"] = training
        (tmp / "config.json").write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n")
        tmp.chmod(0o755)                  # mkdtemp makes 0700: give the folder and its files normal permissions
        for f in tmp.iterdir():
            f.chmod(0o644)
        old = dst.with_name(f".{dst.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if dst.exists():
            dst.rename(old)
        tmp.rename(dst)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dst


# ------------------------------------------------------------------------------------------------
# Training.

def load_data(cfg: ParserConfig, cache: Path, workers: int = 2) -> Tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                        np.ndarray]:
    """Training and validation renders (cached as .npz in ``cache``) -> (images, masks, val images, val masks)."""
    base = SEEDS["parser"]
    path = Path(cache) / f"parser_data_{cfg.res}_{cfg.n_train}_{cfg.n_val}.npz"
    if path.is_file():
        d = np.load(path, allow_pickle=False)
        return d["imgs"], d["masks"], d["val_imgs"], d["val_masks"]
    t0 = time.time()
    imgs, masks, _ = render_set(range(base, base + cfg.n_train), cfg.res, workers=workers)
    vi, vm, _ = render_set(range(base + VAL_OFFSET, base + VAL_OFFSET + cfg.n_val), cfg.res, workers=workers)
    def write(p):
        with open(p, "wb") as f:
            np.savez(f, imgs=imgs, masks=masks, val_imgs=vi, val_masks=vm)

    files.atomic_write(path, write)
    print(f"rendered {cfg.n_train} + {cfg.n_val} renders at {cfg.res} px in {time.time() - t0:.0f} s", flush=True)
    return imgs, masks, vi, vm


class ParserTrainer(TrainingLoop):
    trainer = "editgan_core.toyfaces.parser"
    state_attrs = ("model", "opt", "gen", "rng")
    log_every = 50

    def __init__(self, cfg: ParserConfig, imgs: np.ndarray, masks: np.ndarray, val_imgs: np.ndarray,
                 val_masks: np.ndarray):
        self.cfg = cfg
        self.imgs, self.masks = imgs, masks
        self.val_x, self.val_masks = to_input(val_imgs), val_masks
        self.model = make_model(cfg).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        # rare thin parts weigh more, so that mIoU (not pixel accuracy) is what improves (as the judge's loss)
        freq = np.bincount(masks.ravel(), minlength=NUM_CLASSES) / masks.size
        w = np.clip((freq + 1e-4) ** -0.5, None, 30)
        self.weight = torch.tensor(w / w.mean(), dtype=torch.float32)
        self.step = 0
        self.log: list = []
        self._t = time.time()

    def lr_factor(self) -> float:
        if self.step < self.cfg.warmup:
            return (self.step + 1) / self.cfg.warmup
        t = min(1.0, (self.step - self.cfg.warmup) / max(1, self.cfg.steps - self.cfg.warmup))
        return 0.5 * (1 + math.cos(math.pi * t))

    def train_step(self) -> dict:
        cfg = self.cfg
        for g in self.opt.param_groups:
            g["lr"] = cfg.lr * self.lr_factor()
        idx = np.sort(self.rng.choice(len(self.imgs), cfg.batch, replace=False))
        x, m = augment(to_input(self.imgs[idx]), torch.from_numpy(self.masks[idx]).long(), cfg, self.gen)
        self.model.train()
        logits = self.model(pixel_values=x).logits
        loss = F.cross_entropy(logits, m, weight=self.weight)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step += 1
        return {"step": self.step, "loss": round(loss.item(), 4), "lr": round(cfg.lr * self.lr_factor(), 6),
                "sec": round(time.time() - self._t, 1)}

    def timing(self, seconds: float, steps: int) -> dict:
        return {"sec_per_step": round(seconds / steps, 3), "img_per_sec": round(steps * self.cfg.batch / seconds, 1)}

    def annotate(self, rec: dict, snapshot_step: bool) -> None:
        if snapshot_step:
            rec["val_miou"] = round(self.validate(), 4)

    def validate(self) -> float:
        pred = predict_tensor(self.model, self.val_x)
        return miou_table(pred, self.val_masks)["miou"]

    def summary(self) -> dict:
        return {**asdict(self.cfg), "steps_done": self.step, "images_seen": self.step * self.cfg.batch}


def train_main(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = checkpoint_path(out)
    if (args.resume or args.export) and ckpt.is_file():
        cfg = ParserConfig(**read_config(ckpt, ParserTrainer.trainer))
    else:
        if args.export:
            print(f"no checkpoint in {out} to export", file=sys.stderr)
            return 2
        cfg = ParserConfig(n_train=args.n_train, steps=args.steps, batch=args.batch, lr=args.lr)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_data(cfg, out, workers=args.workers)
    t = ParserTrainer(cfg, *data)
    if ckpt.is_file() and (args.resume or args.export):
        t.resume(ckpt)
    if not args.export:
        t._t = time.time() - (t.log[-1]["sec"] if t.log else 0)
        t.run(out, kimg=cfg.steps * cfg.batch / 1000, minutes=args.minutes, snap_every=args.snap_every)
    val = t.validate()
    minutes = round((t.log[-1]["sec"] if t.log else 0) / 60, 1)
    training = {"trainer": ParserTrainer.trainer, "steps": t.step, "batch": cfg.batch, "images_seen": t.step * cfg.batch,
                "renders": cfg.n_train, "seeds": f"SEEDS['parser'] + 0..{cfg.n_train - 1} ({SEEDS['parser']}+)",
                "val_miou_fp32": round(val, 4), "minutes": minutes}
    dst = save_parser(t.model, cfg, Path(args.dst), training=training)
    model, _ = load_parser(dst)
    val16 = miou_table(predict_tensor(model, t.val_x), t.val_masks)["miou"]
    print(json.dumps({**training, "val_miou_fp16_on_disk": round(val16, 4)}), flush=True)
    print(f"wrote {dst} ({sum(p.stat().st_size for p in dst.iterdir()) / 1e6:.2f} MB)")
    return 0


def evaluate(folder: Path = PARSER_DIR, n: int = 1000, samples: int = 1000, workers: int = 2) -> Dict[str, object]:
    """The shipped folder on ``n`` held-out renders (SEEDS['eval'] + 0.., the judge's evaluation set) against their
    exact masks, with the judge's figure on the same renders, and on ``samples`` generator samples against the
    judge (RandomState seeds 5,000 onwards, as bench/embedding.py)."""
    model, processor = load_parser(folder)
    jd = J.load_judge(CHECKPOINTS_DIR / "toyfaces" / "judge.safetensors")
    imgs, masks, _ = render_set(range(SEEDS["eval"], SEEDS["eval"] + n), 64, workers=workers)
    t0 = time.perf_counter()
    pred = label(model, processor, imgs)
    sec = time.perf_counter() - t0
    out: Dict[str, object] = {"renders": n, "parser_vs_exact": miou_table(pred, masks),
                              "judge_vs_exact": miou_table(J.predict(jd, J.to_input(imgs))[0], masks)["miou"],
                              "ms_per_image": round(1000 * sec / n, 2)}
    if samples:
        G = load_model("toyfaces").G.eval()
        with torch.no_grad():
            ws = G.mapping_ws(seeds_to_z(range(5000, 5000 + samples), G.z_dim))
            s = np.concatenate([images_to_uint8(G.synthesis(p)).numpy() for p in ws.split(100)])
        out["samples"] = samples
        out["parser_vs_judge_samples"] = miou_table(label(model, processor, s), J.predict(jd, J.to_input(s))[0])
    out["size_bytes"] = {p.name: p.stat().st_size for p in Path(folder).iterdir()}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m editgan_core.toyfaces.parser", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("train", "export"):
        t = sub.add_parser(name)
        t.add_argument("--out", default="runs/parser", help="run folder (rendered data cache, checkpoint)")
        t.add_argument("--dst", default=str(PARSER_DIR), help="the transformers folder written at the end")
        t.add_argument("--workers", type=int, default=2, help="processes for rendering")
        t.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
        if name == "train":
            t.add_argument("--n-train", type=int, default=ParserConfig.n_train)
            t.add_argument("--steps", type=int, default=ParserConfig.steps)
            t.add_argument("--batch", type=int, default=ParserConfig.batch)
            t.add_argument("--lr", type=float, default=ParserConfig.lr)
            t.add_argument("--minutes", type=float, default=None, help="stop (and save) after this wall time")
            t.add_argument("--snap-every", type=int, default=250, help="steps between checkpoints")
            t.add_argument("--resume", action="store_true")
    e = sub.add_parser("evaluate")
    e.add_argument("--folder", default=str(PARSER_DIR))
    e.add_argument("--n", type=int, default=1000, help="held-out renders")
    e.add_argument("--samples", type=int, default=1000, help="generator samples scored against the judge")
    e.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)

    tune_allocator()
    if args.cmd == "evaluate":
        print(json.dumps(evaluate(Path(args.folder), args.n, args.samples, args.workers), indent=1))
        return 0
    args.export = args.cmd == "export"
    args.resume = getattr(args, "resume", False)
    return train_main(args)


if __name__ == "__main__":
    sys.exit(main())
