"""Few-shot training of the segmentation branch, as EditGAN (and DatasetGAN) do it.

Take N annotated images (image + part mask), embed them into W+, and train the branch on the generator's
features of those embeddings against the masks: pixel-wise cross-entropy, Adam (lr 1e-3), random pixel batches,
every ensemble member on the same batches from its own initialisation. A validation split (images held out,
not pixels) measures mIoU every ``eval_every`` steps; training stops early when it has not improved for
``patience`` evaluations, and the best weights are kept. With one annotated image, it trains on it and
validates on it.

Features of each image are computed once (no gradient), one image at a time, and written to a
:class:`FeatureStore` on disk at their native resolutions (channels-last, fp16 when they are large). A training
step maps the files of its images and reads only the rows its sampled pixels' bilinear taps touch; the maps are
dropped after the step. So the process holds one image's features while the store is written and, while
training, a step's touched pages -- neither grows with the number of labelled images, nor (in training) with the
image area: a 1024-px config-f image's features are 262 MB in fp16, 16 of them 4.2 GB, on disk.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .. import budget
from ..errors import EditGANError
from ..models.segbranch import BranchConfig, SegBranch
from ..runtime import adapt_threads
from ..settings import BRANCH, BUDGET
from ..storage.imageio import open_image, prepare_image
from ..storage.masks import decode_mask
from .embed import embed


@dataclass
class BranchReport:
    steps: int
    best_step: int
    val_miou: float
    per_class_iou: Dict[str, float]
    train_images: int
    val_images: int
    seconds: float
    stopped: bool = False
    history: List[dict] = field(default_factory=list)


def synthesis_features(G, ws: torch.Tensor, *, batch: int = 4, half: Optional[bool] = None) -> List[torch.Tensor]:
    """Features of W+ codes [N, num_ws, w_dim], concatenated over the batch, in memory (small models and tests;
    training reads them from a :class:`FeatureStore`)."""
    out: List[List[torch.Tensor]] = []
    with torch.no_grad():
        for part in ws.split(batch):
            _, feats = G.synthesis(part.to(G.w_avg.device), return_features=True)
            out.append([f.detach() for f in feats])
    feats = [torch.cat(f) for f in zip(*out)]
    total = sum(f.numel() for f in feats)
    if half if half is not None else total > (1 << 28):
        feats = [f.half() for f in feats]
    return feats


class FeatureStore:
    """The synthesis features of labelled images, one file per image on disk, read a step at a time.

    Each file holds the image's feature tensors back to back, each channels-last ([r, r, C]: a pixel's channels are
    one contiguous row, which is what the branch gathers). ``image(i)`` maps image i's file and returns its tensors
    as [1, C, r, r] views of the map: nothing is read until the branch indexes rows, and the pages read leave the
    process when the views are dropped. Values are those of :func:`synthesis_features` in the store's dtype (float16
    when one image's features exceed ``HALF_ABOVE`` elements, as a 256-px model's do; float32 below).

    Use as a context manager (or call :meth:`close`): the folder is removed at the end."""

    HALF_ABOVE = 1 << 22

    def __init__(self, G, ws: torch.Tensor, *, folder: Optional[os.PathLike] = None, half: Optional[bool] = None):
        self.channels, self.resolutions = G.feature_channels(), G.feature_resolutions()
        self.dtype = self.dtype_for(G, half)
        self.np_dtype = np.float16 if self.dtype == torch.float16 else np.float32
        self.folder = Path(tempfile.mkdtemp(prefix="editgan-features-", dir=folder))
        self.count = 0
        try:
            with torch.no_grad():
                for w in ws:
                    adapt_threads()
                    _, feats = G.synthesis(w[None].to(G.w_avg.device), return_features=True)
                    with open(self._path(self.count), "wb") as fh:
                        for f in feats:    # [1, C, r, r] -> [r, r, C] rows, in the store's dtype, written in place
                            f[0].permute(1, 2, 0).to(self.dtype).contiguous().cpu().numpy().tofile(fh)
                    del feats
                    self.count += 1
        except BaseException:
            self.close()
            raise

    @classmethod
    def dtype_for(cls, G, half: Optional[bool] = None) -> torch.dtype:
        big = budget.feature_bytes(G) // 4 > cls.HALF_ABOVE     # elements of one image's features
        return torch.float16 if (big if half is None else half) else torch.float32

    @classmethod
    def bytes_for(cls, G, count: int, half: Optional[bool] = None) -> int:
        """Disk bytes of a store of ``count`` images."""
        return count * budget.feature_bytes(G) // (2 if cls.dtype_for(G, half) == torch.float16 else 1)

    def _path(self, i: int) -> Path:
        return self.folder / f"{i:05d}.bin"

    def __len__(self) -> int:
        return self.count

    def image(self, i: int) -> List[torch.Tensor]:
        """Image i's features as [1, C, r, r] tensors (channels-last views of a private, copy-on-write map)."""
        flat = np.memmap(self._path(i), dtype=self.np_dtype, mode="c")
        out, off = [], 0
        for c, r in zip(self.channels, self.resolutions):
            rows = torch.from_numpy(flat[off: off + r * r * c].reshape(1, r, r, c))
            out.append(rows.permute(0, 3, 1, 2))
            off += r * r * c
        return out

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def miou(pred: np.ndarray, true: np.ndarray, num_classes: int) -> Tuple[float, np.ndarray]:
    """Mean IoU over classes present in either map (NaN for classes absent from both)."""
    ious = np.full(num_classes, np.nan)
    for c in range(num_classes):
        p, t = pred == c, true == c
        union = np.logical_or(p, t).sum()
        if union:
            ious[c] = np.logical_and(p, t).sum() / union
    return float(np.nanmean(ious)), ious


