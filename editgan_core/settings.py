"""Every tunable default of the EditGAN pipeline, named once, shared by the core, the CLI and the app.

The pipeline functions take these as keyword arguments whose defaults come from here, so changing a number here
changes it everywhere; nothing else in the project writes these numbers as literals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

from .errors import EditGANError


@dataclass(frozen=True)
class EmbedSettings:
    steps: int = 100                    # W+ optimisation steps after the encoder's guess
    lr: float = 0.05                    # Adam; ramps up over 5 % of the steps, then a cosine to zero
    perceptual_weight: float = 1.0      # loss = L2 + weight * perceptual distance


@dataclass(frozen=True)
class PivotalSettings:
    """Pivotal tuning (PTI, Roich et al. 2021): the synthesis weights tuned on one photo around its embedding."""
    steps: int = 100                    # Adam steps on the weights (PTI: 350 at 1024 px on a GPU)
    lr: float = 1e-3                    # PTI: 3e-4 over 350 steps; over 100, 1e-3 (bench/embedding.py pivotal)
    perceptual_weight: float = 1.0      # loss = L2 + weight * perceptual distance, as the embedding
    locality_weight: float = 0.1        # PTI's locality term: renders of latents near the pivot stay as they were
    locality_reach: float = 0.3         # those latents: pivot + reach x (a random sample's w - pivot)


@dataclass(frozen=True)
class EditSettings:
    """A mask edit (paper: weights 15 and 1, Adam lr 0.02, 100 steps)."""
    steps: int = 100
    lr: float = 0.02
    rgb_weight: float = 15.0            # L2 + perceptual outside the edit region
    ce_weight: float = 1.0              # branch cross-entropy inside the region
    margin: int = 5                     # pixels the region grows around the changed classes
    focus: float = 1.0                  # the repainted pixels together weigh focus x the rest of the region
    warmup: int = 10                    # linear learning-rate warm-up steps
    preview_every: int = 10             # steps between intermediate images
    ce_samples: int = 512               # a larger region's cross-entropy is estimated from this many draws a step
    tolerance: int = 0                  # px around a painted edge with less cross-entropy (off: it starves thin
    edge_weight: float = 0.0            #   strokes -- a wider mouth, a smile; see docs/results.md) and its weight
    delta_weight: float = 0.2           # x mean square of the change per W+ entry: smaller vectors, less damage
                                        #   to other faces (hand-drawn strokes, docs/results.md)
    colour_weight: float = 0.0          # painted pixels pulled to their class's present colour (x mean square)
    work_resolution: int = 256          # larger skip models optimise with the synthesis stopped here (coarse and
                                        #   middle W+ entries; full size rendered at the end); 0: exact, full size
    feature_weight: float = 20.0        # there, the activations outside the region (relative mean square) count
                                        #   this much beside the image term: the finer blocks render them


@dataclass(frozen=True)
class QualitySettings:
    """Below these an edit's readout says what to do (editing.EditQuality.advice)."""
    reached: float = 0.8                # share of the painted pixels the result's segmentation gives their class
    region_iou: float = 0.6             # IoU of the changed classes inside the edit region
    psnr_outside: float = 30.0          # dB, the image outside the region against before


@dataclass(frozen=True)
class RefineSettings:
    """Refinement after applying vectors (paper: 5 x RGB + 1 x CE, a few steps)."""
    choices: Tuple[int, ...] = (0, 10, 30)   # the step counts offered by the app and the CLI
    steps: int = 10                     # refine()'s default
    lr: float = 0.005
    rgb_weight: float = 5.0
    ce_weight: float = 1.0
    margin: int = 5
    batch: int = 16                     # images refined together
    ce_samples: int = 1024              # as EditSettings.ce_samples, over the union of the batch's regions


@dataclass(frozen=True)
class ApplySettings:
    slider_range: Tuple[float, float] = (-4.0, 4.0)   # the scale of one vector, in the app and in checks
    slider_step: float = 0.05
    preview_count: int = 8              # other samples a vector is previewed on
    preview_seed: int = 1234
    preview_psi: float = 0.7


@dataclass(frozen=True)
class SampleSettings:
    truncation_range: Tuple[float, float] = (0.0, 1.5)  # psi accepted by the app
    truncation: float = 0.7             # the app's default psi
    max_seed: int = 2 ** 32 - 1         # numpy RandomState seeds, as NVIDIA's generate.py
    max_seeds: int = 10_000             # seeds per call (CLI generate/label): a stated bound, not a memory error


@dataclass(frozen=True)
class BranchTrainSettings:
    """Few-shot training of the segmentation branch (DatasetGAN: Adam 1e-3, ensemble of 10 small MLPs)."""
    members: int = 10
    hidden: Tuple[int, int] = (128, 32)
    max_steps: int = 1500
    pixels_per_step: int = 4096
    lr: float = 1e-3
    eval_every: int = 100
    patience: int = 4
    val_fraction: float = 0.2
    embed_steps: int = 100              # embedding of annotated photos before training
    eval_side: int = 256                # held-out images are scored on a grid of at most this many rows and columns


