"""ToyFaces: a procedural cartoon-face world whose every image comes with its exact part mask and attributes.

``render_seed(seed, res)`` -> (RGB uint8 [res, res, 3], labels uint8 [res, res], FaceParams). Deterministic:
the same seed and resolution give the same bytes. Shapes are analytic regions evaluated on a supersampled
grid; the image is the box-filtered average of the samples (anti-aliased) and the mask is the majority
label of the same samples, so image and mask are aligned by construction.

Coordinates: the canvas spans [-1, 1] in x (right) and y (down). Faces are built in a face frame that is
then tilted, shifted and scaled; features move with the head turn.
"""

from __future__ import annotations

import colorsys
import dataclasses
import math
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

from ..errors import InputError
from ..pipeline.align import ffhq_crop
from .palette import CLASS_INDEX, NUM_CLASSES

# Continuous attributes, each in [0, 1] (0.5 = neutral for signed ones). Order = the attribute vector.
ATTRIBUTES: List[str] = [
    "smile",          # mouth-corner curvature: 0 frown, 0.5 straight, 1 big smile
    "mouth_open",     # 0 closed .. 1 wide open
    "mouth_width",
    "eye_size",
    "eye_spacing",
    "gaze_x",         # 0 left .. 1 right
    "gaze_y",         # 0 up .. 1 down
    "brow_angle",     # 0 sad (inner ends up) .. 1 angry (inner ends down)
    "nose_size",
    "hair_length",    # 0 short .. 1 below the shoulders
    "hair_style",     # 0..1 in four steps: neat, fringe, side part, voluminous
    "face_width",
    "skin_tone",      # 0 light .. 1 dark
    "hair_hue",
    "hair_lightness",
    "iris_hue",
    "bg_hue",
    "bg_gradient",    # strength of the background gradient
    "light_x",        # light direction, 0 from the left .. 1 from the right
    "light_y",        # 0 from above .. 1 from below
    "head_turn",      # 0 turned left .. 1 turned right
    "head_tilt",      # 0 tilted left .. 1 tilted right
    "offset_x",
    "offset_y",
    "clothing_hue",
]
NUM_ATTRIBUTES = len(ATTRIBUTES)
HAIR_STYLES = ("neat", "fringe", "side part", "voluminous")


@dataclass
class FaceParams:
    """One face. Every field is in [0, 1]; see ATTRIBUTES for meanings."""

    smile: float = 0.5
    mouth_open: float = 0.2
    mouth_width: float = 0.5
    eye_size: float = 0.5
    eye_spacing: float = 0.5
    gaze_x: float = 0.5
    gaze_y: float = 0.5
    brow_angle: float = 0.5
    nose_size: float = 0.5
    hair_length: float = 0.3
    hair_style: float = 0.0
    face_width: float = 0.5
    skin_tone: float = 0.3
    hair_hue: float = 0.08
    hair_lightness: float = 0.3
    iris_hue: float = 0.6
    bg_hue: float = 0.55
    bg_gradient: float = 0.5
    light_x: float = 0.5
    light_y: float = 0.3
    head_turn: float = 0.5
    head_tilt: float = 0.5
    offset_x: float = 0.5
    offset_y: float = 0.5
    clothing_hue: float = 0.6

    def vector(self) -> np.ndarray:
        return np.array([getattr(self, a) for a in ATTRIBUTES], dtype=np.float32)

    def replace(self, **changes: float) -> "FaceParams":
        unknown = set(changes) - set(ATTRIBUTES)
        if unknown:
            raise InputError(f"unknown ToyFaces attributes {sorted(unknown)}; known: {ATTRIBUTES}")
        return dataclasses.replace(self, **{k: float(np.clip(v, 0.0, 1.0)) for k, v in changes.items()})

    @property
    def style_index(self) -> int:
        return int(min(round(self.hair_style * 3), 3))


