"""Editing by segmentation: optimise a W+ offset until the branch's mask matches the repainted one.

``edit_from_mask(G, branch, ws, new_mask)``: the edit region r is every pixel whose old or new label belongs to
a class that changed anywhere, grown by ``margin`` pixels. Only the offset ``delta`` (W+) is optimised, with Adam:

    L = rgb_weight * [L2 + perceptual](G(w + delta) vs G(w), outside r) + ce_weight * CE(branch inside r, new mask)

(paper: weights 15 and 1, Adam lr 0.02, 100 steps; the release's app uses 30). Two additions, both measured on
ToyFaces (docs/results.md): the CE is a weighted mean in which the repainted pixels together weigh ``focus`` (1)
times the rest of the region -- painting a mouth over skin puts all skin in the region, and a plain mean let a
small stroke vanish (smile accuracy 35 % -> 96 %); and the learning rate warms up over the first 10 steps, because
Adam's first steps from delta = 0 are full-size sign steps on every coordinate. A region larger than
``EDIT.ce_samples`` pixels has its CE estimated each step from that many weighted draws (unbiased), so a step
costs about the same whatever the region's area. The best iterate (lowest loss) is kept.
``progress(step, steps, loss, image_or_None)`` sees an intermediate image every ``preview_every`` steps;
``should_stop()`` ends early and returns the best so far. ``result.vector`` is the editing vector
(:mod:`editgan_core.storage.vectors`) ready to save or apply.

``refine(G, branch, ws, edited, classes)`` is the same optimisation after vectors are applied: the edited image's own
segmentation becomes the target inside the region of the vectors' classes, the original image outside it
(5 x RGB + 1 x CE, a few steps). Defaults of both live in :mod:`editgan_core.settings`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .. import budget
from ..errors import EditError, check_finite
from ..models.generator import images_to_uint8
from ..models.perceptual import Distance, FallbackDistance, cached_lpips
from ..models.segbranch import segment
from ..runtime import adapt_threads
from ..settings import EDIT, QUALITY, REFINE
from ..storage.masks import grow
from ..storage.vectors import EditVector
from .embed import keep_best


@dataclass
class EditResult:
    ws: torch.Tensor            # [1, num_ws, w_dim] edited latent (w + delta)
    delta: torch.Tensor         # [num_ws, w_dim] the editing vector's direction at scale 1
    image: torch.Tensor         # [1, 3, R, R] edited image
    labels: np.ndarray          # [R, R] the branch's segmentation of the edited image
    region: np.ndarray          # [R, R] bool, where the segmentation was asked to change
    classes: List[int]          # classes whose pixels changed
    loss: float
    steps: int
    stopped: bool
    seconds: float
    history: List[float] = field(default_factory=list)
    vector: Optional[EditVector] = None   # delta as an editing vector (classes by name, before/after thumbnails)
    quality: Optional["EditQuality"] = None   # how well it worked (edit_quality)
    notes: List[str] = field(default_factory=list)   # what was changed to fit (budget.plan_edit), for the user


@dataclass
class EditQuality:
    """How well a mask edit worked, from the result's own segmentation and images (no judge, no reference)."""
    reached: float              # fraction of the repainted pixels whose label in the result is the painted one
    region_iou: float           # mean over the changed classes of IoU(result == c, target == c) inside the region
    psnr_outside: float         # dB: the image outside the edit region, after vs before (inf: unchanged)
    lpips_outside: Optional[float] = None    # LPIPS of the same (the region filled from before); None: no weights
    embedding_psnr: Optional[float] = None   # dB: how faithfully the edited image's latent rendered its photo

    def summary(self) -> str:
        psnr = "unchanged" if math.isinf(self.psnr_outside) else f"{self.psnr_outside:.1f} dB"
        out = (f"reached {self.reached:.0%} of the painted pixels, region IoU {self.region_iou:.2f}, "
               f"PSNR outside the region {psnr}")
        if self.lpips_outside is not None:
            out += f", LPIPS outside {self.lpips_outside:.3f}"
        if self.embedding_psnr is not None:
            out += f"; the embedding rendered the photo at {self.embedding_psnr:.1f} dB"
        return out

    def advice(self) -> str:
        """What to do about a weak edit, in words ("" when it worked)."""
        notes = []
        if self.reached < QUALITY.reached or self.region_iou < QUALITY.region_iou:
            notes.append("the result follows the painting only in part: paint a smaller change, or shapes closer to "
                         "what the model draws (its own segmentation is a guide), or run more steps")
        if self.psnr_outside < QUALITY.psnr_outside:
            notes.append("the image changed outside the edit region too: a smaller change keeps the rest")
        return "; ".join(notes)

    def as_dict(self) -> dict:
        out = {"reached": round(self.reached, 4), "region_iou": round(self.region_iou, 4),
               "psnr_outside_db": None if math.isinf(self.psnr_outside) else round(self.psnr_outside, 2)}
        if self.lpips_outside is not None:
            out["lpips_outside"] = round(self.lpips_outside, 4)
        if self.embedding_psnr is not None:
            out["embedding_psnr_db"] = round(self.embedding_psnr, 2)
        return out


