"""Labelling images with a labeler (a semantic-segmentation model: :mod:`editgan_core.loaders.labelers`), mapped
onto a branch's classes.

The labeler's label set becomes the branch's classes through a :class:`ClassMap` the user can edit (JSON
``{"labeler label": "branch class"}``): :meth:`ClassMap.default` merges left/right pairs (``l_eye`` + ``r_eye``
-> ``eye``) and the lips (``u_lip`` + ``l_lip`` -> ``lips``), keeps every other label as a class of its own, and
sends the background to ``background``. :func:`label_images` = predict + map. Which parser fits a model
(``parser_for``), and the colours of new classes (``class_palette``), are here too.
"""

from __future__ import annotations

import colorsys
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from ..errors import EditGANError
from ..loaders.labelers import Labeler
from ..loaders.registry import CHECKPOINTS_DIR, PARSERS, REGISTRY, ModelSpec
from ..storage import files

BACKGROUND = "background"
_BACKGROUND_NAMES = ("background", "bg", "__background__", "_background_", "unlabeled", "void")
_SIDE_PREFIXES = (("l_", "r_"), ("left_", "right_"), ("left ", "right "))
_MERGES = ((("u_lip", "l_lip"), "lips"), (("upper_lip", "lower_lip"), "lips"))

Color = Tuple[int, int, int]


# ----------------------------------------------------------------------------------------------------------
# Labeler labels -> branch classes.


@dataclass
class ClassMap:
    """``table``: labeler label name -> branch class name (``background`` allowed). Labeler labels the table
    does not name go to ``background``."""
    table: Dict[str, str]

    def __post_init__(self) -> None:
        if not isinstance(self.table, dict) or not self.table:
            raise EditGANError("a class map is a non-empty JSON object {\"labeler label\": \"branch class\"}")
        bad = [k for k, v in self.table.items() if not isinstance(k, str) or not isinstance(v, str) or not v.strip()]
        if bad:
            raise EditGANError(f"a class map maps label names to class names (non-empty strings); not: "
                               f"{', '.join(map(repr, bad))}")
        self.table = {k: v.strip() for k, v in self.table.items()}

    def classes(self) -> List[str]:
        """The branch classes it produces: ``background`` first, then in the order the table first names them."""
        out = [BACKGROUND]
        for v in self.table.values():
            if v not in out:
                out.append(v)
        return out

    def unmapped(self, label_names: Sequence[str]) -> List[str]:
        """Labeler labels the table does not name (they go to background)."""
        return [n for n in dict.fromkeys(label_names) if n not in self.table]

    def check(self, label_names: Sequence[str], class_names: Sequence[str]) -> None:
        """Refuse a table naming labels the labeler lacks, or classes ``class_names`` lacks, listing them."""
        unknown = [k for k in self.table if k not in set(label_names)]
        if unknown:
            raise EditGANError(f"the class map names labels the labeler does not have: {', '.join(unknown)} (its "
                               f"labels: {', '.join(label_names)})")
        absent = [c for c in self.classes() if c not in set(class_names)]
        if absent:
            raise EditGANError(f"the class map gives classes that are not among the branch's classes: "
                               f"{', '.join(absent)} (the classes: {', '.join(class_names)})")

    def apply(self, ids: np.ndarray, label_names: Sequence[str], class_names: Sequence[str]) -> np.ndarray:
        """Labeler ids [...] -> branch labels (uint8 indices into ``class_names``)."""
        self.check(label_names, class_names)
        if len(class_names) > 256:
            raise EditGANError(f"at most 256 branch classes; got {len(class_names)}")
        index = {c: i for i, c in enumerate(class_names)}
        lut = np.array([index[self.table.get(n, BACKGROUND)] for n in label_names], np.uint8)
        ids = np.asarray(ids)
        if ids.size and (ids.min() < 0 or ids.max() >= len(lut)):
            raise EditGANError(f"label ids outside 0..{len(lut) - 1} for a labeler with {len(lut)} labels")
        return lut[ids.astype(np.int64)]

    @classmethod
    def default(cls, label_names: Sequence[str]) -> "ClassMap":
        """Left/right pairs merged (``l_eye`` + ``r_eye`` -> ``eye``, ``l_brow``/``r_brow`` -> ``brow``,
        ``l_ear``/``r_ear`` -> ``ear``), ``u_lip`` + ``l_lip`` -> ``lips``, a background label (``background``,
        ``bg``, ...; else the 0-th label) -> ``background``, every other label a class of its own."""
        names = [str(n) for n in label_names]
        if not names:
            raise EditGANError("the labeler has no labels")
        present = set(names)
        bg = {n for n in names if n.strip().lower() in _BACKGROUND_NAMES} or {names[0]}
        merged = {}
        for group, target in _MERGES:
            if all(g in present for g in group):
                merged.update({g: target for g in group})
        table: Dict[str, str] = {}
        for n in names:
            if n in table:
                continue
            if n in bg:
                table[n] = BACKGROUND
            elif n in merged:
                table[n] = merged[n]
            else:
                table[n] = _unsided(n, present) or n
        return cls(table)

    @classmethod
    def from_json(cls, path_or_text: Union[str, os.PathLike]) -> "ClassMap":
        """A JSON object {label: class} -- a file, or the text itself."""
        text, where = path_or_text, "the class map"
        if isinstance(path_or_text, os.PathLike) or not str(path_or_text).lstrip().startswith("{"):
            where = str(path_or_text)
            try:
                text = Path(path_or_text).read_text(encoding="utf-8")
            except FileNotFoundError:
                raise EditGANError(f"no such class map file: {where}") from None
            except OSError as e:
                raise EditGANError(f"{where}: {e.strerror or e}") from None
        try:
            obj = json.loads(text)
        except ValueError as e:
            raise EditGANError(f"{where}: not valid JSON ({e})") from None
        if not isinstance(obj, dict):
            raise EditGANError(f"{where}: a class map is a JSON object {{\"labeler label\": \"branch class\"}}")
        try:
            return cls(obj)
        except EditGANError as e:
            raise EditGANError(f"{where}: {e}") from None

    def to_json(self) -> str:
        return json.dumps(self.table, indent=1, ensure_ascii=False) + "\n"