def sample_params(seed: int) -> FaceParams:
    """Draw a face from the ToyFaces distribution, deterministically from ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x70F4CE5]))
    u = rng.random(NUM_ATTRIBUTES)
    p = {a: float(v) for a, v in zip(ATTRIBUTES, u)}
    # Shape the distribution: most faces near neutral pose, styles discrete, hair colours natural-ish.
    for k in ("head_turn", "head_tilt", "offset_x", "offset_y", "gaze_x", "gaze_y", "light_x"):
        p[k] = float(np.clip(0.5 + rng.normal(0, 0.18), 0, 1))
    p["hair_style"] = float(rng.integers(0, 4) / 3)
    p["hair_hue"] = float((rng.random() * 0.12 + (0.0 if rng.random() < 0.85 else 0.5)) % 1.0)
    p["skin_tone"] = float(rng.beta(2, 2))
    return FaceParams(**p)


_NORMAL_ATTRS = ("head_turn", "head_tilt", "offset_x", "offset_y", "gaze_x", "gaze_y", "light_x")


def params_from_gaussian(x) -> FaceParams:
    """A face from 25 standard-normal numbers, with the same per-attribute distributions as ``sample_params``.

    Each attribute is a smooth (piecewise for the discrete ones) function of its own coordinate: uniform
    attributes use the normal CDF, pose-like ones 0.5 + 0.18 x (clipped), skin tone the inverse CDF of
    Beta(2, 2), hair style four equal bins, hair hue the 85/15 mixture of natural and dyed hues. A generator
    trained on ``render(params_from_gaussian(z[:25]))`` therefore samples the ToyFaces distribution from
    Gaussian latents.
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if x.size != NUM_ATTRIBUTES:
        raise InputError(f"need {NUM_ATTRIBUTES} numbers, got {x.size}")
    u = 0.5 * (1.0 + np.array([math.erf(v / math.sqrt(2.0)) for v in x]))
    u = np.clip(u, 0.0, 1.0 - 1e-9)
    p = {a: float(v) for a, v in zip(ATTRIBUTES, u)}
    for i, a in enumerate(ATTRIBUTES):
        if a in _NORMAL_ATTRS:
            p[a] = float(np.clip(0.5 + 0.18 * x[i], 0, 1))
    ua = p["hair_style"]
    p["hair_style"] = float(min(int(ua * 4), 3) / 3)
    uh = p["hair_hue"]
    p["hair_hue"] = float(uh / 0.85 * 0.12) if uh < 0.85 else float(0.5 + (uh - 0.85) / 0.15 * 0.12)
    p["skin_tone"] = float(0.5 - math.sin(math.asin(1.0 - 2.0 * p["skin_tone"]) / 3.0))  # Beta(2,2) quantile
    return FaceParams(**p)


# ------------------------------------------------------------------------------------------------
# Colours.

def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, np.clip(s, 0, 1), np.clip(v, 0, 1)), dtype=np.float32)


def _colours(p: FaceParams) -> Dict[str, np.ndarray]:
    t = p.skin_tone
    skin = (1 - t) * np.array([1.0, 0.86, 0.74]) + t * np.array([0.45, 0.30, 0.20])
    hair = _hsv(p.hair_hue, 0.55 + 0.3 * (1 - p.hair_lightness), 0.12 + 0.75 * p.hair_lightness)
    return {
        "bg0": _hsv(p.bg_hue, 0.35, 0.85),
        "bg1": _hsv(p.bg_hue + 0.08, 0.55, 0.85 - 0.5 * p.bg_gradient),
        "skin": skin.astype(np.float32),
        "ears": (skin * 0.9).astype(np.float32),
        "neck": (skin * 0.8).astype(np.float32),
        "nose": (skin * 0.86).astype(np.float32),
        "hair": hair,
        "brows": hair * 0.6,
        "white": np.array([0.97, 0.97, 0.95], np.float32),
        "iris": _hsv(p.iris_hue, 0.75, 0.6),
        "pupil": np.array([0.05, 0.05, 0.08], np.float32),
        "lips": (0.55 * skin + 0.45 * np.array([0.8, 0.2, 0.25])).astype(np.float32),
        "mouth": np.array([0.35, 0.06, 0.08], np.float32),
        "teeth": np.array([0.96, 0.95, 0.9], np.float32),
        "clothing": _hsv(p.clothing_hue, 0.6, 0.6),
    }


# ------------------------------------------------------------------------------------------------
# Geometry.

