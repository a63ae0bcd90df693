"""EditGAN Studio -- the Gradio app. Layout and wiring only: the work happens in demo.session.Session (one per
user, in gr.State) over demo.model.Studio (models, loaded once per process).

Run locally with ``python app.py`` (http://127.0.0.1:7860); the same file runs as a Hugging Face Space (CPU, GPU
or ZeroGPU: the long actions carry ``spaces.GPU`` when the ``spaces`` package is there, and run as they are when
it is not). Long actions (embed, edit, train) stream their progress from the session; closing the page ends them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import List

import gradio as gr
import numpy as np

from demo.model import Studio
from demo.session import Session, timestamp
from demo.streaming import Done
from editgan_core.models import fast
from editgan_core.pipeline.align import ALIGNER, ALIGNER_LICENCE
from editgan_core.errors import EditGANError
from editgan_core.storage.files import clip
from editgan_core.pipeline.labeling import parser_for
from editgan_core.runtime import configure_threads, tune_allocator
from editgan_core.settings import APPLY, EDIT, EMBED, INTERACTIVE_BRANCH, PIVOTAL, REFINE, SAMPLE, check_number

try:  # ZeroGPU on Spaces; elsewhere the decorator is a no-op
    import spaces  # type: ignore

    gpu = spaces.GPU(duration=120)
except Exception:  # pragma: no cover - depends on the host
    def gpu(fn):
        return fn

tune_allocator()
log = logging.getLogger("editgan-studio")
STUDIO = Studio()                 # models load once per process and are shared by every session
MAX_SLIDERS = 12                  # slider slots on the Vectors tab
EDITOR_SIDE = 320                 # the sketch pad's canvas side in pixels (masks are resized to the model's)
SHOW_SIDE = 256                   # small model images are shown enlarged to this side
OUT = Path(tempfile.gettempdir()) / "editgan-studio"   # downloads: a temporary folder only
MAX_UPLOAD = "200mb"              # an upload (photo, vector, branch) larger than this is refused by the server


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


def checked(field):
    """A gradio number field (Number, Slider) that answers in one line when an API client sends what is not a finite
    number (gradio's own check compares the text with the bounds and fails with a generic error), naming the field
    in gradio's bounds messages too. Wraps the instance's preprocess: a component subclass would make gradio write
    a .pyi stub beside this file at import."""
    original = field.preprocess

    def preprocess(payload):
        name = field.label or "a number field"      # read now: a slider's label follows its vector
        if isinstance(payload, str):
            try:
                payload = float(payload)
            except ValueError:
                raise gr.Error(f"{name} must be a number, got {clip(payload, 40)}") from None
        if payload is not None and (isinstance(payload, bool) or not isinstance(payload, (int, float))
                                    or not math.isfinite(payload)):
            raise gr.Error(f"{name} must be a finite number, got {clip(payload, 40)}")
        try:
            return original(payload)
        except gr.Error as e:             # gradio's bounds check: say which field
            raise gr.Error(f"{name}: {e.message}") from None
    field.preprocess = preprocess
    return field


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


def _downloads(session: Session) -> Path:
    """A new download folder of this session (removed with the session, see Session.forget)."""
    folder = OUT / f"{id(session)}-{timestamp()}"
    session.download_dirs.append(folder)
    return folder


# ----------------------------------------------------------------------------------------------------------
# Views: session -> widget values.


def _show(img):
    """Small model images are shown enlarged (nearest neighbour); files and API values stay native."""
    if img is None or img.shape[0] >= SHOW_SIDE:
        return img
    idx = np.arange(SHOW_SIDE) * img.shape[0] // SHOW_SIDE
    return img[idx][:, idx]


def _editor_value(s: Session, image=None, labels=None):
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


def _palette_md(s: Session) -> str:
    names, palette = s.class_table()
    cells = " ".join(f"<span style='background:rgb{tuple(c)};padding:0 6px;border:1px solid #888'>&nbsp;</span> "
                     f"{n}" for n, c in zip(names, palette))
    return f"**Palette** (brush colour = part class; black paints background; the eraser takes strokes back): {cells}"


def _brush(s: Session) -> gr.Brush:
    if s.model_ref:
        palette = s.class_table()[1]
    else:
        from editgan_core.toyfaces.palette import CLASSES
        palette = [c for _, c in CLASSES]
    colors = ["#%02x%02x%02x" % tuple(c) for c in palette]
    return gr.Brush(colors=colors, default_color=colors[min(2, len(colors) - 1)], color_mode="fixed", default_size=5)


def _view(s: Session, show_overlay: bool = False):
    """(image, overlay-or-image, caption, fidelity text, difference image, history rows)."""
    st = s.current
    psnr, diff = s.fidelity()
    fid = "" if psnr is None else f"Reconstruction PSNR vs the photo: **{psnr:.2f} dB** (difference x4, grey = 0)"
    shown = s.overlay() if show_overlay and s.labels_of(st) is not None else st.image
    return _show(st.image), _show(shown), f"step {s.pos}: {st.what}", fid, _show(diff), s.history_rows()


def _slider_updates(s: Session) -> List:
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
    return ups


def _work_note(res) -> str:
    """Where a mask edit optimised, when not at the model's size, and what the memory budget changed."""
    work, R = res.vector.extra.get("work_resolution"), res.image.shape[-1]
    out = f" Optimised at {work} px (coarse and middle layers), rendered at {R} px." if work and work < R else ""
    return out + "".join(f" {n}." for n in res.notes)


def _painted_labels(s: Session, painted, base=None):
    """Labels from the sketch pad: the current segmentation (or ``base``), replaced by the palette class of every
    painted pixel. A client may also send a whole mask as an opaque layer."""
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


# ----------------------------------------------------------------------------------------------------------
# Handlers: one session call each. The session (gr.State, one per user) comes first and, where it changes in
# a way the page must keep, is returned first; @ui_action turns user errors into messages.


@ui_action
def on_load_model(session: Session, model: str, progress=gr.Progress()):
    progress(0.1, desc="loading model")
    desc = session.set_model(model)
    progress(1.0, desc="ready")
    cond = STUDIO.model(session.model_ref).config.c_dim
    no_branch = session.current_branch() is None
    if no_branch:
        desc += ("\n\n**This model has no segmentation branch yet**: in the Annotate tab, add a few samples, "
                 "correct the proposed masks with the brush and train one; then the Edit tab works.")
    return (session, desc, gr.update(choices=session.vector_names(), value=None), *_slider_updates(session),
            gr.update(brush=_brush(session)), _palette_md(session), STUDIO.model_card(session.model_ref),
            gr.update(brush=_brush(session)), _palette_md(session),
            gr.update(visible=bool(cond), maximum=max(cond - 1, 0), value=0),
            gr.update(selected="annotate") if no_branch else gr.update(),
            gr.update(placeholder=f"default: {parser_for(session.model_ref) or 'none fits this model: label by hand'}"))


@ui_action
def on_sample(session: Session, model: str, seed: int, truncation: float, class_idx: int, overlay: bool):
    session.use_model(model).sample(
        int(check_number("the seed", seed, 0, SAMPLE.max_seed, integer=True)),
        check_number("truncation psi", truncation, *SAMPLE.truncation_range),
        None if class_idx is None else int(check_number("the class", class_idx, 0, 1_000_000, integer=True)))
    return (session, *_view(session, overlay), _editor_value(session), *_slider_updates(session))


@ui_action
def on_upload(session: Session, model: str, photo: str, fit: str, cut: str):
    """A new photo: faces found (when cut as a face), the crop controls back at their start."""
    if photo is None:
        raise EditGANError("choose an image file to upload")
    session.use_model(model)
    prepared, note, boxed = session.prepare_photo(photo, fit, cut=CUTS.get(cut))
    faces = len(session.upload.faces)
    return (session, _show(prepared), boxed, f"Prepared for the model: {note}",
            gr.update(value=0, maximum=max(0, faces - 1), visible=faces > 1), 0, 0, 1, 0)


@ui_action
def on_adjust(session: Session, fit: str, face, dx: float, dy: float, zoom: float, turn: float):
    """The crop moved, scaled or turned, or another face chosen: cut the photo again."""
    prepared, note, boxed = session.adjust_crop(
        face=int(check_number("the face", face or 0, 0, 1000, integer=True)),
        dx=check_number("move right", dx, -0.5, 0.5),
        dy=check_number("move down", dy, -0.5, 0.5), zoom=check_number("the scale", zoom, 0.5, 2.0),
        turn=check_number("the turn", turn, -45, 45), fit=fit)
    return session, _show(prepared), boxed, f"Prepared for the model: {note}"


CUTS = {"the model's": None, "aligned face": "face", "box": "box"}     # the Cut radio's labels -> prepare_photo


@ui_action
def on_embed(session: Session, model: str, steps: int, overlay: bool, tune_steps: int = 0):
    """Streams the progress into the status line; ends with the full view. Closing the page stops it."""
    steps = int(check_number("embedding steps", steps, 0, 3 * EMBED.steps, integer=True))
    tune_steps = int(check_number("pivotal tuning steps", tune_steps or 0, 0, 3 * PIVOTAL.steps, integer=True))
    for item in session.use_model(model).embed_stream(steps=steps, tune_steps=tune_steps):
        if isinstance(item, Done):
            break
        yield (session, *[gr.skip()] * 6, item.text, gr.skip(), *[gr.skip()] * MAX_SLIDERS)
    yield (session, *_view(session, overlay), session.current.what, _editor_value(session),
           *_slider_updates(session))


def on_stop(session: Session):
    session.stop()
    return "stop requested: the best result so far is kept"


def on_overlay(session: Session, overlay: bool):
    if session.pos < 0:
        return None
    return _show(session.overlay() if overlay else session.current.image)


@ui_action
def on_edit(session: Session, model: str, painted: dict, steps: int, overlay: bool):
    """Streams (preview, status) while optimising; ends with the full view. Closing the page stops it."""
    steps = int(check_number("optimisation steps", steps, 1, 10 * EDIT.steps, integer=True))
    session.use_model(model)
    before = _show(session.current.image)
    labels, note = _painted_labels(session, painted)
    res = None
    for item in session.edit_stream(labels, steps=int(steps)):
        if isinstance(item, Done):
            res = item.result
            break
        if item.image is not None:
            yield (session, (before, _show(item.image)), f"{item.text} {note}", *[gr.skip()] * 8)
    msg = (f"edited {len(res.classes)} classes in {res.steps} steps, {res.seconds:.1f} s"
           f"{' (stopped: best so far kept)' if res.stopped else ''}: {res.quality.summary()}. "
           f"{'**Advice:** ' + res.quality.advice() + '. ' if res.quality.advice() else ''}{note}"
           f"{_work_note(res)}{_handed_note(session)}")
    image, shown, caption, fid, _, hist = _view(session, overlay)
    yield (session, (before, image), msg, _show(session.mask_rgb()), shown, caption, hist, _editor_value(session),
           "", fid, image)


def _handed_note(s: Session) -> str:
    """After an edit of an uploaded photo: how much of the photo it changes (the Image tab shows it)."""
    res = s.photo_result()
    return "" if res is None else f" Handed back to your photo (Image tab): {res.summary()}."


@ui_action
def on_hand_back(session: Session, show_region: bool):
    """The current step handed back at the uploaded photo's size, the region tinted over it when asked."""
    image, msg = session.photo_view(bool(show_region))
    return image, msg


@ui_action
def on_save_vector(session: Session, name: str):
    vec, path, note = session.save_vector(name)
    where = f" (library: {path.parent})" if path else " (kept in this session: download it from the Vectors tab)"
    return (session, f"saved vector **{vec.name}** ({', '.join(vec.classes)}){where}{'. ' + note if note else ''}",
            gr.update(choices=session.vector_names(), value=vec.name), *_slider_updates(session))


@ui_action
def on_scales(session: Session, refine: int, *scales: float):
    """The sliders, by slot. Only the image and its caption come back: the session changes in place and the
    History tab refreshes when opened -- fewer outputs, less work per slider move."""
    names = session.vector_names()[:MAX_SLIDERS]
    session.refine_steps = int(check_number("refinement steps", refine, integer=True))
    session.set_scales({n: float(v) for n, v in zip(names, scales)})
    return _show(session.current.image), f"step {session.pos}: {session.current.what}"


# The API names the slider slots slot_0 ... slot_11 (a *args handler would show them as param_2, param_3, ...).
on_scales.__signature__ = inspect.Signature(
    [inspect.Parameter("session", inspect.Parameter.POSITIONAL_OR_KEYWORD),
     inspect.Parameter("refine", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    + [inspect.Parameter(f"slot_{i}", inspect.Parameter.POSITIONAL_OR_KEYWORD) for i in range(MAX_SLIDERS)])


@ui_action
def on_apply_vectors(session: Session, scales: dict, refine: int):
    """Vectors by name for scripts: ``scales`` like {"smile": 1.5, "open mouth": -0.5}; the others keep theirs."""
    if not isinstance(scales, dict) or not scales:
        raise EditGANError('give the scales as a JSON object of vector names, e.g. {"smile": 1.5}')
    session.set_scales({str(k): check_number(f"the scale for {clip(k, 40)}", v) for k, v in scales.items()},
                       refine_steps=int(check_number("refinement steps", refine, integer=True)))
    return _show(session.current.image), f"step {session.pos}: {session.current.what}"


@ui_action
def on_reset(session: Session):
    session.set_scales({n: 0.0 for n in session.current.scales})
    return (session, _show(session.current.image), f"step {session.pos}: {session.current.what}",
            session.history_rows(), *_slider_updates(session))


@ui_action
def on_preview(session: Session, vector: str, scale: float):
    if not vector:
        raise EditGANError("choose a vector")
    scale = check_number("the preview scale", scale, *APPLY.slider_range)
    return [(_show(im) if im.shape[0] < 128 else im, cap) for im, cap in session.preview(vector, scale)]


@ui_action
def on_upload_vector(session: Session, model: str, file: str):
    if file is None:
        raise EditGANError("choose a .safetensors vector file")
    vec = session.use_model(model).add_vector_file(file)
    return (session, f"loaded vector **{vec.name}**", gr.update(choices=session.vector_names(), value=vec.name),
            *_slider_updates(session))


@ui_action
def on_download_vector(session: Session, vector: str):
    if not vector:
        raise EditGANError("choose a vector")
    return str(session.export_vector(vector, _downloads(session)))


@ui_action
def on_push(session: Session, repo: str, token: str):
    from demo.hubsync import push_library

    if not session.vectors:
        raise EditGANError("no vectors to push")
    return push_library(list(session.vectors.values()), repo, token or None)


@ui_action
def on_pull(session: Session, model: str, repo: str, token: str):
    from demo.hubsync import pull_library

    vecs, msg = pull_library(repo, token or None, session.use_model(model).assets.identity)
    for v in vecs:
        session.vectors[v.name] = v
    return (session, msg, gr.update(choices=session.vector_names()), *_slider_updates(session))


@ui_action
def on_undo(session: Session, overlay: bool):
    session.undo()
    return (session, *_view(session, overlay), _editor_value(session), *_slider_updates(session))


@ui_action
def on_redo(session: Session, overlay: bool):
    session.redo()
    return (session, *_view(session, overlay), _editor_value(session), *_slider_updates(session))


@ui_action
def on_goto(session: Session, overlay: bool, evt: gr.SelectData):
    row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    session.goto(int(row))
    return (session, *_view(session, overlay), _editor_value(session), *_slider_updates(session))


@ui_action
def on_export(session: Session):
    return [str(p) for p in session.export(_downloads(session))]


@ui_action
def on_annotate_add(session: Session, model: str):
    i = session.use_model(model).add_annotation_image()
    a = session.annotations[i]
    hint = ("correct it with the brush (or keep it) and press 'Save annotation'" if a.proposal is not None
            else "paint its parts and press 'Save annotation'")
    return (session, _editor_value(session, a.image, a.proposal), i,
            f"image {i} added; proposed mask: **{a.source}**. {hint}")


@ui_action
def on_annotate_save(session: Session, painted: dict, index: int):
    i = int(check_number("the annotation number", index, integer=True))
    if not 0 <= i < len(session.annotations):
        raise EditGANError(f"no annotation image {i}: add the current image first")
    a = session.annotations[i]
    base = next((m for m in (a.labels, a.proposal) if m is not None), None)
    if base is None:
        base = np.zeros(a.image.shape[:2], np.uint8)
    try:
        labels, note = _painted_labels(session, painted, base=base)
    except EditGANError:
        if a.proposal is None:           # nothing painted and nothing proposed: say so
            raise
        labels, note = base, "nothing was painted"
    if note == "nothing was painted" and a.proposal is not None:
        note = "the proposal was kept as it is"
    session.set_annotation(i, labels)
    done = sum(a.labels is not None for a in session.annotations)
    return f"annotation {i} saved ({done} annotated). {note}"


@ui_action
def on_train(session: Session, steps: int):
    """Streams the training progress; ends with the held-out mIoU and the branch file. Closing the page stops it."""
    rep = None
    for item in session.train_stream(max_steps=int(check_number("training steps", steps, 1, 20_000, integer=True))):
        if isinstance(item, Done):
            rep = item.result[1]
            break
        yield session, item.text, gr.skip()
    path = _downloads(session) / "branch.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(session.branch_bytes())
    yield (session, f"branch trained: held-out mIoU **{rep.val_miou:.3f}** on {rep.val_images} images "
                    f"({rep.steps} steps, {rep.seconds:.1f} s){' (stopped)' if rep.stopped else ''}", str(path))


@ui_action
def on_set_labeler(session: Session, labeler: str, class_map: str):
    note = session.set_labeler(labeler, class_map)
    return note, _palette_md(session), gr.update(brush=_brush(session)), gr.update(brush=_brush(session))


@ui_action
def on_class_names(session: Session, names: str):
    if not session.model_ref:
        raise EditGANError("choose a model first")
    parts = [n.strip() for n in (names or "").split(",") if n.strip()]
    if len(parts) != len(session.class_table()[0]):
        raise EditGANError(f"give {len(session.class_table()[0])} comma-separated names, one per palette colour")
    session.class_names = parts
    return _palette_md(session)


def on_history_tab(session: Session):
    return session.history_rows()


# ----------------------------------------------------------------------------------------------------------
# Layout: one small function per part of the page; each returns its widgets by name.


def _sketch_pad(label: str) -> gr.ImageEditor:
    from editgan_core.toyfaces.palette import CLASSES

    colors = ["#%02x%02x%02x" % tuple(c) for _, c in CLASSES]
    return gr.ImageEditor(label=label, type="numpy", image_mode="RGBA", format="png", sources=(), transforms=(),
                          canvas_size=(EDITOR_SIDE, EDITOR_SIDE), fixed_canvas=True,
                          brush=gr.Brush(colors=colors, default_color=colors[2], color_mode="fixed", default_size=5),
                          eraser=gr.Eraser(default_size=8), layers=False, height=420)


def image_tab() -> SimpleNamespace:
    with gr.Tab("Image", id="image"):
        with gr.Row():
            seed = checked(gr.Number(value=0, precision=0, minimum=0, maximum=SAMPLE.max_seed, label="Seed"))
            psi = checked(gr.Slider(*SAMPLE.truncation_range, value=SAMPLE.truncation, step=0.05,
                                    label="Truncation psi"))
            class_idx = checked(gr.Number(value=0, precision=0, minimum=0, label="Class (conditional model)",
                                          visible=False))
            go = gr.Button("Generate", variant="primary")
        with gr.Row():
            # A file box, not gr.Image: gradio would decode the file itself and answer a broken or hostile file
            # with a generic error; prepare_image says what is wrong.
            photo = gr.File(label="Photo to edit (any size or mode)", type="filepath", height=220,
                            file_types=["image"])
            boxed = gr.Image(label="Your photo: the red box is what is used", type="numpy", interactive=False,
                             height=220)
            prepared = gr.Image(label="What the model sees", type="numpy", interactive=False, height=220)
        with gr.Accordion("Crop: what of the photo the model sees", open=True):
            with gr.Row():
                cut = gr.Radio(list(CUTS), value=next(iter(CUTS)), label="Cut (faces: aligned like FFHQ)")
                fit = gr.Radio(["crop", "pad"], value="crop", label="Box fit")
                face = checked(gr.Number(value=0, precision=0, minimum=0, label="Face (0 = the largest)",
                                         visible=False))
            gr.Markdown(f"Faces are found and aligned with {ALIGNER} ({ALIGNER_LICENCE}).")
            with gr.Row():
                dx = checked(gr.Slider(-0.5, 0.5, value=0, step=0.01, label="Move right"))
                dy = checked(gr.Slider(-0.5, 0.5, value=0, step=0.01, label="Move down"))
                zoom = checked(gr.Slider(0.5, 2.0, value=1, step=0.01, label="Scale"))
                turn = checked(gr.Slider(-45, 45, value=0, step=0.5, label="Turn (degrees)"))
        with gr.Row():
            embed_steps = checked(gr.Slider(0, 3 * EMBED.steps, value=EMBED.steps, step=10, label="Embedding steps"))
            tune_steps = checked(gr.Slider(0, 3 * PIVOTAL.steps, value=0, step=10,
                                   label=f"Pivotal tuning steps (0 = off; {PIVOTAL.steps}: a more faithful photo)"))
            embed = gr.Button("Embed photo", variant="primary")
            stop = gr.Button("Stop", variant="stop")
        status = gr.Markdown()
        overlay = gr.Checkbox(label="Show segmentation overlay", value=False)
        with gr.Row():
            shown = gr.Image(label="Image / overlay", type="numpy", interactive=False, height=256)
            diff = gr.Image(label="Difference to the photo", type="numpy", interactive=False, height=256)
        fidelity = gr.Markdown()
        with gr.Accordion("Your photo, edited: the current step handed back at the photo's size", open=False):
            with gr.Row():
                hand = gr.Button("Hand the edit back to my photo")
                region = gr.Checkbox(label="Show the region handed back", value=False)
            handed = gr.Image(label="Your photo with the edit (only where the edit acts; the rest is your photo, "
                                    "bit for bit)", type="numpy", format="png", interactive=False, height=420)
            handed_msg = gr.Markdown()
    return SimpleNamespace(**locals())


def edit_tab() -> SimpleNamespace:
    with gr.Tab("Edit", id="edit"):
        palette = gr.Markdown()
        with gr.Row():
            editor = _sketch_pad("Segmentation (paint to edit)")
            with gr.Column():
                compare = gr.ImageSlider(label="Before / after", type="numpy", height=300)
                new_mask = gr.Image(label="New segmentation", type="numpy", interactive=False, height=160)
        with gr.Row():
            steps = checked(gr.Slider(10, 2 * EDIT.steps, value=EDIT.steps, step=10, label="Optimisation steps"))
            apply = gr.Button("Apply edit", variant="primary")
            stop = gr.Button("Stop", variant="stop")
        status = gr.Markdown()
        with gr.Row():
            vec_name = gr.Textbox(label="Vector name", placeholder="e.g. bigger smile")
            save = gr.Button("Save as editing vector")
        saved = gr.Markdown()
    return SimpleNamespace(**locals())


def vectors_tab() -> SimpleNamespace:
    with gr.Tab("Vectors", id="vectors"):
        with gr.Row():
            refine = gr.Radio([str(c) for c in REFINE.choices], value=str(REFINE.choices[0]),
                              label="Refinement steps")
            reset = gr.Button("Reset sliders")
        sliders = [checked(gr.Slider(*APPLY.slider_range, value=0, step=APPLY.slider_step, label=f"vector {i}",
                             visible=False)) for i in range(MAX_SLIDERS)]
        scales_json = gr.JSON(visible=False)          # the by-name endpoint's input (scripts)
        with gr.Accordion(f"Preview on {APPLY.preview_count} other images, files and Hub", open=False):
            with gr.Row():
                pick = gr.Dropdown([], label="Vector", allow_custom_value=False)
                pscale = checked(gr.Slider(*APPLY.slider_range, value=1, step=0.5, label="Scale"))
                preview = gr.Button("Preview")
            grid = gr.Gallery(label="before | after", columns=4, height=320)
            with gr.Row():
                vfile = gr.File(label="Upload a vector (.safetensors)", file_types=[".safetensors"])
                download = gr.Button("Download chosen vector")
                vout = gr.File(label="Vector file")
            vmsg = gr.Markdown()
            with gr.Row():
                repo = gr.Textbox(label="Hub repo (dataset)", placeholder="user/my-editgan-vectors")
                token = gr.Textbox(label="Hub token", type="password")
                push = gr.Button("Push library")
                pull = gr.Button("Pull library")
            hubmsg = gr.Markdown()
    return SimpleNamespace(**locals())


def history_tab() -> SimpleNamespace:
    with gr.Tab("History", id="history") as tab:
        with gr.Row():
            undo = gr.Button("Undo")
            redo = gr.Button("Redo")
            export = gr.Button("Download: your photo edited (at its size), the model's crop, mask and latent")
        gr.Markdown("Click a step to go back to it; the downloads are of the current step.")
        table = gr.Dataframe(headers=["step", "what"], interactive=False, wrap=True)
        files = gr.File(label="Downloads", file_count="multiple")
    return SimpleNamespace(**locals())


def annotate_tab() -> SimpleNamespace:
    with gr.Tab("Annotate", id="annotate"):
        gr.Markdown("To give a model a segmentation branch (or a better one): generate or embed an image and add it "
                    "here. A parser that fits the model (or the branch trained so far) proposes its mask and says "
                    "so; correct it with the brush, save; repeat for a handful of images; train.")
        with gr.Accordion("Labeler: the segmentation model that proposes masks, and its class map", open=False):
            labeler = gr.Textbox(label="Labeler (parser registry name, hf://org/repo or a save_pretrained folder; "
                                       "empty: the parser that fits the model)")
            class_map = gr.Code(language="json", label='Class map {"labeler label": "class"} (empty: default)')
            use_labeler = gr.Button("Use this labeler")
        names = gr.Textbox(label="Class names (comma-separated, one per palette colour)")
        rename = gr.Button("Rename classes")
        palette = gr.Markdown()
        with gr.Row():
            add = gr.Button("Add current image")
            index = checked(gr.Number(value=0, precision=0, label="Annotation #"))
            save = gr.Button("Save annotation")
        annotator = _sketch_pad("Annotation")
        msg = gr.Markdown()
        with gr.Row():
            steps = checked(gr.Slider(100, 2000, value=INTERACTIVE_BRANCH.max_steps, step=100,
                                      label="Training steps (max)"))
            train = gr.Button("Train branch", variant="primary")
            stop = gr.Button("Stop", variant="stop")
        train_msg = gr.Markdown()
        branch_file = gr.File(label="Trained branch")
    return SimpleNamespace(**locals())


def build_ui() -> gr.Blocks:
    default = Studio.default_model()
    # Cached result files older than a day are removed every hour; a session idle for 6 hours is dropped.
    with gr.Blocks(title="EditGAN Studio", delete_cache=(3600, 86400)) as demo:
        # gr.State deep-copies its value once per user, and a Session's copy is a new empty one (see
        # Session.__deepcopy__): every user, browser or API client, gets a Session of their own.
        state = gr.State(Session(STUDIO), time_to_live=6 * 3600, delete_callback=Session.forget)
        gr.Markdown("# EditGAN Studio\nRepaint the part segmentation of a GAN image, learn the edit as a vector, "
                    "replay it on any image with a slider.")
        with gr.Row():
            model = gr.Dropdown(Studio.model_choices(), value=default, allow_custom_value=True, label="Model",
                                info="registry name, local path or hf://org/repo/file[@revision]", scale=3)
            load = gr.Button("Load model", scale=1)
        info = gr.Markdown()
        with gr.Accordion("Model card", open=False):
            card = gr.Markdown()
        with gr.Row():
            with gr.Column(scale=1):
                current = gr.Image(label="Current image", type="numpy", format="png", interactive=False, height=320)
                caption = gr.Markdown()
            with gr.Column(scale=2):
                with gr.Tabs() as tabs:
                    im, ed, vec, hi, an = image_tab(), edit_tab(), vectors_tab(), history_tab(), annotate_tab()
        _wire(SimpleNamespace(state=state, model=model, load=load, info=info, card=card, current=current,
                              caption=caption, tabs=tabs), im, ed, vec, hi, an, demo)
    return demo


def _wire(top, im, ed, vec, hi, an, demo) -> None:
    """Events -> handlers. Long actions share one queue slot ("long"); sliders and stop are never queued."""
    state, model = top.state, top.model
    view = [top.current, im.shown, top.caption, im.fidelity, im.diff, hi.table]
    long = dict(concurrency_id="long", concurrency_limit=1)
    loaded = [state, top.info, vec.pick, *vec.sliders, ed.editor, ed.palette, top.card, an.annotator, an.palette,
              im.class_idx, top.tabs, an.labeler]
    top.load.click(on_load_model, [state, model], loaded, api_name="load_model")
    demo.load(on_load_model, [state, model], loaded, api_visibility="private")
    im.go.click(on_sample, [state, model, im.seed, im.psi, im.class_idx, im.overlay],
                [state, *view, ed.editor, *vec.sliders], api_name="sample")
    crop_controls = [im.face, im.dx, im.dy, im.zoom, im.turn]
    uploaded = [state, im.prepared, im.boxed, im.status, *crop_controls]
    im.photo.upload(on_upload, [state, model, im.photo, im.fit, im.cut], uploaded, api_name="upload")
    im.cut.input(on_upload, [state, model, im.photo, im.fit, im.cut], uploaded, api_visibility="private")
    gr.on([im.fit.input, im.face.input] + [c.release for c in crop_controls[1:]], on_adjust,
          [state, im.fit, *crop_controls], [state, im.prepared, im.boxed, im.status], api_name="adjust_crop")
    im.embed.click(gpu(on_embed), [state, model, im.embed_steps, im.overlay, im.tune_steps],
                   [state, *view, im.status, ed.editor, *vec.sliders], api_name="embed",
                   show_progress_on=[im.status], **long)
    im.stop.click(on_stop, [state], [im.status], api_name="stop", concurrency_limit=None)
    ed.stop.click(on_stop, [state], [ed.status], api_visibility="private", concurrency_limit=None)
    an.stop.click(on_stop, [state], [an.train_msg], api_visibility="private", concurrency_limit=None)
    im.overlay.change(on_overlay, [state, im.overlay], [im.shown], api_visibility="private")
    im.hand.click(on_hand_back, [state, im.region], [im.handed, im.handed_msg], api_name="hand_back", **long)
    im.region.input(on_hand_back, [state, im.region], [im.handed, im.handed_msg], api_visibility="private", **long)
    ed.apply.click(gpu(on_edit), [state, model, ed.editor, ed.steps, im.overlay],
                   [state, ed.compare, ed.status, ed.new_mask, im.shown, top.caption, hi.table, ed.editor, ed.saved,
                    im.fidelity, top.current], api_name="edit", show_progress_on=[ed.status], **long)
    ed.save.click(on_save_vector, [state, ed.vec_name], [state, ed.saved, vec.pick, *vec.sliders],
                  api_name="save_vector")
    gr.on([sl.input for sl in vec.sliders] + [vec.refine.change], on_scales, [state, vec.refine, *vec.sliders],
          [top.current, top.caption], api_name="set_scales", trigger_mode="always_last", show_progress="hidden",
          queue=False)
    vec.scales_json.change(on_apply_vectors, [state, vec.scales_json, vec.refine], [top.current, top.caption],
                           api_name="apply_vectors", concurrency_limit=None)
    vec.reset.click(on_reset, [state], [state, top.current, top.caption, hi.table, *vec.sliders],
                    api_name="reset_sliders")
    vec.preview.click(on_preview, [state, vec.pick, vec.pscale], [vec.grid], api_name="preview",
                      concurrency_limit=None)
    vec.vfile.upload(on_upload_vector, [state, model, vec.vfile], [state, vec.vmsg, vec.pick, *vec.sliders],
                     api_name="upload_vector")
    vec.download.click(on_download_vector, [state, vec.pick], [vec.vout], api_name="download_vector")
    vec.push.click(on_push, [state, vec.repo, vec.token], [vec.hubmsg], api_name="push_vectors")
    vec.pull.click(on_pull, [state, model, vec.repo, vec.token], [state, vec.hubmsg, vec.pick, *vec.sliders],
                   api_name="pull_vectors")
    hi.undo.click(on_undo, [state, im.overlay], [state, *view, ed.editor, *vec.sliders], api_name="undo")
    hi.redo.click(on_redo, [state, im.overlay], [state, *view, ed.editor, *vec.sliders], api_name="redo")
    hi.tab.select(on_history_tab, [state], [hi.table], api_visibility="private")
    hi.table.select(on_goto, [state, im.overlay], [state, *view, ed.editor, *vec.sliders], api_visibility="private")
    hi.export.click(on_export, [state], [hi.files], api_name="export")
    an.add.click(on_annotate_add, [state, model], [state, an.annotator, an.index, an.msg], api_name="annotate_add")
    an.save.click(on_annotate_save, [state, an.annotator, an.index], [an.msg], api_name="annotate_save")
    an.rename.click(on_class_names, [state, an.names], [an.palette], api_name="class_names")
    an.use_labeler.click(on_set_labeler, [state, an.labeler, an.class_map], [an.msg, an.palette, ed.editor,
                                                                           an.annotator], api_name="set_labeler")
    an.train.click(gpu(on_train), [state, an.steps], [state, an.train_msg, an.branch_file], api_name="train_branch",
                   show_progress_on=[an.train_msg], **long)


def main() -> None:
    p = argparse.ArgumentParser(description="EditGAN Studio web app")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    p.add_argument("--share", action="store_true", help="create a public gradio.live link")
    p.add_argument("--threads", default=None,
                   help="torch threads: a number, or auto (the default, or $EDITGAN_THREADS): as many as the cores "
                        "other processes leave free, re-read during the work (docs/results.md, issue #14)")
    p.add_argument("--no-bf16", action="store_true",
                   help="render slider previews in float32 too (default: bf16 where the CPU or GPU has it; "
                        "exports are always float32; also $EDITGAN_BF16=0)")
    args = p.parse_args()
    configure_threads(args.threads)
    if args.no_bf16:
        fast.set_mode("off")
    demo = build_ui()
    demo.queue(default_concurrency_limit=4, max_size=64)
    clean_downloads()
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, allowed_paths=[str(OUT)],
                max_file_size=MAX_UPLOAD)


if __name__ == "__main__":
    main()