def _unsided(name: str, present) -> Optional[str]:
    """'l_eye' with 'r_eye' present -> 'eye' (also left_/right_); None when it has no other side."""
    for a, b in _SIDE_PREFIXES:
        for mine, other in ((a, b), (b, a)):
            if name.startswith(mine) and len(name) > len(mine) and other + name[len(mine):] in present:
                return name[len(mine):]
    return None


def label_images(labeler: Labeler, images: np.ndarray, class_map: ClassMap, class_names: Sequence[str]
                 ) -> np.ndarray:
    """uint8 images [N, R, R, 3] -> branch labels [N, R, R] uint8 (indices into ``class_names``)."""
    class_map.check(labeler.label_names, class_names)     # before the model runs
    return class_map.apply(labeler.predict(images), labeler.label_names, class_names)


# ----------------------------------------------------------------------------------------------------------
# Which parser fits a generator; the colours of a map's classes.


def _model_spec(model_spec_or_ref):
    if isinstance(model_spec_or_ref, ModelSpec):
        return model_spec_or_ref
    meta = getattr(model_spec_or_ref, "meta", None)      # a LoadedGenerator: the ref it was loaded by
    ref = meta.get("ref") if isinstance(meta, dict) else model_spec_or_ref
    if not isinstance(ref, (str, os.PathLike)):
        return None
    spec = REGISTRY.get(str(ref))
    if spec is not None:
        return spec
    try:   # a built-in model by its path
        path = Path(os.path.expanduser(str(ref))).resolve()
    except (OSError, RuntimeError):
        return None
    return next((s for s in REGISTRY.values() if s.local_dir and (CHECKPOINTS_DIR / s.local_dir).resolve() == path),
                None)