def _ellipse(x, y, cx, cy, ax, ay):
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 <= 1.0


def _geometry(p: FaceParams) -> Dict[str, float]:
    a = 0.34 + 0.12 * p.face_width          # face half-width
    return dict(
        a=a, b=0.47,                         # face half-height
        turn=(p.head_turn - 0.5) * 2,        # [-1, 1]
        tilt=(p.head_tilt - 0.5) * 0.5,      # radians
        ox=(p.offset_x - 0.5) * 0.16, oy=(p.offset_y - 0.5) * 0.12,
        scale=1.3,
        eye_y=-0.04,
        eye_dx=0.13 + 0.08 * p.eye_spacing,
        eye_w=0.055 + 0.045 * p.eye_size,
        mouth_y=0.25,
        mouth_w=0.09 + 0.09 * p.mouth_width,
        nose_s=0.045 + 0.045 * p.nose_size,
    )


def _labels_and_colours(p: FaceParams, n: int) -> Tuple[np.ndarray, np.ndarray]:
    """Label [n, n] and colour [n, n, 3] at n x n sample points (painter's order, back to front)."""
    g = _geometry(p)
    col = _colours(p)
    ci = CLASS_INDEX
    c = (np.arange(n, dtype=np.float32) + 0.5) / n * 2 - 1
    X, Y = np.meshgrid(c, c)
    # Canvas -> face frame: undo shift, tilt and scale around the head centre.
    hx, hy = g["ox"], g["oy"] - 0.02
    ct, st = math.cos(g["tilt"]), math.sin(g["tilt"])
    dx, dy = X - hx, Y - hy
    x = (ct * dx + st * dy) / g["scale"]
    y = (-st * dx + ct * dy) / g["scale"]
    turn = g["turn"]
    fx = x - 0.07 * turn                      # features slide with the head turn
    label = np.zeros((n, n), np.uint8)
    material = np.zeros((n, n), np.uint8)      # index into `mats`; 0 = background gradient
    mats: List[Tuple[np.ndarray, bool]] = [(np.zeros(3, np.float32), False)]
    mat_ids: Dict[Tuple[str, bool], int] = {}

    def paint(region, cls, key, shaded=True):
        label[region] = ci[cls]
        k = (key, shaded)
        if k not in mat_ids:
            mat_ids[k] = len(mats)
            mats.append((col[key], shaded))
        material[region] = mat_ids[k]

    a, b = g["a"], g["b"]
    chin_narrow = lambda yy: a * (1 - 0.22 * np.clip(yy / b, 0, 1) ** 2)  # noqa: E731
    # Clothing: shoulders below the neck, with a round neckline.
    shoulders = (y >= 0.62 + 0.35 * (x / 1.1) ** 2) & ~_ellipse(x, y, 0, 0.62, 0.16, 0.1)
    paint(shoulders, "clothing", "clothing")
    # Hair behind the head (long hair reaches down past the chin).
    vol = 1.14 + (0.12 if p.style_index == 3 else 0.0)
    hair_top = _ellipse(x, y, 0.02 * turn, -0.1, a * vol, b * 1.02)
    length = 0.05 + 0.85 * p.hair_length
    hair_long = (np.abs(x - 0.02 * turn) <= a * vol * (1 - 0.15 * np.clip((y - 0.0) / (length + 1e-6), 0, 1))) \
        & (y >= -0.1) & (y <= length + 0.0 * x) \
        & ~((y > 0.05) & (np.abs(x) < a * 0.55))            # face/neck opening
    paint(hair_top | hair_long, "hair", "hair")
    # Neck.
    neck = (np.abs(x) <= 0.14) & (y >= 0.2) & (y <= 0.7)
    paint(neck & (label != ci["hair"]) | (neck & (y > length)), "neck", "neck")
    # Ears (the far one shrinks with the turn).
    for side in (-1, 1):
        ear_scale = 1 - 0.35 * max(0.0, side * -turn)
        paint(_ellipse(x, y, side * (chin_narrow(0.0) + 0.005) + 0.04 * turn, g["eye_y"] + 0.06,
                       0.055 * ear_scale, 0.095), "ears", "ears")
    # Face.
    face_cx = 0.025 * turn
    face = ((x - face_cx) / chin_narrow(y)) ** 2 + (y / b) ** 2 <= 1.0
    paint(face, "skin", "skin")
    # Hair in front: the hairline cuts the top of the face; the style shapes it.
    s = p.style_index
    if s == 0:
        line = -0.30 + 0.06 * (fx / a) ** 2
    elif s == 1:
        line = -0.16 + 0.025 * np.cos(fx * 28) + 0.02 * (fx / a) ** 2
    elif s == 2:
        line = -0.32 + 0.22 * np.clip((fx + 0.1) / a, -1, 1) * (fx > -0.1) + 0.04 * (fx / a) ** 2
    else:
        line = -0.26 + 0.1 * (fx / a) ** 2
    front = hair_top & (y < line)
    paint(front, "hair", "hair")

    # Eyebrows, eyes, irises.
    ew, eh = g["eye_w"], g["eye_w"] * 0.62
    ang = (p.brow_angle - 0.5) * 0.7
    for side in (-1, 1):
        ecx, ecy = side * g["eye_dx"] * (1 - 0.12 * side * turn), g["eye_y"]
        ex = fx - ecx
        # brow: tapered, slightly arched band above the eye, rotated by the brow angle
        bcy = ecy - eh - 0.055
        ca, sa = math.cos(side * ang), math.sin(side * ang)
        bx = ca * ex + sa * (y - bcy)
        by = -sa * ex + ca * (y - bcy)
        L = ew * 1.35
        u = np.clip(bx / L, -1, 1)
        brow = (np.abs(bx) <= L) & (np.abs(by + 0.012 * (1 - u ** 2)) <= 0.022 * (1 - 0.45 * u ** 2))
        paint(brow & face | brow & (label == ci["hair"]), "eyebrows", "brows")
        white = _ellipse(ex, y, 0, ecy, ew, eh)
        paint(white, "eye_whites", "white", shaded=False)
        gx, gy = (p.gaze_x - 0.5) * 2, (p.gaze_y - 0.5) * 2
        icx, icy = gx * ew * 0.45, ecy + gy * eh * 0.35
        ir = eh * 0.92
        iris = white & _ellipse(ex, y, icx, icy, ir, ir)
        paint(iris, "irises", "iris", shaded=False)
        pupil = iris & _ellipse(ex, y, icx, icy, ir * 0.45, ir * 0.45)
        paint(pupil, "irises", "pupil", shaded=False)
    # Nose: a rounded wedge widening downwards, with a bulb at the tip.
    ns = g["nose_s"]
    ny0, ny1 = 0.14 - 1.7 * ns, 0.14
    tt = np.clip((y - ny0) / (ny1 - ny0), 0, 1)
    wedge = (y >= ny0) & (y <= ny1) & (np.abs(fx) <= 0.55 * ns * tt ** 0.8 + 0.01)
    bulb = _ellipse(fx, y, 0, ny1 - 0.2 * ns, 0.75 * ns, 0.45 * ns)
    paint((wedge | bulb) & face, "nose", "nose")
    # Mouth: a centre curve bent by the smile, opened by mouth_open; lips frame the opening.
    mw, my = g["mouth_w"], g["mouth_y"]
    sm = (p.smile - 0.5) * 2
    q = np.clip(fx / mw, -1, 1)
    inside = np.abs(fx) < mw
    yc = my - sm * 0.055 * q ** 2
    env = np.sqrt(np.clip(1 - q ** 2, 0, 1))
    h = (0.005 + 0.075 * p.mouth_open) * env
    top, bot = yc - 0.55 * h, yc + 1.0 * h
    upper = inside & (y >= top - (0.018 + 0.008 * env) * env - 0.004) & (y < top)
    lower = inside & (y > bot) & (y <= bot + (0.026 + 0.006 * env) * env + 0.004)
    opening = inside & (y >= top) & (y <= bot)
    paint((upper | lower) & face, "lips", "lips")
    paint(opening & face, "mouth", "mouth", shaded=False)
    teeth = opening & face & (y <= top + 0.35 * (bot - top)) & (np.abs(fx) < 0.8 * mw)
    paint(teeth, "mouth", "teeth", shaded=False)

    # Colours, once per material: background gradient, flat or light-shaded part colours.
    t = np.clip(0.5 + 0.5 * (0.6 * X + 0.8 * Y), 0, 1)[..., None]
    colour = col["bg0"] * (1 - t) + col["bg1"] * t
    rgb = np.stack([m[0] for m in mats]).astype(np.float32)
    lx, ly = (p.light_x - 0.5) * 2, (p.light_y - 0.5) * 2
    shade = 1.0 + 0.22 * (lx * x + ly * y) / 0.6
    shaded = np.array([m[1] for m in mats])[material]
    fg = material > 0
    part = rgb[material] * np.where(shaded, shade, 1.0)[..., None]
    colour = np.where(fg[..., None], part, colour)
    return label, np.clip(colour, 0, 1)