def changed_classes(old: np.ndarray, new: np.ndarray) -> List[int]:
    diff = old != new
    return sorted(set(np.unique(old[diff]).tolist()) | set(np.unique(new[diff]).tolist()))


def edit_region(old: np.ndarray, new: np.ndarray, classes: Optional[Sequence[int]] = None,
                margin: int = EDIT.margin) -> np.ndarray:
    """Pixels whose old or new label is one of ``classes`` (default: the changed ones), grown by ``margin``."""
    classes = changed_classes(old, new) if classes is None else list(classes)
    return grow(np.isin(old, classes) | np.isin(new, classes), margin)


def painted_colours(G, ws: torch.Tensor, old: np.ndarray, new: np.ndarray, painted: np.ndarray):
    """(image [1, 3, R, R], mask [1, 1, R, R]): each painted pixel takes the mean colour its new class has in the
    image before the edit (hair painted longer is the hair's colour); classes the image does not have yet are left
    out of the mask."""
    with torch.no_grad():
        img = G.synthesis(ws)[0]
    dev = img.device
    target = torch.zeros_like(img)
    mask = torch.zeros(1, *img.shape[1:], device=dev)
    old_t = torch.from_numpy(np.asarray(old).astype(np.int64)).to(dev)
    for c in np.unique(np.asarray(new)[painted]):
        have = old_t == int(c)
        if int(have.sum()) < 4:
            continue
        where = torch.from_numpy(painted & (np.asarray(new) == c)).to(dev)
        target[:, where] = img[:, have].mean(1, keepdim=True)
        mask[:, where] = 1.0
    return target[None], mask[None]


def stroke_edges(labels: np.ndarray, painted: np.ndarray, tolerance: int) -> np.ndarray:
    """The pixels within ``tolerance`` of an edge of the painted strokes: where ``labels`` changes between
    neighbours, next to a painted pixel."""
    lab = np.asarray(labels)
    edge = np.zeros(lab.shape, bool)
    edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
    edge[:, :-1] |= lab[:, 1:] != lab[:, :-1]
    edge[1:] |= lab[1:] != lab[:-1]
    edge[:-1] |= lab[1:] != lab[:-1]
    return grow(edge & grow(painted, 1), tolerance - 1)


def edit_quality(before: torch.Tensor, after: torch.Tensor, target: np.ndarray, result: np.ndarray,
                 region: np.ndarray, painted: np.ndarray, classes: Sequence[int], *,
                 lpips: Optional[Distance] = None) -> EditQuality:
    """``before``/``after`` images [1, 3, R, R] in [-1, 1]; ``target`` the painted mask, ``result`` the branch's
    labels of ``after``, ``region`` the edit region and ``painted`` the repainted pixels, all [R, R]. With
    ``lpips`` (``perceptual.cached_lpips()``: only when its weights are in the local cache) the change outside the
    region is also measured perceptually: LPIPS(before, after with the region filled from before)."""
    reached = float((result[painted] == target[painted]).mean()) if painted.any() else 1.0
    ious = []
    for c in classes:
        a, b = (result == c) & region, (target == c) & region
        union = (a | b).sum()
        if union:
            ious.append((a & b).sum() / union)
    outside = torch.from_numpy(~region).to(after.device, torch.float32)[None, None]
    n = float(outside.sum()) * after.shape[1]
    mse = float(((after.float() - before.float()).square() * outside).sum()) / n if n else 0.0
    psnr = math.inf if mse == 0 else 10 * math.log10(4.0 / mse)          # peak-to-peak 2 in [-1, 1]
    lp = None
    if lpips is not None:
        with torch.no_grad():
            b = before.float()
            masked = after.float() * outside + b * (1 - outside)
            lp = float(lpips.to(after.device)(b, masked)[0])
    return EditQuality(reached, float(np.mean(ious)) if ious else 1.0, psnr, lp)