def model_domain(model_spec_or_ref) -> Optional[str]:
    spec = _model_spec(model_spec_or_ref)
    return spec.domain if spec is not None else None


def parser_for(model_spec_or_ref) -> Optional[str]:
    """The registry parser that fits a generator (a ModelSpec, a registry name, a built-in model's path or a
    loaded model): one made for that very model, else one for its domain; None when none fits (label by hand)."""
    spec = _model_spec(model_spec_or_ref)
    if spec is None or not spec.domain:
        return None
    for p in PARSERS.values():
        if spec.name in p.models:
            return p.name
    for p in PARSERS.values():
        if not p.models and p.domain == spec.domain:
            return p.name
    return None


def fit_note(model_spec_or_ref, labeler: Labeler, model_name: Optional[str] = None) -> Optional[str]:
    """A word when the labeler was made for another kind of image than the generator draws, else None."""
    spec = _model_spec(model_spec_or_ref)
    name = model_name or (spec.name if spec is not None else str(model_spec_or_ref))
    if spec is None or not spec.domain or not labeler.domain:
        return None
    if labeler.domain != spec.domain:
        return (f"the labeler {labeler.ref} parses {labeler.domain} but {name} draws {spec.domain}: its labels may "
                f"mean little here; check the masks (or label by hand)")
    made_for = getattr(labeler.spec, "models", ()) or ()
    if made_for and spec.name not in made_for:
        return (f"the labeler {labeler.ref} was made for {', '.join(made_for)}, not {name}: check the masks")
    return None


def class_palette(names: Sequence[str], base: Optional[Dict[str, Sequence[int]]] = None) -> List[Color]:
    """A colour per class: ``base``'s colour where it names the class (e.g. the model's branch palette), black for
    background, else distinct colours in a fixed sequence (the same names in the same order give the same
    colours), each far from those already used."""
    base = {str(k): tuple(int(c) for c in v) for k, v in (base or {}).items()}
    out: List[Color] = []
    for n in names:
        c = base.get(n)
        if c is None and n == BACKGROUND:
            c = (0, 0, 0)
        if c is not None and c in out:
            c = None       # two classes may never share a colour
        out.append(c)
    used = [c for c in out if c is not None]
    candidates = _candidate_colors()
    for i, c in enumerate(out):
        if c is not None:
            continue
        for thr in (120, 80, 48, 24, 8, 1):
            pick = next((k for k in candidates if k not in used and
                         all(sum((a - b) ** 2 for a, b in zip(k, u)) >= thr ** 2 for u in used)), None)
            if pick is not None:
                break
        if pick is None:
            raise EditGANError(f"too many classes for distinct colours ({len(names)})")
        out[i] = pick
        used.append(pick)
    return out


def _candidate_colors() -> List[Color]:
    cols = []
    for k in range(1024):
        h = (k * 0.618033988749895) % 1.0
        s, v = ((0.9, 0.95), (0.55, 0.9), (0.9, 0.6), (0.35, 0.75))[(k // 7) % 4]
        r, g, b = colorsys.hsv_to_rgb(h, s, v)
        cols.append((int(round(r * 255)), int(round(g * 255)), int(round(b * 255))))
    return list(dict.fromkeys(cols))


def save_mask_png(path: os.PathLike, labels: np.ndarray, palette: Sequence[Sequence[int]]) -> Path:
    """Labels [H, W] -> a palette PNG (mode P, one entry per class), written atomically; reads back as RGB with
    the palette's colours (what train-branch and the app decode)."""
    labels = np.asarray(labels)
    pal = np.asarray(palette, np.uint8).reshape(-1, 3)
    if labels.ndim != 2 or labels.size and int(labels.max()) >= len(pal) or len(pal) > 256:
        raise EditGANError(f"labels {labels.shape} do not fit a palette of {len(pal)} colours")
    im = Image.fromarray(labels.astype(np.uint8))     # mode L; a palette makes it P
    im.putpalette(pal.ravel().tolist())
    return files.atomic_write(path, lambda tmp: im.save(tmp, format="PNG"))