def landmarks(p: FaceParams, res: int) -> Dict[str, Tuple[float, float]]:
    """The face's alignment landmarks in a ``res``-pixel render, in continuous pixel coordinates (pixel i covers
    [i, i + 1]): the eye centres (image left and right) and the mouth corners, exactly where render() draws them."""
    g = _geometry(p)
    turn = g["turn"]
    hx, hy = g["ox"], g["oy"] - 0.02
    ct, st = math.cos(g["tilt"]), math.sin(g["tilt"])
    sm = (p.smile - 0.5) * 2

    def canvas(fx: float, y: float) -> Tuple[float, float]:
        x = fx + 0.07 * turn                   # face frame (features slide with the turn) -> canvas -> pixels
        X = hx + g["scale"] * (ct * x - st * y)
        Y = hy + g["scale"] * (st * x + ct * y)
        return ((X + 1) / 2 * res, (Y + 1) / 2 * res)

    eye = lambda side: canvas(side * g["eye_dx"] * (1 - 0.12 * side * turn), g["eye_y"])  # noqa: E731
    corner = lambda side: canvas(side * g["mouth_w"], g["mouth_y"] - sm * 0.055)          # noqa: E731
    return {"eye_left": eye(-1), "eye_right": eye(1), "mouth_left": corner(-1), "mouth_right": corner(1)}


