"""What every tab of the studio shares: the process-wide Studio, the page's settings, the one way events are wired
(:class:`Page`: handlers return dicts keyed by component names, never positional tuples), the error wrapper that
turns any failure into one line, number fields that answer bad values in one line, and the views (session -> widget values) several tabs
show. The UI package (demo/ui) is the only place that imports gradio."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import math
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List

import gradio as gr
import numpy as np

from demo.model import Studio
from demo.session import Session, timestamp
from editgan_core.errors import EditGANError
from editgan_core.settings import APPLY
from editgan_core.storage.files import clip

try:  # ZeroGPU on Spaces; elsewhere the decorator is a no-op
    import spaces  # type: ignore

    gpu = spaces.GPU(duration=120)
except Exception:  # pragma: no cover - depends on the host
    def gpu(fn):
        return fn

log = logging.getLogger("editgan-studio")
STUDIO = Studio()                 # models load once per process and are shared by every session
MAX_SLIDERS = 12                  # slider slots on the Vectors tab
EDITOR_SIDE = 320                 # the sketch pad's canvas side in pixels (masks are resized to the model's)
SHOW_SIDE = 256                   # small model images are shown enlarged to this side
OUT = Path(tempfile.gettempdir()) / "editgan-studio"   # downloads: a temporary folder only
MAX_UPLOAD = "200mb"              # an upload (photo, vector, branch) larger than this is refused by the server
LONG = dict(concurrency_id="long", concurrency_limit=1)  # long actions (embed, edit, train) share one queue slot
# The outputs that show the current step (views() fills them).
VIEW = ["top.current", "image.shown", "top.caption", "image.fidelity", "image.diff", "history.table"]


# ----------------------------------------------------------------------------------------------------------
# Wiring


class Page:
    """Every component of the page by name -- ``"top.current"``, ``"image.status"``, ``"vectors.sliders"`` (a list)
    -- and the one way an event is wired (:meth:`on`). A handler returns a dict keyed by these names; what it leaves
    out keeps its value (a streamed handler yields only what changed)."""

    def __init__(self, demo: gr.Blocks):
        self.demo = demo
        self.parts: Dict[str, object] = {}

    def add(self, name: str, widgets: SimpleNamespace) -> SimpleNamespace:
        """Register a part of the page (a tab's widgets) under ``name``."""
        for key, value in vars(widgets).items():
            if isinstance(value, (gr.blocks.Block, list)):
                self.parts[f"{name}.{key}"] = value
        return widgets

    def __getitem__(self, name: str):
        return self.parts[name]

    def on(self, triggers, fn, inputs: List[str], outputs: List[str], **kwargs):
        """Wire ``fn`` (inputs and outputs by name) to one trigger or a list of triggers. -> the event."""
        triggers = triggers if isinstance(triggers, list) else [triggers]
        return gr.on(triggers, self.handler(fn, outputs), self.flat(inputs), self.flat(outputs), **kwargs)

    def after(self, event, fn, inputs: List[str], outputs: List[str], **kwargs):
        """Wire ``fn`` to run when ``event`` (what :meth:`on` returned) has succeeded. -> the new event."""
        return event.success(self.handler(fn, outputs), self.flat(inputs), self.flat(outputs), **kwargs)

    def handler(self, fn, outputs: List[str]):
        """``fn`` as gradio calls it: its dict of output names turned into a dict of components."""
        comps = {n: self.parts[n] for n in outputs}

        def keyed(result):
            if not isinstance(result, dict):
                raise TypeError(f"{fn.__name__} must return a dict of output names, got {type(result).__name__}")
            out = {}
            for name, value in result.items():
                if name not in comps:
                    raise KeyError(f"{fn.__name__} returned {name!r}, which is not among its outputs")
                if isinstance(comps[name], list):
                    out.update(zip(comps[name], value))
                else:
                    out[comps[name]] = value
            return out

        if inspect.isgeneratorfunction(inspect.unwrap(fn)):
            @functools.wraps(fn)
            def handler(*args, **kw):
                for result in fn(*args, **kw):
                    yield keyed(result)
        else:
            @functools.wraps(fn)
            def handler(*args, **kw):
                return keyed(fn(*args, **kw))
        return handler

    def flat(self, names: List[str]) -> list:
        """The components of ``names``, a list (the slider slots) expanded in place."""
        return [c for n in names for c in (self.parts[n] if isinstance(self.parts[n], list) else [self.parts[n]])]


def ui_action(fn):
    """A handler whose errors become a gr.Error, one line in the page, the session untouched: an EditGANError says
    what was wrong with the input; anything else (a bug) is logged with its traceback and said in one line.
    Works for plain handlers and for generators (streamed results)."""
    def said(e: Exception) -> gr.Error:
        if isinstance(e, EditGANError):
            return gr.Error(str(e))
        log.exception("%s failed", fn.__name__)
        return gr.Error(f"{fn.__name__.replace('on_', '').replace('_', ' ')} failed ({type(e).__name__}: "
                        f"{clip(str(e).splitlines()[0] if str(e) else '', 160)}); what you had is kept")

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def streamed(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as e:  # noqa: BLE001 -- every failure becomes one line, the server keeps serving
                raise said(e) from None
        return streamed

    @functools.wraps(fn)
    def plain(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as e:  # noqa: BLE001
            raise said(e) from None
    return plain


def check_number_fields() -> None:
    """Every gradio number field (Number, Slider) of the page answers in one line, naming itself, when an API client
    sends what is not a finite number (gradio's own check compares the text with the bounds and fails with a
    generic error), and says which field in gradio's bounds messages too.

    Installed on the classes, once per process: gradio rebuilds a session's copy of a component from its class when
    a handler updates its props (a slider's label and range follow its vector), so a patch of one instance would be
    lost there; a subclass would make gradio write a .pyi stub beside this file at import."""
    for cls in (gr.Number, gr.Slider):
        if getattr(cls.preprocess, "checked", False):
            continue
        original = cls.preprocess

        def preprocess(self, payload, original=original):
            name = self.label or "a number field"      # read now: a slider's label follows its vector
            if isinstance(payload, str):
                try:
                    payload = float(payload)
                except ValueError:
                    raise gr.Error(f"{name} must be a number, got {clip(payload, 40)}") from None
            if payload is not None and (isinstance(payload, bool) or not isinstance(payload, (int, float))
                                        or not math.isfinite(payload)):
                raise gr.Error(f"{name} must be a finite number, got {clip(payload, 40)}")
            try:
                return original(self, payload)
            except gr.Error as e:             # gradio's bounds check: say which field
                raise gr.Error(f"{name}: {e.message}") from None
        preprocess.checked = True
        cls.preprocess = preprocess


check_number_fields()


# ----------------------------------------------------------------------------------------------------------
# Downloads


def clean_downloads(older_than: float = 86400.0) -> None:
    """Remove download folders (exports, vectors, branches) older than ``older_than`` seconds: at start-up, what
    an earlier run left behind."""
    if not OUT.is_dir():
        return
    now = time.time()
    for d in OUT.iterdir():
        with contextlib.suppress(OSError):
            if d.is_dir() and now - d.stat().st_mtime > older_than:
                shutil.rmtree(d, ignore_errors=True)


def downloads(session: Session) -> Path:
    """A new download folder of this session (removed with the session, see Session.forget)."""
    folder = OUT / f"{id(session)}-{timestamp()}"
    session.download_dirs.append(folder)
    return folder


# ----------------------------------------------------------------------------------------------------------
# Views: session -> widget values.


def show(img):
    """Small model images are shown enlarged (nearest neighbour); files and API values stay native."""
    if img is None or img.shape[0] >= SHOW_SIDE:
        return img
    idx = np.arange(SHOW_SIDE) * img.shape[0] // SHOW_SIDE
    return img[idx][:, idx]


def views(s: Session, overlay: bool = False) -> dict:
    """The current step in every place that shows it (the VIEW outputs)."""
    st = s.current
    psnr, diff = s.fidelity()
    fid = "" if psnr is None else f"Reconstruction PSNR vs the photo: **{psnr:.2f} dB** (difference x4, grey = 0)"
    shown = s.overlay() if overlay and s.labels_of(st) is not None else st.image
    return {"top.current": show(st.image), "image.shown": show(shown), "top.caption": caption(s),
            "image.fidelity": fid, "image.diff": show(diff), "history.table": s.history_rows()}


def caption(s: Session) -> str:
    return f"step {s.pos}: {s.current.what}"


def editor_value(s: Session, image=None, labels=None) -> dict:
    """Background = the image blended with its segmentation (what the user paints over; by default the current
    step's); one transparent layer takes the strokes."""
    if image is None:
        image, labels = s.current.image, s.labels_of(s.current)
    under = image if labels is None else (0.45 * image + 0.55 * s.mask_rgb(labels)).astype(np.uint8)
    side = max(EDITOR_SIDE, under.shape[0])
    idx = np.arange(side) * under.shape[0] // side
    bg = np.concatenate([under[idx][:, idx], np.full((side, side, 1), 255, np.uint8)], 2)
    # No layer of our own: the sketch pad makes its stroke layer. (Sending the same blank layer to every user made
    # concurrent sessions write one cache file at once.)
    return {"background": bg, "layers": [], "composite": None}


def palette_md(s: Session) -> str:
    names, palette = s.class_table()
    cells = " ".join(f"<span style='background:rgb{tuple(c)};padding:0 6px;border:1px solid #888'>&nbsp;</span> "
                     f"{n}" for n, c in zip(names, palette))
    return f"**Palette** (brush colour = part class; black paints background; the eraser takes strokes back): {cells}"


def brush(palette) -> gr.Brush:
    colors = ["#%02x%02x%02x" % tuple(c) for c in palette]
    return gr.Brush(colors=colors, default_color=colors[min(2, len(colors) - 1)], color_mode="fixed", default_size=5)


def session_brush(s: Session) -> gr.Brush:
    return brush(s.class_table()[1] if s.model_ref else Studio.starting_palette())


def sketch_pad(label: str) -> gr.ImageEditor:
    return gr.ImageEditor(label=label, type="numpy", image_mode="RGBA", format="png", sources=(), transforms=(),
                          canvas_size=(EDITOR_SIDE, EDITOR_SIDE), fixed_canvas=True,
                          brush=brush(Studio.starting_palette()), eraser=gr.Eraser(default_size=8), layers=False,
                          height=420)


def slider_updates(s: Session) -> dict:
    """The Vectors tab's slider slots: one per vector (label, range, the current step's scale), the rest hidden."""
    names = s.vector_names()[:MAX_SLIDERS]
    scales = s.current.scales if s.pos >= 0 else {}
    ups = []
    for i in range(MAX_SLIDERS):
        if i < len(names):
            v = s.vectors[names[i]]
            lo, hi = v.scale_range
            ups.append(gr.update(visible=True, label=f"{names[i]}  ({', '.join(v.classes)})",
                                 minimum=min(lo, APPLY.slider_range[0]), maximum=max(hi, APPLY.slider_range[1]),
                                 value=scales.get(names[i], 0.0)))
        else:
            ups.append(gr.update(visible=False, value=0.0))
    return {"vectors.sliders": ups}


def painted_labels(s: Session, painted, base=None):
    """Labels from the sketch pad: the current segmentation (or ``base``), replaced by the palette class of every
    painted pixel. A client may also send a whole mask as an opaque layer. -> (labels, note)."""
    if not isinstance(painted, dict):
        raise EditGANError("paint on the segmentation first")
    layers = [x for x in (painted.get("layers") or []) if x is not None]
    if not layers:
        raise EditGANError("nothing was painted: choose a palette colour and paint over a part first")
    layer = np.asarray(layers[-1])
    if layer.ndim != 3 or layer.shape[2] not in (3, 4):
        raise EditGANError(f"the painted layer must be an RGB(A) image, got an array of shape {layer.shape}")
    if layer.shape[2] == 3:
        layer = np.concatenate([layer, np.full(layer.shape[:2] + (1,), 255, np.uint8)], 2)
    if base is None:
        base = s.labels_of()
        if base is None:
            raise EditGANError("this model has no segmentation branch: train one in the Annotate tab first")
    # Stroke edges may come back half transparent (antialiasing): only solid pixels count as painted.
    solid = np.where(layer[..., 3] >= 128, 255, 0).astype(np.uint8)
    return s.decode_painted(layer[..., :3], solid, base=base)


def stop(session: Session, where: str) -> dict:
    session.stop()
    return {where: "stop requested: the best result so far is kept"}