@dataclass(frozen=True)
class LabelSettings:
    """Labelling generator samples (or photos) with a segmentation model (editgan_core/pipeline/labeling.py)."""
    count: int = 16                     # images labelled when no seeds are given (seeds 0..count-1)
    batch: int = 4                      # images per pass of the labeler


@dataclass(frozen=True)
class PasteSettings:
    """Handing an edit back at the photo's size (editgan_core/pipeline/photo.py), as fractions of the crop box's side."""
    dilate: float = 0.02                # the edit region grows by this before blending
    feather: float = 0.03               # then fades out over this
    levels: float = 12.0                # a colour change (3x3 mean of the largest channel's, model pixels) above
                                        # this many levels of 255 is the edit's; below it, the embedding's noise
    near: float = 0.05                  # colour changes count within this x the side of a part that moved
    part_share: float = 0.25            # a part of which this share moved changed shape: the model draws it anew
    min_part: float = 0.001             # moved parts or colour changes smaller than this x the square are specks
    blend: str = "poisson"              # where parts changed shape: 'delta', 'poisson' or 'replace' (hand_back)


@dataclass(frozen=True)
class AlignSettings:
    """Finding and cutting faces in photos (editgan_core/pipeline/align.py)."""
    detect_side: int = 1024             # the face detector runs on a copy at most this long (landmarks: full size)
    min_score: float = 0.3              # weaker detections are not faces (dlib's HOG finds weak false ones)
    small_face: float = 0.5             # a face square under this x the model's side gets a "soft result" note


@dataclass(frozen=True)
class BudgetSettings:
    """Memory as a budget (editgan_core/budget.py): estimates of a long action's peak, checked before it starts."""
    usable: float = 0.85                # share of the free memory (or disk) one action may plan to use
    overhead: int = 768 << 20           # bytes every long action adds (optimiser, losses, allocator arenas)
    grad_factor: float = 8.0            # bytes held by an edit's pass with gradients per float32 byte of its
                                        #   features (bench/budget.py: an exact edit at 512 and 1024 px)
    embed_factor: float = 13.0          # the same for embedding (measured 11.9-13.0x at 256-1024 px)
    forward_factor: float = 2.0         # a pass without gradients that keeps its features (them, and the pass)
    eval_factor: float = 6.0            # a dense branch evaluation: copies of one chunk's first-layer activations
    eval_chunk: int = 4096              # pixels per chunk of the held-out evaluation in branch training
    smallest_work: int = 128            # an edit that does not fit shrinks its working resolution down to this


EMBED = EmbedSettings()
BUDGET = BudgetSettings()
PIVOTAL = PivotalSettings()
EDIT = EditSettings()
QUALITY = QualitySettings()
REFINE = RefineSettings()
APPLY = ApplySettings()
SAMPLE = SampleSettings()
BRANCH = BranchTrainSettings()
LABEL = LabelSettings()
PASTE = PasteSettings()
ALIGN = AlignSettings()
# The app trains while the user waits: fewer steps, evaluated more often (progress every 50 steps).
INTERACTIVE_BRANCH = BranchTrainSettings(max_steps=600, eval_every=50)


def check_number(what: str, value, lo: Optional[float] = None, hi: Optional[float] = None, *,
                 integer: bool = False) -> float:
    """A number a user gave (a CLI option, an API field, a file's value): refused with a message naming ``what``
    when it is not a number, not finite, or outside [lo, hi]; -> the number (an int with ``integer``)."""
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, AttributeError):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:30] + "..."
        raise EditGANError(f"{what} must be a number, got {shown}") from None
    if not math.isfinite(number):
        raise EditGANError(f"{what} must be a finite number, got {value!r}")
    if integer:
        if number != int(number):
            raise EditGANError(f"{what} must be a whole number, got {value!r}")
        number = int(number)
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        span = f"{lo:g} to {hi:g}" if lo is not None and hi is not None else \
            (f"at least {lo:g}" if lo is not None else f"at most {hi:g}")
        raise EditGANError(f"{what} is out of range: it must be {span}, got {number:g}")
    return number


def check_scale(name: str, value: float, scale_range: Tuple[float, float] = APPLY.slider_range) -> float:
    """A vector's scale, refused outside the slider's range (the vector's own suggested range, widened to the
    app's), so a script cannot ask for what the UI would not show."""
    lo, hi = min(scale_range[0], APPLY.slider_range[0]), max(scale_range[1], APPLY.slider_range[1])
    return check_number(f"the scale for {name!r}", value, lo, hi)


def check_refine_steps(steps: int) -> int:
    if int(steps) not in REFINE.choices:
        raise EditGANError(f"refinement steps must be one of {', '.join(map(str, REFINE.choices))}")
    return int(steps)