def alignment_framing() -> Tuple[float, Tuple[float, float]]:
    """(zoom, shift) that reframe FFHQ's alignment square (editgan_core.pipeline.align.ffhq_crop) to ToyFaces' own frame: a
    face with neutral geometry (FaceParams' defaults: upright, centred, no turn) is then cut as the render itself."""
    lm = landmarks(FaceParams(), 1)
    c = ffhq_crop(lm["eye_left"], lm["eye_right"], lm["mouth_left"], lm["mouth_right"])
    return 1.0 / c.side, (0.5 - c.cx, 0.5 - c.cy)


def render(p: FaceParams, res: int = 128, *, supersample: int = 4) -> Tuple[np.ndarray, np.ndarray]:
    """FaceParams -> (RGB uint8 [res, res, 3], labels uint8 [res, res]); res a power of two >= 8."""
    if res < 8 or res & (res - 1):
        raise InputError(f"ToyFaces resolution must be a power of two >= 8, got {res}")
    s = int(supersample)
    label, colour = _labels_and_colours(p, res * s)
    img = colour.reshape(res, s, res, s, 3).mean(axis=(1, 3))
    img = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    # Majority label of each pixel's samples (ties -> lower class index, deterministic).
    blocks = label.reshape(res, s, res, s).transpose(0, 2, 1, 3).reshape(res, res, s * s)
    counts = (blocks[..., None] == np.arange(NUM_CLASSES, dtype=np.uint8)).sum(axis=2)
    mask = counts.argmax(-1).astype(np.uint8)
    return img, mask


def render_seed(seed: int, res: int = 128, *, supersample: int = 4, **changes: float
                ) -> Tuple[np.ndarray, np.ndarray, FaceParams]:
    """Render face ``seed``; keyword attributes (e.g. smile=0.9) override the sampled ones."""
    p = sample_params(seed)
    if changes:
        p = p.replace(**changes)
    img, mask = render(p, res, supersample=supersample)
    return img, mask, p