def work_resolution_for(G, work_resolution: Optional[int]) -> int:
    """The resolution an edit's optimisation renders at: ``work_resolution`` when the model is larger and a skip
    generator (whose running image exists at every block), else the model's own (exact)."""
    R = G.img_resolution
    if not work_resolution or work_resolution >= R or G.cfg.architecture != "skip" \
            or work_resolution not in G.cfg.block_resolutions:
        return R
    return int(work_resolution)


def optimise_region(G, branch, ws: torch.Tensor, target_labels: np.ndarray, region: np.ndarray, *,
                    reference_ws: Optional[torch.Tensor] = None, steps: int = EDIT.steps, lr: float = EDIT.lr,
                    rgb_weight: float = EDIT.rgb_weight, ce_weight: float = EDIT.ce_weight,
                    distance: Optional[Distance] = None, delta0: Optional[torch.Tensor] = None, progress=None,
                    should_stop=None, preview_every: int = EDIT.preview_every, warmup: int = EDIT.warmup,
                    pixel_weight: Optional[np.ndarray] = None, ce_samples: int = EDIT.ce_samples, seed: int = 0,
                    delta_weight: float = 0.0,
                    colour: Optional[Tuple[torch.Tensor, torch.Tensor]] = None, colour_weight: float = 0.0,
                    work_resolution: Optional[int] = EDIT.work_resolution):
    """The shared optimisation of mask edits and refinement -> (best delta [N, num_ws, w_dim], history, stopped).

    ``ws`` [N, num_ws, w_dim]; ``target_labels`` and ``region`` [R, R] (shared) or [N, R, R] (one per image).
    Each image has its own loss and its own best iterate; the batch loss is their sum, so with Adam (which acts
    per coordinate) a batch of N gives the same deltas as N separate runs, in a fraction of the time.
    ``history`` holds the mean loss per step.

    The cross-entropy is a weighted mean over the region. A region of more than ``ce_samples`` pixels (painting
    over background puts the whole background in it) is estimated each step from ``ce_samples`` pixels drawn in
    proportion to their weight (with replacement, a fresh draw per step from a generator seeded by ``seed``):
    an unbiased estimate of the same loss, so the cost of a step follows ``ce_samples``, not the region's area.
    Regions up to ``ce_samples`` pixels are evaluated whole, exactly as before.

    ``delta_weight`` adds that weight x the mean square of the change per W+ entry (a small change transfers to
    other images with less damage). ``colour`` =
    (image [N, 3, R, R], mask [N, 1, R, R]) adds ``colour_weight`` x the mean square difference to that image under
    the mask (painted parts take the colour their class already has). The image outside the region is kept like
    that of ``reference_ws`` (default ``ws``: refinement keeps the unedited image).

    ``work_resolution`` (a block resolution below the model's, skip generators; see :func:`work_resolution_for`):
    while it optimises, the synthesis stops there. The shape of a part lives in the coarse and middle W+ entries,
    so only those that the blocks up to that resolution read are optimised (the rest of delta stays zero); the
    image term compares the skip generator's running image at that resolution outside the region (a low-res pixel
    counts as outside when all the pixels it covers are), and so do the activations there, relative to their mean
    square (the finer blocks render them, also what the running image does not show); the branch reads the live
    features of those blocks and,
    for the finer levels, the features of ``ws`` as they were -- exact for every pixel whose fine features the
    edit does not move. At 1024 px, a 256-px working resolution makes a step several times cheaper
    (docs/results.md); ``None`` or 0 is the exact optimisation at full size."""
    dev = ws.device
    N, R = ws.shape[0], G.img_resolution
    work = work_resolution_for(G, work_resolution)
    distance = (distance or FallbackDistance()).to(dev)
    G.requires_grad_(False)
    branch.requires_grad_(False).eval()
    fixed: List[torch.Tensor] = []         # the finer levels' features of ws (a truncated optimisation reads them)
    with torch.no_grad():
        ref = G.synthesis(ws if reference_ws is None else reference_ws, stop_at=work, return_features=work < R)
        if work < R:
            ref, ref_feats = ref
            ref_x = ref_feats[-1]          # the activations the finer blocks start from
            x_scale = ref_x.square().mean((1, 2, 3), keepdim=True).clamp_min(1e-8)
            del ref_feats
            live = sum(1 for r in G.feature_resolutions() if r <= work)
            fixed = [f.half() for f in G.synthesis(ws, return_features=True)[1][live:]]
    region = np.broadcast_to(np.asarray(region, bool), (N, R, R))
    target = np.broadcast_to(np.asarray(target_labels), (N, R, R)).reshape(N, -1)
    outside = torch.from_numpy(~region).to(dev, torch.float32)[:, None]                  # [N, 1, R, R]
    if work < R:   # a working-resolution pixel is outside when every pixel it covers is
        outside = 1.0 - torch.nn.functional.max_pool2d(1.0 - outside, R // work)
        if colour is not None:
            c_img, c_mask = colour
            colour = (torch.nn.functional.avg_pool2d(c_img, R // work),
                      (torch.nn.functional.avg_pool2d(c_mask, R // work) > 0.5).float())
    pix_np = np.flatnonzero(region.reshape(N, -1).any(0))                                # union of the regions
    pix = torch.from_numpy(pix_np).to(dev)
    tgt = torch.from_numpy(target[:, pix_np].astype(np.int64)).to(dev)
    wt = region.reshape(N, -1)[:, pix_np].astype(np.float32)
    if pixel_weight is not None:    # extra CE weight per pixel (inside the region only)
        wt = wt * np.broadcast_to(np.asarray(pixel_weight, np.float32), (N, R, R)).reshape(N, -1)[:, pix_np]
    wt = torch.from_numpy(np.ascontiguousarray(wt)).to(dev)
    total = wt.sum(1).clamp_min(1e-8)                         # [N] each image's full weight
    sampled = 0 < ce_samples < len(pix_np)
    if sampled:   # importance sampling over the union of the regions, q ~ the images' summed weights
        q = (wt / total[:, None]).sum(0)
        q = (q / q.sum()).cpu()
        draw = torch.Generator().manual_seed(seed)
    n_out = outside.sum((1, 2, 3)).clamp_min(1.0)
    delta = (delta0.clone() if delta0 is not None else torch.zeros_like(ws)).requires_grad_(True)
    opt = torch.optim.Adam([delta], lr=lr)
    best, best_loss = delta.detach().clone(), torch.full((N,), math.inf, device=dev)
    history, stopped = [], False
    for step in range(steps):
        if should_stop is not None and should_stop():
            stopped = True
            break
        adapt_threads()
        for group in opt.param_groups:    # linear warm-up: Adam's first steps are full-size sign steps on every
            group["lr"] = lr * min(1.0, (step + 1) / max(warmup, 1))    # coordinate and overshoot from delta = 0
        img, feats = G.synthesis(ws + delta, return_features=True, fused=False, stop_at=work)
        l_rgb = ((img - ref).square() * outside).sum((1, 2, 3)) / (n_out * 3) + distance(img * outside, ref * outside)
        if work < R:   # the finer blocks render what these activations hold, also what the running image does not
            l_rgb = l_rgb + EDIT.feature_weight * ((feats[-1] - ref_x).square() / x_scale * outside).sum(
                (1, 2, 3)) / (n_out * ref_x.shape[1])
        feats = feats + fixed
        loss = rgb_weight * l_rgb
        if delta_weight:
            loss = loss + delta_weight * delta.square().mean(2).sum(1)
        if colour is not None and colour_weight:
            c_img, c_mask = colour
            loss = loss + colour_weight * ((img - c_img).square() * c_mask).sum((1, 2, 3)) / (
                c_mask.sum((1, 2, 3)).clamp_min(1.0) * 3)
        if sampled:
            idx, count = torch.multinomial(q, ce_samples, replacement=True, generator=draw).unique(return_counts=True)
            idx = idx.to(dev)
            w = wt[:, idx] * (count.to(dev, torch.float32) / (ce_samples * q[idx.cpu()].to(dev)))[None]
            loss = loss + ce_weight * branch.cross_entropy_per_image(feats, pix[idx], tgt[:, idx], w, total=total)
        elif len(pix_np):
            loss = loss + ce_weight * branch.cross_entropy_per_image(feats, pix, tgt, wt)
        check_finite(loss, "the edit's optimisation", step)
        best_loss = keep_best(loss, best_loss, best, delta)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        value = float(loss.detach().mean())
        history.append(value)
        if progress is not None:
            show = (step + 1) % preview_every == 0 or step + 1 == steps
            if show and work < R:   # previews at the model's size
                img = torch.nn.functional.interpolate(img.detach(), size=(R, R), mode="bilinear",
                                                      align_corners=False)
            progress(step + 1, steps, value, img.detach() if show else None)
    return best, history, stopped


def edit_from_mask(G, branch, ws: torch.Tensor, new_mask: np.ndarray, *,
                   old_mask: Optional[np.ndarray] = None,            # [R, R] the branch's labels of ws if None
                   name: str = "edit",                               # of the editing vector
                   generator: Optional[dict] = None,                 # identity (default: the branch's generator)
                   margin: int = EDIT.margin, steps: int = EDIT.steps, lr: float = EDIT.lr,
                   rgb_weight: float = EDIT.rgb_weight, ce_weight: float = EDIT.ce_weight, focus: float = EDIT.focus,
                   distance: Optional[Distance] = None, progress: Optional[Callable] = None,
                   should_stop: Optional[Callable[[], bool]] = None,
                   preview_every: int = EDIT.preview_every, ce_samples: int = EDIT.ce_samples,
                   tolerance: int = EDIT.tolerance, edge_weight: float = EDIT.edge_weight,
                   delta_weight: float = EDIT.delta_weight,
                   colour_weight: float = EDIT.colour_weight,
                   work_resolution: Optional[int] = EDIT.work_resolution) -> EditResult:
    """Edit the image of ``ws`` [1, num_ws, w_dim] so that its segmentation becomes ``new_mask`` [R, R].
    -> EditResult, whose ``vector`` is the edit as an editing vector named ``name``.

    Painted masks are strokes, not exact outlines: the pixels within ``tolerance`` of a painted edge (where the
    painted label meets another) carry only ``edge_weight`` of the cross-entropy, so the generator draws that edge
    where its parts can have one. ``delta_weight``, ``colour_weight`` and ``work_resolution`` as in
    :func:`optimise_region` (the colours: those the painted classes have before the edit, ``painted_colours``)."""
    t0 = time.time()
    R = G.img_resolution
    if ws.ndim == 2:
        ws = ws[None]
    if ws.shape != (1, G.num_ws, G.w_dim):
        raise EditError(f"a mask edit takes one latent [1, {G.num_ws}, {G.w_dim}], got {tuple(ws.shape)}")
    new_mask = np.asarray(new_mask)
    if new_mask.shape != (R, R):
        raise EditError(f"the edited mask must be {R}x{R} (the model's resolution), got {new_mask.shape}")
    C = branch.cfg.num_classes
    if new_mask.min() < 0 or new_mask.max() >= C:
        raise EditError(f"the edited mask uses class {int(new_mask.max())}, but the branch knows only {C} classes "
                        f"({', '.join(branch.cfg.class_names)})")
    ws = ws.to(G.w_avg.device).float()
    old = segment(G, branch, ws)[0] if old_mask is None else np.asarray(old_mask)
    classes = changed_classes(old, new_mask)
    if not classes:
        raise EditError("the mask is unchanged: paint over some part of the segmentation first")
    region = edit_region(old, new_mask, classes, margin)
    # Focus: the repainted pixels together weigh ``focus`` times the rest of the region in the CE, so that a small
    # stroke inside a large region (painting over skin puts all skin in the region) still drives the edit.
    painted = old != new_mask
    weight = np.ones(painted.shape, np.float32)
    if tolerance > 0:
        weight[stroke_edges(new_mask, painted, tolerance)] = edge_weight
    firm = painted & (weight > 0)
    if focus > 0 and firm.any():
        weight[firm] += focus * (region.sum() - firm.sum()) / firm.sum()
    colour = painted_colours(G, ws, old, new_mask, painted) if colour_weight else None
    work, _, note = budget.plan_edit(G, work_resolution_for(G, work_resolution))
    best, history, stopped = optimise_region(
        G, branch, ws, new_mask, region, steps=steps, lr=lr, rgb_weight=rgb_weight, ce_weight=ce_weight,
        distance=distance, progress=progress, should_stop=should_stop, preview_every=preview_every,
        pixel_weight=weight, ce_samples=ce_samples, delta_weight=delta_weight, colour=colour,
        colour_weight=colour_weight, work_resolution=work)
    with torch.no_grad():
        before_img = G.synthesis(ws)
        before = images_to_uint8(before_img)[0].cpu().numpy()
        edited = ws + best
        img, feats = G.synthesis(edited, return_features=True)
        labels = branch.predict(feats)[0].cpu().numpy()
    loss = min(history) if history else math.inf
    quality = edit_quality(before_img, img, new_mask, labels, region, painted, classes, lpips=cached_lpips())
    names = branch.cfg.class_names
    vector = EditVector(name=name, delta=best[0].detach().cpu().float(),
                        generator=dict(generator if generator is not None else branch.cfg.generator),
                        classes=[names[c] for c in classes], thumb_before=before,
                        thumb_after=images_to_uint8(img)[0].cpu().numpy(),
                        extra={"steps": len(history), "loss": round(float(loss), 6), "margin": margin,
                               "work_resolution": work,
                               "quality": quality.as_dict()})
    return EditResult(edited, best[0].detach(), img, labels, region, classes, loss, len(history), stopped,
                      time.time() - t0, history, vector, quality, [note] if note else [])


def refine(G, branch, ws: torch.Tensor, edited: torch.Tensor, classes: Sequence[int], *,
           steps: int = REFINE.steps, lr: float = REFINE.lr, rgb_weight: float = REFINE.rgb_weight,
           ce_weight: float = REFINE.ce_weight, margin: int = REFINE.margin, batch: int = REFINE.batch,
           distance: Optional[Distance] = None, should_stop: Optional[Callable[[], bool]] = None,
           ce_samples: int = REFINE.ce_samples, work_resolution: Optional[int] = EDIT.work_resolution
           ) -> torch.Tensor:
    """Refine edited latents: ``ws`` [N, num_ws, w_dim] the originals, ``edited`` the same after vectors were added,
    ``classes`` the indices of the vectors' part classes. Inside the region of those classes (before or after the
    edit, grown by ``margin``) the target is the edited image's own segmentation; outside it, the original image.
    Each image is refined on its own (``batch`` at a time). -> refined latents [N, num_ws, w_dim]."""
    if steps <= 0:
        return edited
    ws, edited = ws.to(G.w_avg.device).float(), edited.to(G.w_avg.device).float()
    work, batch, _ = budget.plan_edit(G, work_resolution_for(G, work_resolution), min(batch, len(edited)))
    out = []
    for s in range(0, len(edited), batch):
        w0, w1 = ws[s:s + batch], edited[s:s + batch]
        before, target = segment(G, branch, w0, batch=1), segment(G, branch, w1, batch=1)   # dense maps: one a pass
        region = np.stack([edit_region(b, t, classes, margin=margin) if len(classes) else np.zeros_like(t, bool)
                           for b, t in zip(before, target)])
        best, _, _ = optimise_region(G, branch, w1, target, region, reference_ws=w0, steps=steps, lr=lr,
                                     rgb_weight=rgb_weight, ce_weight=ce_weight, distance=distance,
                                     should_stop=should_stop, ce_samples=ce_samples,
                                     work_resolution=work)
        out.append(w1 + best)
    return torch.cat(out)
