"""The segmentation branch: a DatasetGAN-style ensemble of per-pixel MLPs over all synthesis-layer outputs.

Naively (as DatasetGAN and the EditGAN release do it) every synthesis-layer output is upsampled to the output
resolution, all are concatenated into one [sum(C_l), R, R] tensor and an MLP runs on every pixel: 6016 x 512
x 512 floats (5.9 GiB) for a 512-px car, before the first layer. Here nothing like it is ever built:

* upsampling (bilinear) and the MLP's first layer are both linear, so the first layer's weight is split per
  feature tensor; tensors below the output resolution are projected at their own resolution (all ensemble
  members at once), and the projections of all levels are read at the output pixels wanted through one sparse
  interpolation matrix (four bilinear taps per pixel and level: exactly ``F.interpolate(bilinear,
  align_corners=False)`` at those pixels);
* tensors at the output resolution -- and, when only a few pixels are wanted (training, a mask edit's region),
  tensors with more positions than there are pixels -- are gathered at the wanted pixels and projected there,
  so the cost follows the pixels, not the image area;
* the rest of the MLP runs on the wanted pixels only, in chunks, so a dense map costs one chunk's memory.

The result equals the naive computation (tests check it to float precision). Prediction: mean logits of the
ensemble; argmax gives the mask. A branch remembers its class names, palette and the generator it was
trained for (name, hash, feature layout) and refuses features of another layout.

Saved as one safetensors file: weights plus a JSON header with all of the above (``save_branch`` /
``load_branch``, through :mod:`editgan_core.storage.files`). ``segment(G, branch, ws)`` is the pipeline step: latents to
part labels.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ..errors import EditGANError, InputError
from ..storage import files


@dataclass
class BranchConfig:
    feature_channels: List[int]          # channels of each synthesis feature tensor (G.feature_channels())
    feature_resolutions: List[int]       # their resolutions (G.feature_resolutions())
    out_resolution: int                  # the generator's image resolution
    class_names: List[str]
    palette: List[Tuple[int, int, int]]  # one RGB colour per class, for masks as images
    members: int = 10                    # ensemble size
    hidden: Tuple[int, int] = (128, 32)  # the paper's small MLP: dim -> 128 -> 32 -> classes
    generator: Dict[str, object] = field(default_factory=dict)  # identity of the generator it belongs to

    def __post_init__(self) -> None:
        self.feature_channels = [int(c) for c in self.feature_channels]
        self.feature_resolutions = [int(r) for r in self.feature_resolutions]
        self.palette = [tuple(int(v) for v in c) for c in self.palette]
        self.hidden = tuple(int(h) for h in self.hidden)
        if len(self.feature_channels) != len(self.feature_resolutions):
            raise InputError("feature_channels and feature_resolutions differ in length")
        if len(self.class_names) != len(self.palette):
            raise InputError(f"{len(self.class_names)} class names but {len(self.palette)} palette colours")
        if len(self.class_names) < 2:
            raise InputError("a segmentation branch needs at least two classes")
        if len(set(self.palette)) != len(self.palette):
            raise InputError("palette colours must be distinct")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_indices(self, names: Iterable[str]) -> List[int]:
        """Class names -> their indices here, sorted, once each; names this branch does not have are skipped."""
        return sorted({self.class_names.index(c) for c in names if c in self.class_names})

    @property
    def in_features(self) -> int:
        return sum(self.feature_channels)


class SegBranch(nn.Module):
    """Ensemble of ``members`` MLPs (dim -> h1 -> ReLU -> BN -> h2 -> ReLU -> BN -> classes), all members at once."""

    small_level = 64           # positions: levels up to this size are projected whole (no search for used taps)
    chunk_budget = 1 << 27     # elements (512 MB of float32): bigger chunks of the cross-entropy are checkpointed

    def __init__(self, cfg: BranchConfig, *, generator: Optional[torch.Generator] = None):
        """``generator`` draws the initial weights (the global RNG when None)."""
        super().__init__()
        self.cfg = cfg
        K, (h1, h2), C = cfg.members, cfg.hidden, cfg.num_classes
        self.fc1 = nn.Linear(cfg.in_features, K * h1)            # members stacked along the output
        self.bn1 = nn.BatchNorm1d(K * h1)
        self.w2 = nn.Parameter(torch.empty(K, h2, h1))
        self.b2 = nn.Parameter(torch.zeros(K, h2))
        self.bn2 = nn.BatchNorm1d(K * h2)
        self.w3 = nn.Parameter(torch.empty(K, C, h2))
        self.b3 = nn.Parameter(torch.zeros(K, C))
        # nn.Linear's own initialisation, drawn from ``generator`` so training never touches the global RNG.
        bound = 1 / cfg.in_features ** 0.5
        nn.init.kaiming_uniform_(self.fc1.weight, a=5 ** 0.5, generator=generator)
        nn.init.uniform_(self.fc1.bias, -bound, bound, generator=generator)
        for w in (self.w2, self.w3):
            for k in range(K):
                nn.init.kaiming_uniform_(w[k], a=5 ** 0.5, generator=generator)

    # -- checks ---------------------------------------------------------------------------------------------
    def check_features(self, feats: Sequence[torch.Tensor]) -> None:
        cfg = self.cfg
        got = [(int(f.shape[1]), int(f.shape[-1])) for f in feats]
        want = list(zip(cfg.feature_channels, cfg.feature_resolutions))
        if got != want:
            raise EditGANError(f"this segmentation branch was trained for another generator: it expects "
                               f"{len(want)} feature tensors (channels, resolution) {want[:3]}..., got "
                               f"{len(got)}: {got[:3]}...")

    # -- the exact, memory-saving evaluation ----------------------------------------------------------------
    def _project(self, feats: Sequence[torch.Tensor]) -> List[Tuple[int, List[torch.Tensor], torch.Tensor]]:
        """Per resolution r: (r, rows, w) -- the level's feature tensors as rows [N, r*r, C_i] (channels-last views,
        any float dtype; never concatenated, so only the rows read are touched) and the matching columns of the
        first layer's weight [K*h1, sum C_i]. Nothing is projected here: :meth:`_hidden1` projects only what the
        wanted pixels read. The weight is split once (its gradient is then one concatenation, not a zero-filled
        full-size tensor per feature tensor)."""
        columns = self.fc1.weight.split(self.cfg.feature_channels, dim=1)
        by_res: Dict[int, List[int]] = {}
        for i, r in enumerate(self.cfg.feature_resolutions):
            by_res.setdefault(r, []).append(i)
        N = feats[0].shape[0]

        def rows(f):   # [N, C, r, r] -> [N, r*r, C]: a view for channels-last features
            return f.permute(0, 2, 3, 1).reshape(N, -1, f.shape[1])

        levels = []
        for r, idx in by_res.items():
            w = torch.cat([columns[i] for i in idx], 1) if len(idx) > 1 else columns[idx[0]]
            levels.append((r, [rows(feats[i]) for i in idx], w))
        return levels

    @staticmethod
    def _rows_at(tensors: List[torch.Tensor], positions: Optional[torch.Tensor], dtype) -> torch.Tensor:
        """The rows at ``positions`` (all when None) of a level's tensors, side by side: [N, P, sum C_i]."""
        got = [t if positions is None else t.index_select(1, positions) for t in tensors]
        return (torch.cat(got, 2) if len(got) > 1 else got[0]).to(dtype)

    def _taps(self, r: int, pixels: torch.Tensor):
        """Bilinear taps of output pixels in an r x r map, exactly as F.interpolate(align_corners=False)."""
        R = self.cfg.out_resolution
        ys = torch.div(pixels, R, rounding_mode="floor")
        xs = pixels % R

        def axis(v):
            src = ((v.to(torch.float64) + 0.5) * (r / R) - 0.5).clamp_min(0.0)
            i0 = src.floor().long().clamp_max(r - 1)
            i1 = (i0 + 1).clamp_max(r - 1)
            return i0, i1, (src - i0).to(torch.float32)

        y0, y1, wy = axis(ys)
        x0, x1, wx = axis(xs)
        idx = [y0 * r + x0, y0 * r + x1, y1 * r + x0, y1 * r + x1]
        wts = [(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx]
        return idx, wts

    def _hidden1(self, levels, pixels: torch.Tensor) -> torch.Tensor:
        """First layer's pre-activation at flat pixel indices ``pixels`` [P]: [N, P, K*h1].

        Per level below the output resolution, whichever of two equal computations reads fewer rows:
        project the positions the pixels' bilinear taps touch (a contiguous region touches few of them), or, when
        those are more than the pixels (scattered training samples on a large level), blend the features at the
        taps and project at the pixels. The projected positions of all levels are then read through one sparse
        interpolation matrix [P, positions] with four taps per pixel and level -- 4-5x faster, forward and
        backward, than upsampling each level's projection densely or gathering its taps row by row."""
        R, P, dev = self.cfg.out_resolution, pixels.numel(), pixels.device
        ar = torch.arange(P, device=dev)
        out = None
        stacked, rows, cols, vals, off = [], [], [], [], 0
        for r, t, w in levels:
            if r == R:                                  # at output resolution: gather the pixels' features
                x = self._rows_at(t, pixels, w.dtype)
            else:
                idx, wts = self._taps(r, pixels)
                used, inv = None, idx                   # small level: every position
                if r * r > self.small_level:
                    used, where = torch.unique(torch.cat(idx), return_inverse=True)
                    inv = list(where.split(P))
                if used is None or used.numel() <= P:   # project the positions read, interpolate later
                    stacked.append(self._rows_at(t, used, w.dtype) @ w.t())
                    rows += [ar] * 4
                    cols += [i + off for i in inv]
                    vals += wts
                    off += stacked[-1].shape[1]
                    continue
                x = None                                # blend the features at the taps, project at the pixels
                for i, a in zip(idx, wts):
                    term = self._rows_at(t, i, w.dtype) * a[None, :, None]
                    x = term if x is None else x + term
            h = x @ w.t()
            out = h if out is None else out + h
        if stacked:
            proj = torch.cat(stacked, 1) if len(stacked) > 1 else stacked[0]            # [N, S, D]
            N, S, D = proj.shape
            m = torch.sparse_coo_tensor(torch.stack([torch.cat(rows), torch.cat(cols)]),
                                        torch.cat(vals).to(proj.dtype), (P, S), check_invariants=False)
            flat = proj[0] if N == 1 else proj.permute(1, 0, 2).reshape(S, N * D)
            if flat.requires_grad:
                h = torch.sparse.mm(m, flat)
            else:   # no gradient (dense maps): the compressed-row form multiplies about twice as fast
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)     # "sparse CSR support is in beta"
                    h = m.to_sparse_csr() @ flat
            h = h[None] if N == 1 else h.view(P, N, D).permute(1, 0, 2)
            out = h if out is None else out + h
        return out + self.fc1.bias

    def _tail(self, h: torch.Tensor) -> torch.Tensor:
        """[B, K*h1] pre-activations -> per-member logits [B, K, C]."""
        K, (h1, h2) = self.cfg.members, self.cfg.hidden
        if not self.training:   # eval: each batch norm is a fixed affine map, folded into the next layer's weights
            (w2, b2), (w3, b3) = self._fold(self.bn1, self.w2, self.b2), self._fold(self.bn2, self.w3, self.b3)
            h = torch.einsum("bkh,koh->bko", F.relu(h).view(-1, K, h1), w2) + b2
            return torch.einsum("bkh,kch->bkc", F.relu(h), w3) + b3
        h = self.bn1(F.relu(h)).view(-1, K, h1)
        h = torch.einsum("bkh,koh->bko", h, self.w2) + self.b2
        h = self.bn2(F.relu(h).reshape(-1, K * h2)).view(-1, K, h2)
        return torch.einsum("bkh,kch->bkc", h, self.w3) + self.b3

    @staticmethod
    def _fold(bn: nn.BatchNorm1d, w: torch.Tensor, b: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Running-statistics ``bn`` over [K*i] followed by per-member ``w`` [K, o, i], ``b`` [K, o] -> the same map
        as one per-member affine layer (w', b'): saves two passes over the widest activation."""
        K, o, i = w.shape
        scale = (bn.weight / (bn.running_var + bn.eps).sqrt()).view(K, 1, i)
        shift = (bn.bias - bn.running_mean * scale.view(-1)).view(K, i, 1)
        return w * scale, b + torch.bmm(w, shift).view(K, o)

    def member_logits_at(self, feats: Sequence[torch.Tensor], pixels: torch.Tensor) -> torch.Tensor:
        """Every member's logits at flat pixel indices: [N, P, K, C]. Training uses this: the first layer is
        evaluated at the pixels' bilinear taps for every level larger than the pixel count, so a step's cost
        follows the sampled pixels, not the image area (1024 px costs about what 256 px does)."""
        self.check_features(feats)
        return self._members(self._project(feats), pixels)

    def _members(self, levels, pixels: torch.Tensor) -> torch.Tensor:
        h = self._hidden1(levels, pixels)
        N, P = h.shape[:2]
        return self._tail(h.reshape(N * P, -1)).view(N, P, self.cfg.members, self.cfg.num_classes)

    def logits_at(self, feats: Sequence[torch.Tensor], pixels: torch.Tensor) -> torch.Tensor:
        """Mean ensemble logits at flat pixel indices ``pixels`` [P] (same for every image): [N, C, P]."""
        return self.member_logits_at(feats, pixels).mean(2).permute(0, 2, 1)

    def cross_entropy(self, feats: Sequence[torch.Tensor], pixels: torch.Tensor, target: torch.Tensor,
                      chunk: int = 16384) -> torch.Tensor:
        """Mean cross-entropy of the ensemble's mean logits at ``pixels`` [P] against ``target`` [P] (same for
        every image), averaged over images."""
        return self.cross_entropy_per_image(feats, pixels, target, chunk=chunk).mean()

    def cross_entropy_per_image(self, feats: Sequence[torch.Tensor], pixels: torch.Tensor, target: torch.Tensor,
                                weight: Optional[torch.Tensor] = None, chunk: int = 16384,
                                total: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Per image n: sum_p weight[n, p] * CE(mean logits at pixels[p], target[n, p]) / total[n] -> [N], where
        ``total`` defaults to sum_p weight[n, p] (a weighted mean; a sampled estimate passes the full sum).

        ``target`` is [P] (the same for every image) or [N, P]; ``weight`` [N, P] (default all ones) lets each
        image count only its own pixels of a shared pixel list. Chunks bigger than ``chunk_budget`` are
        checkpointed: backward recomputes each chunk instead of keeping it, so the memory is the per-level
        projections plus one chunk, whatever the number of pixels."""
        self.check_features(feats)
        levels = self._project(feats)
        N, P, C = feats[0].shape[0], pixels.numel(), self.cfg.num_classes
        target = target.expand(N, P) if target.ndim == 1 else target
        weight = torch.ones(N, P, device=pixels.device) if weight is None else weight.to(torch.float32)
        out = None
        for s in range(0, P, chunk):
            pix, tgt, wt = pixels[s:s + chunk], target[:, s:s + chunk], weight[:, s:s + chunk]

            def part(pix=pix, tgt=tgt, wt=wt):
                logits = self._members(levels, pix).mean(2)                      # [N, p, C]
                ce = F.cross_entropy(logits.reshape(-1, C), tgt.reshape(-1), reduction="none").view(N, -1)
                return (ce * wt).sum(1)

            big = N * len(pix) * self.fc1.out_features > self.chunk_budget
            value = checkpoint(part, use_reentrant=False) if big and torch.is_grad_enabled() else part()
            out = value if out is None else out + value
        denominator = weight.sum(1) if total is None else total.to(weight)
        return out / denominator.clamp_min(1e-8)

    def forward(self, feats: Sequence[torch.Tensor], chunk: int = 16384) -> torch.Tensor:
        """Dense mean logits [N, C, R, R], ``chunk`` pixels at a time."""
        R = self.cfg.out_resolution
        self.check_features(feats)
        levels = self._project(feats)
        dev = feats[0].device
        parts = [self._members(levels, torch.arange(s, min(s + chunk, R * R), device=dev)).mean(2).permute(0, 2, 1)
                 for s in range(0, R * R, chunk)]
        return torch.cat(parts, 2).view(parts[0].shape[0], -1, R, R)

    @torch.no_grad()
    def predict(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Label maps [N, R, R] (uint8 when classes fit)."""
        was = self.training
        self.eval()
        try:
            lab = self(feats).argmax(1)
        finally:
            self.train(was)
        return lab.to(torch.uint8) if self.cfg.num_classes <= 256 else lab

    # -- the reference it must equal -------------------------------------------------------------------------
    def naive_logits(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Upsample everything, concatenate, run the MLP on every pixel (what the original does). Tests only."""
        R = self.cfg.out_resolution
        up = [f if f.shape[-1] == R else F.interpolate(f, size=(R, R), mode="bilinear", align_corners=False)
              for f in feats]
        x = torch.cat(up, 1)                                                      # [N, D, R, R]
        N = x.shape[0]
        h = self.fc1(x.permute(0, 2, 3, 1).reshape(N * R * R, -1))
        out = self._tail(h).mean(1)                                               # [N*R*R, C]
        return out.view(N, R, R, -1).permute(0, 3, 1, 2)


# ----------------------------------------------------------------------------------------------------------
# Persistence.


def save_branch(branch: SegBranch, path: os.PathLike, extra: Optional[dict] = None) -> Path:
    """The branch's weights and config (its generator's identity inside the config)."""
    return files.save_module(path, files.BRANCH, branch, asdict(branch.cfg), extra=extra)


def load_branch(path: os.PathLike, *, expect_generator: Optional[Dict[str, object]] = None) -> SegBranch:
    """Load a branch; with ``expect_generator`` (an identity) refuse one made for another model."""
    branch, _ = files.load_module(path, files.BRANCH, lambda cfg: SegBranch(BranchConfig(**cfg)),
                                  expect_generator=expect_generator,
                                  identity=lambda meta: meta["config"].get("generator", {}))
    return branch


# ----------------------------------------------------------------------------------------------------------
# The pipeline step.


def segment(G, branch: SegBranch, ws: torch.Tensor, *, batch: Optional[int] = None) -> np.ndarray:
    """W+ [N, num_ws, w_dim] -> part labels [N, R, R] by the branch; ``batch`` latents per generator pass (all at
    once when None)."""
    ws = ws[None] if ws.ndim == 2 else ws
    out = []
    with torch.no_grad():
        for part in ws.split(batch or len(ws)):
            _, feats = G.synthesis(part.to(G.w_avg.device), return_features=True)
            out.append(branch.predict(feats).cpu().numpy())
    return np.concatenate(out)
