"""ToyFaces: a procedural face world with exact part masks and attributes (see render.py)."""

from .palette import CLASS_INDEX, CLASS_NAMES, NUM_CLASSES, PALETTE, colorize, decode  # noqa: F401
from .render import ATTRIBUTES, NUM_ATTRIBUTES, FaceParams, params_from_gaussian, render, render_seed, sample_params  # noqa: F401