def train_branch(G, ws: torch.Tensor, masks: np.ndarray, class_names: Sequence[str], palette: Sequence,
                 *, generator_id: Optional[dict] = None, members: int = BRANCH.members, hidden=BRANCH.hidden,
                 val_fraction: float = BRANCH.val_fraction, max_steps: int = BRANCH.max_steps,
                 pixels_per_step: int = BRANCH.pixels_per_step, lr: float = BRANCH.lr,
                 eval_every: int = BRANCH.eval_every, patience: int = BRANCH.patience, seed: int = 0,
                 progress: Optional[Callable[[dict], None]] = None,
                 should_stop: Optional[Callable[[], bool]] = None, half: Optional[bool] = None,
                 scratch: Optional[os.PathLike] = None) -> Tuple[SegBranch, BranchReport]:
    """Train a branch for G from W+ codes ``ws`` [N, num_ws, w_dim] and label maps ``masks`` [N, R, R].
    Deterministic for a ``seed``; the global torch RNG is neither used nor reseeded. The images' features go to a
    :class:`FeatureStore` (in ``scratch``, default the system's temp folder; ``half`` its dtype, default by size)
    removed at the end."""
    t0 = time.time()
    R, C = G.img_resolution, len(class_names)
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[1:] != (R, R) or len(masks) != len(ws):
        raise EditGANError(f"need one {R}x{R} mask per latent: got masks {masks.shape} for {len(ws)} latents")
    if len(ws) == 0:
        raise EditGANError("no annotated images to train on")
    if masks.max() >= C:
        raise EditGANError(f"masks use label {int(masks.max())} but only {C} classes are named")
    dev = G.w_avg.device
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ws))
    n_val = int(round(len(ws) * val_fraction)) if len(ws) >= 3 else 0
    val_idx, train_idx = order[:n_val], order[n_val:]
    if n_val == 0:
        val_idx = train_idx
    budget.require(budget.training_bytes(G, members, hidden), "training the branch",
                   "close other work, or wait for another user's long action to end")
    budget.require_disk(FeatureStore.bytes_for(G, len(ws), half), scratch, f"training on {len(ws)} images")
    with FeatureStore(G, ws, half=half, folder=scratch) as store:
        labels = masks.reshape(len(masks), -1)     # as given (uint8): indexed per step, not widened for all
        cfg = BranchConfig(G.feature_channels(), G.feature_resolutions(), R, list(class_names),
                           [tuple(int(v) for v in c) for c in palette], members=members, hidden=tuple(hidden),
                           generator=generator_id or {})
        gen = torch.Generator().manual_seed(seed)
        branch = SegBranch(cfg, generator=gen).to(dev)
        opt = torch.optim.Adam(branch.parameters(), lr=lr)
        best_state, best_miou, best_step, bad, history = None, -1.0, 0, 0, []
        stopped = False
        per_img = max(1, pixels_per_step // max(1, min(len(train_idx), 4)))
        step = 0
        for step in range(1, max_steps + 1):
            if should_stop is not None and should_stop():
                stopped = True
                break
            adapt_threads()
            branch.train()
            imgs = rng.choice(train_idx, size=min(len(train_idx), 4), replace=False)
            loss = 0.0
            opt.zero_grad(set_to_none=True)
            for i in imgs:
                pix = torch.randint(0, R * R, (per_img,), generator=gen).to(dev)
                f = [t.to(dev) for t in store.image(i)]    # stored dtype: the branch converts the rows it reads
                logits = branch.member_logits_at(f, pix)[0]                       # [P, K, C]
                target = torch.from_numpy(labels[i, pix.cpu().numpy()].astype(np.int64)).to(dev)
                l_i = F.cross_entropy(logits.reshape(-1, C), target.repeat_interleave(members)) / len(imgs)
                l_i.backward()
                loss += l_i.item()
            opt.step()
            if step % eval_every == 0 or step == max_steps:
                m, ious = _evaluate(branch, store, masks, val_idx, dev)
                sec = time.time() - t0
                rec = {"step": step, "loss": round(loss, 4), "val_miou": round(m, 4), "sec": round(sec, 1),
                       "eta_s": round(sec / step * (max_steps - step), 1)}   # to max_steps (early stopping
                                                                                     # may end sooner)
                history.append(rec)
                if progress is not None:
                    progress(rec)
                if m > best_miou:
                    best_miou, best_step, bad = m, step, 0
                    best_state = copy.deepcopy(branch.state_dict())
                else:
                    bad += 1
                    if bad >= patience:
                        break
        if best_state is None:   # stopped before the first evaluation: evaluate what there is
            best_miou, _ = _evaluate(branch, store, masks, val_idx, dev)
            best_state, best_step = copy.deepcopy(branch.state_dict()), step
        branch.load_state_dict(best_state)
        branch.eval()
        m, ious = _evaluate(branch, store, masks, val_idx, dev)
        report = BranchReport(step, best_step, m, {n: (None if np.isnan(v) else round(float(v), 4))
                                                   for n, v in zip(class_names, ious)},
                              len(train_idx), n_val, time.time() - t0, stopped, history)
        return branch, report


def train_branch_on_images(G, images: torch.Tensor, masks: np.ndarray, class_names: Sequence[str],
                           palette: Sequence, *, encoder=None, distance=None, embed_steps: int = BRANCH.embed_steps,
                           embed_progress: Optional[Callable] = None, should_stop: Optional[Callable[[], bool]] = None,
                           **train_kw) -> Tuple[SegBranch, BranchReport, object]:
    """The few-shot step as the paper does it: annotated *images* [N, 3, R, R] in [-1, 1] (e.g. prepared photos)
    are embedded into W+ first (:func:`editgan_core.pipeline.embed.embed`), then the branch is trained on the generator's
    features of the embeddings against ``masks`` [N, R, R]. ``train_kw`` go to :func:`train_branch`.
    -> (branch, report, the embedding result: its ``psnr`` says how faithful the features are)."""
    if images.ndim != 4 or len(images) != len(masks):
        raise EditGANError(f"need one image per mask: got images {tuple(images.shape)} for {len(masks)} masks")
    res = embed(G, images, steps=embed_steps, encoder=encoder, distance=distance, progress=embed_progress,
                should_stop=should_stop)
    branch, report = train_branch(G, res.ws, masks, class_names, palette, should_stop=should_stop, **train_kw)
    return branch, report, res


def eval_pixels(R: int, side: int = BRANCH.eval_side) -> Tuple[int, torch.Tensor]:
    """The pixels a held-out image is scored on: every ``stride``-th row and column, at most ``side`` of each
    (every pixel up to ``side`` px). -> (stride, flat pixel indices)."""
    stride = max(1, -(-R // side))
    grid = torch.arange(0, R, stride)
    return stride, (grid[:, None] * R + grid[None, :]).reshape(-1)


def _evaluate(branch: SegBranch, store: FeatureStore, masks: np.ndarray, idx, dev) -> Tuple[float, np.ndarray]:
    """Held-out mIoU on the grid of :func:`eval_pixels` (the whole image up to 256 px): a dense evaluation at
    1024 px would cost 16 times as much, once per evaluation."""
    branch.eval()
    C, R = branch.cfg.num_classes, branch.cfg.out_resolution
    stride, pix = eval_pixels(R)
    pix = pix.to(dev)
    preds = []
    with torch.no_grad():
        for i in idx:     # the stored dtype: the branch converts the rows it reads
            feats = [t.to(dev) for t in store.image(i)]
            preds.append(torch.cat([branch.logits_at(feats, part).argmax(1)
                                    for part in pix.split(BUDGET.eval_chunk)], 1)[0].cpu().numpy())
            del feats
    side = len(range(0, R, stride))
    pred, true = np.stack(preds).reshape(-1, side, side), masks[list(idx)][:, ::stride, ::stride]
    return miou(pred, true, C)


# ----------------------------------------------------------------------------------------------------------
# Folders of annotated images.


def load_annotated_folder(folder: os.PathLike, resolution: int, palette: np.ndarray
                          ) -> Tuple[List[str], List, np.ndarray, List[str]]:
    """Pairs NAME.png|jpg + NAME_mask.png (or masks/NAME.png) -> (names, prepared images, labels [N, R, R], notes).

    Masks are resized with nearest neighbour to the model's resolution after the same crop as the image;
    colours not in the palette go to the nearest class and the count is reported in the notes.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise EditGANError(f"no such folder: {folder}")
    names, images, labels, notes = [], [], [], []
    exts = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in exts or p.stem.endswith("_mask"):
            continue
        mask_path = next((m for m in (p.with_name(p.stem + "_mask.png"), folder / "masks" / (p.stem + ".png"))
                          if m.is_file()), None)
        if mask_path is None:
            notes.append(f"{p.name}: no mask ({p.stem}_mask.png or masks/{p.stem}.png); skipped")
            continue
        prep = prepare_image(p, resolution)
        m = open_image(mask_path)
        if m.size != prep.original_size:
            raise EditGANError(f"{mask_path.name} is {m.size[0]}x{m.size[1]} but {p.name} is "
                               f"{prep.original_size[0]}x{prep.original_size[1]}")
        m = m.convert("RGBA")
        left, top, right, bottom = prep.box
        canvas = Image.new("RGBA", (right - left, bottom - top), (0, 0, 0, 0))
        canvas.paste(m, (-left, -top))
        m = canvas.resize((resolution, resolution), Image.NEAREST)
        arr = np.asarray(m)
        lab, msg = decode_mask(arr[..., :3], palette, alpha=arr[..., 3])
        if msg:
            notes.append(f"{mask_path.name}: {msg}")
        names.append(p.stem)
        images.append(prep)
        labels.append(lab)
    if not names:
        raise EditGANError(f"{folder} has no image/mask pairs (NAME.png with NAME_mask.png or masks/NAME.png)")
    return names, images, np.stack(labels), notes
