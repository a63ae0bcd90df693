"""EditGAN Studio -- the Gradio app. Layout and wiring only: the work happens in demo.session.Session (per user)
over demo.model.Studio (models, loaded once per process).

Run locally with ``python app.py`` (http://127.0.0.1:7860); the same file runs as a Hugging Face Space (CPU, GPU
or ZeroGPU: the long actions carry ``spaces.GPU`` when the ``spaces`` package is there, and run as they are when
it is not).
"""

from __future__ import annotations

import argparse
import functools
import inspect
import os
import tempfile
from pathlib import Path
from typing import List

import gradio as gr
import numpy as np

from demo.model import Studio
from demo.session import Session, timestamp
from editgan_core.errors import EditGANError
from editgan_core.runtime import tune_allocator

try:  # ZeroGPU on Spaces; elsewhere the decorator is a no-op
    import spaces  # type: ignore

    gpu = spaces.GPU(duration=120)
except Exception:  # pragma: no cover - depends on the host
    def gpu(fn):
        return fn

tune_allocator()
STUDIO = Studio()                 # models load once per process and are shared by every session
MAX_SLIDERS = 12                  # slider slots on the Vectors tab
EDITOR_SIDE = 320                 # the sketch pad's canvas side in pixels (masks are resized to the model's)
OUT = Path(tempfile.gettempdir()) / "editgan-studio"   # downloads: a temporary folder only


def ui_action(fn):
    """A handler whose EditGANError becomes a gr.Error: a clear message in the page, the session untouched.
    Works for plain handlers and for generators (streamed results)."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def streamed(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except EditGANError as e:
                raise gr.Error(str(e)) from None
        return streamed

    @functools.wraps(fn)
    def plain(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EditGANError as e:
            raise gr.Error(str(e)) from None
    return plain


def _session(s: Session | None, model_ref: str) -> Session:
    if s is None or not isinstance(s, Session):
        s = Session(STUDIO)
    if model_ref and model_ref.strip() != s.model_ref:
        s.set_model(model_ref)
    if not s.model_ref:
        raise EditGANError("choose a model first")
    return s


def _upscale(a: np.ndarray, side: int) -> np.ndarray:
    idx = (np.arange(side) * a.shape[0] // side)
    return a[idx][:, idx]


def _show(img):
    """Small model images are shown enlarged (nearest neighbour); files and API values stay native."""
    if img is None or img.shape[0] >= 256:
        return img
    return _upscale(img, 256)


def _editor_value(s: Session, blank: bool = False):
    """Background = the image blended with its segmentation (what the user paints over); one transparent layer
    takes the strokes. Labels are the current step's, replaced where a stroke is (see _painted_labels)."""
    st = s.current
    side = max(EDITOR_SIDE, st.image.shape[0])
    if blank or s.labels_of(st) is None:
        under = st.image
    else:
        under = (0.45 * st.image + 0.55 * s.mask_rgb()).astype(np.uint8)
    bg = np.concatenate([_upscale(under, side), np.full((side, side, 1), 255, np.uint8)], 2)
    return {"background": bg, "layers": [np.zeros((side, side, 4), np.uint8)], "composite": None}


def _palette_md(s: Session) -> str:
    names, palette = s.class_table()
    cells = " ".join(f"<span style='background:rgb{tuple(c)};padding:0 6px;border:1px solid #888'>&nbsp;</span> "
                     f"{n}" for n, c in zip(names, palette))
    return f"**Palette** (brush colour = part class; black paints background; the eraser takes strokes back): {cells}"


def _brush(s: Session | None) -> gr.Brush:
    if s is None or not s.model_ref:
        from editgan_core.toyfaces.palette import CLASSES
        palette = [c for _, c in CLASSES]
    else:
        palette = s.class_table()[1]
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
            ups.append(gr.update(visible=True, label=f"{names[i]}  ({', '.join(v.classes)})", minimum=min(lo, -4),
                                 maximum=max(hi, 4), value=scales.get(names[i], 0.0)))
        else:
            ups.append(gr.update(visible=False, value=0.0))
    return ups


# ----------------------------------------------------------------------------------------------------------
# Handlers. Each takes the session state first and returns it (updated) first; @ui_action turns errors into
# messages.


@ui_action
def on_load_model(s, model_ref, progress=gr.Progress()):
    s = s if isinstance(s, Session) else Session(STUDIO)
    progress(0.1, desc="loading model")
    desc = s.set_model(model_ref)
    progress(1.0, desc="ready")
    return (s, desc, gr.update(choices=s.vector_names(), value=None), *_slider_updates(s),
            gr.update(brush=_brush(s)), _palette_md(s), STUDIO.model_card(s.model_ref),
            gr.update(brush=_brush(s)), _palette_md(s))


@ui_action
def on_sample(s, model_ref, seed, psi, overlay):
    s = _session(s, model_ref)
    s.sample(int(seed), float(psi))
    return (s, *_view(s, overlay), _editor_value(s), *_slider_updates(s))


@ui_action
def on_upload(s, model_ref, photo, fit):
    s = _session(s, model_ref)
    if photo is None:
        raise EditGANError("choose an image file to upload")
    prepared, note, boxed = s.prepare_photo(photo, fit)
    return s, _show(prepared), boxed, f"Prepared for the model: {note}"


@ui_action
def on_embed(s, model_ref, steps, overlay, progress=gr.Progress()):
    s = _session(s, model_ref)

    def tick(step, total, loss, *rest):
        progress(step / max(total, 1), desc=f"embedding: step {step}/{total}, loss {loss:.4f}")

    s.embed(steps=int(steps), progress=tick)
    return (s, *_view(s, overlay), _editor_value(s), *_slider_updates(s))


def on_stop(s):
    if isinstance(s, Session):
        s.stop()
    return "stop requested: the best result so far is kept"


def on_overlay(s, overlay):
    if not isinstance(s, Session) or s.pos < 0:
        return None
    return _show(s.overlay() if overlay else s.current.image)


@ui_action
def on_edit(s, model_ref, painted, steps, overlay, progress=gr.Progress()):
    """Streams (state, preview, status) while optimising; ends with the full view."""
    s = _session(s, model_ref)
    before = s.current.image
    labels, note = _painted_labels(s, painted)
    import queue
    import threading

    q: "queue.Queue" = queue.Queue()
    result = {}

    def tick(step, total, loss, img):
        progress(step / max(total, 1), desc=f"editing: step {step}/{total}")
        if img is not None:
            from editgan_core import images_to_uint8
            q.put((step, total, loss, images_to_uint8(img)[0].cpu().numpy()))

    def work():
        try:
            result["res"] = s.edit(labels, steps=int(steps), progress=tick)
        except Exception as e:  # noqa: BLE001 - handed to the UI thread below
            result["err"] = e
        q.put(None)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is None:
                break
            step, total, loss, img = item
            yield (s, (_show(before), _show(img)), f"step {step}/{total}, loss {loss:.4f} {note}",
                   *[gr.skip()] * 8)
    finally:
        if t.is_alive():    # the page was closed or the event cancelled: end the optimisation too
            s.stop()
    t.join()
    if "err" in result:
        raise result["err"]
    res = result["res"]
    msg = (f"edited {len(res.classes)} classes in {res.steps} steps, {res.seconds:.1f} s"
           f"{' (stopped: best so far kept)' if res.stopped else ''}. {note}")
    image, shown, caption, fid, diff, hist = _view(s, overlay)
    yield (s, (_show(before), image), msg, _show(s.mask_rgb()), shown, caption, hist, _editor_value(s),
           gr.update(value=""), fid, image)


def _painted_labels(s: Session, painted, base=None):
    """Labels from the sketch pad: the current segmentation (or ``base``), replaced by the palette class of every
    painted pixel. A client may also send a whole mask as an opaque layer."""
    if painted is None or not isinstance(painted, dict):
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


@ui_action
def on_save_vector(s, name):
    if not isinstance(s, Session):
        raise EditGANError("apply a mask edit first")
    vec, path = s.save_vector(name)
    where = f" (library: {path.parent})" if path else " (kept in this session: download it from the Vectors tab)"
    return (s, f"saved vector **{vec.name}** ({', '.join(vec.classes)}){where}",
            gr.update(choices=s.vector_names(), value=vec.name), *_slider_updates(s))


@ui_action
def on_scales(s, refine, *values):
    if not isinstance(s, Session) or s.pos < 0:
        raise EditGANError("generate or embed an image first")
    names = s.vector_names()[:MAX_SLIDERS]
    s.refine_steps = int(refine)
    s.set_scales({n: float(v) for n, v in zip(names, values)})
    # Only the image and its caption: the session is changed in place, and the History tab refreshes when
    # it is opened. Fewer outputs, less work per slider move.
    return _show(s.current.image), f"step {s.pos}: {s.current.what}"


@ui_action
def on_reset(s):
    if not isinstance(s, Session) or s.pos < 0:
        raise EditGANError("nothing to reset")
    s.set_scales({n: 0.0 for n in s.current.scales})
    return (s, _show(s.current.image), f"step {s.pos}: {s.current.what}", s.history_rows(),
            *_slider_updates(s))


@ui_action
def on_preview(s, name, scale):
    if not isinstance(s, Session) or not name:
        raise EditGANError("choose a vector")
    return [(_show(img) if img.shape[0] < 128 else img, cap) for img, cap in s.preview(name, float(scale))]


@ui_action
def on_upload_vector(s, model_ref, file):
    s = _session(s, model_ref)
    if file is None:
        raise EditGANError("choose a .safetensors vector file")
    vec = s.add_vector_file(file)
    return (s, f"loaded vector **{vec.name}**", gr.update(choices=s.vector_names(), value=vec.name),
            *_slider_updates(s))


@ui_action
def on_download_vector(s, name):
    if not isinstance(s, Session) or not name:
        raise EditGANError("choose a vector")
    folder = OUT / f"{id(s)}-{timestamp()}"
    return str(s.export_vector(name, folder))


@ui_action
def on_push(s, repo, token):
    from demo.hubsync import push_library

    if not isinstance(s, Session) or not s.vectors:
        raise EditGANError("no vectors to push")
    return push_library(list(s.vectors.values()), repo, token or None)


@ui_action
def on_pull(s, model_ref, repo, token):
    from demo.hubsync import pull_library

    s = _session(s, model_ref)
    vecs, msg = pull_library(repo, token or None, s.assets.identity)
    for v in vecs:
        s.vectors[v.name] = v
    return (s, msg, gr.update(choices=s.vector_names()), *_slider_updates(s))


@ui_action
def on_undo(s, overlay, redo=False):
    if not isinstance(s, Session):
        raise EditGANError("nothing to undo")
    s.redo() if redo else s.undo()
    return (s, *_view(s, overlay), _editor_value(s), *_slider_updates(s))


def on_redo(s, overlay):
    return on_undo(s, overlay, redo=True)


@ui_action
def on_goto(s, overlay, evt: gr.SelectData):
    if not isinstance(s, Session):
        raise EditGANError("no history yet")
    row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    s.goto(int(row))
    return (s, *_view(s, overlay), _editor_value(s), *_slider_updates(s))


@ui_action
def on_export(s):
    if not isinstance(s, Session) or s.pos < 0:
        raise EditGANError("nothing to export yet")
    return [str(p) for p in s.export(OUT / f"{id(s)}-{timestamp()}")]


@ui_action
def on_annotate_add(s, model_ref):
    s = _session(s, model_ref)
    i = s.add_annotation_image()
    return s, _editor_value(s), i, \
        f"image {i} added: paint its parts and press 'Save annotation'"


@ui_action
def on_annotate_save(s, painted, index):
    if not isinstance(s, Session):
        raise EditGANError("add an image first")
    i = int(index)
    if not 0 <= i < len(s.annotations):
        raise EditGANError(f"no annotation image {i}: add the current image first")
    base = s.annotations[i].labels
    if base is None:
        base = s.labels_of()
        base = base if base is not None else np.zeros(s.current.image.shape[:2], np.uint8)
    labels, note = _painted_labels(s, painted, base=base)
    s.set_annotation(i, labels)
    done = sum(a.labels is not None for a in s.annotations)
    return f"annotation {int(index)} saved ({done} annotated). {note}"


@ui_action
def on_train(s, steps, progress=gr.Progress()):
    if not isinstance(s, Session):
        raise EditGANError("annotate some images first")

    def tick(rec):
        progress(min(1.0, rec.get("step", 0) / max(int(steps), 1)), desc=f"training: {rec}")

    _, rep = s.train_branch(max_steps=int(steps), progress=tick)
    path = OUT / f"{id(s)}-{timestamp()}" / "branch.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(s.branch_bytes())
    return (s, f"branch trained: held-out mIoU **{rep.val_miou:.3f}** on {rep.val_images} images "
               f"({rep.steps} steps, {rep.seconds:.1f} s){' (stopped)' if rep.stopped else ''}", str(path))


@ui_action
def on_class_names(s, text):
    if not isinstance(s, Session) or not s.model_ref:
        raise EditGANError("choose a model first")
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    if len(names) != len(s.class_table()[0]):
        raise EditGANError(f"give {len(s.class_table()[0])} comma-separated names, one per palette colour")
    s.class_names = names
    return _palette_md(s)


# ----------------------------------------------------------------------------------------------------------


def build_ui() -> gr.Blocks:
    default = Studio.default_model()
    # Cached result files older than a day are removed every hour; a session idle for 6 hours is dropped.
    with gr.Blocks(title="EditGAN Studio", delete_cache=(3600, 86400)) as demo:
        state = gr.State(None, time_to_live=6 * 3600)
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
                with gr.Tabs():
                    with gr.Tab("Image", id="image"):
                        with gr.Row():
                            seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
                            psi = gr.Slider(0.0, 1.5, value=0.7, step=0.05, label="Truncation psi")
                            go = gr.Button("Generate", variant="primary")
                        with gr.Row():
                            # A file box, not gr.Image: gradio would decode the file itself and answer a broken
                            # or hostile file with a generic error; prepare_image says what is wrong.
                            photo = gr.File(label="Photo to edit (any size or mode)", type="filepath", height=220,
                                            file_types=["image"])
                            boxed = gr.Image(label="Your photo: the red box is what is used", type="numpy",
                                             interactive=False, height=220)
                            prepared = gr.Image(label="What the model sees", type="numpy", interactive=False,
                                                height=220)
                        with gr.Row():
                            fit = gr.Radio(["crop", "pad"], value="crop", label="Fit")
                            embed_steps = gr.Slider(0, 300, value=100, step=10, label="Embedding steps")
                            embed_btn = gr.Button("Embed photo", variant="primary")
                            stop1 = gr.Button("Stop", variant="stop")
                        status1 = gr.Markdown()
                        overlay = gr.Checkbox(label="Show segmentation overlay", value=False)
                        with gr.Row():
                            shown = gr.Image(label="Image / overlay", type="numpy", interactive=False, height=256)
                            diff = gr.Image(label="Difference to the photo", type="numpy", interactive=False,
                                            height=256)
                        fidelity = gr.Markdown()
                    with gr.Tab("Edit", id="edit"):
                        palette_md = gr.Markdown()
                        with gr.Row():
                            editor = gr.ImageEditor(label="Segmentation (paint to edit)", type="numpy",
                                                    image_mode="RGBA", format="png", sources=(), transforms=(),
                                                    canvas_size=(EDITOR_SIDE, EDITOR_SIDE), fixed_canvas=True,
                                                    brush=_brush(None), eraser=gr.Eraser(default_size=8),
                                                    layers=False, height=420)
                            with gr.Column():
                                compare = gr.ImageSlider(label="Before / after", type="numpy", height=300)
                                new_mask = gr.Image(label="New segmentation", type="numpy", interactive=False,
                                                    height=160)
                        with gr.Row():
                            edit_steps = gr.Slider(10, 200, value=100, step=10, label="Optimisation steps")
                            apply_btn = gr.Button("Apply edit", variant="primary")
                            stop2 = gr.Button("Stop", variant="stop")
                        status2 = gr.Markdown()
                        with gr.Row():
                            vec_name = gr.Textbox(label="Vector name", placeholder="e.g. bigger smile")
                            save_btn = gr.Button("Save as editing vector")
                        saved_md = gr.Markdown()
                    with gr.Tab("Vectors", id="vectors"):
                        with gr.Row():
                            refine = gr.Radio([0, 10, 30], value=0, label="Refinement steps")
                            reset = gr.Button("Reset sliders")
                        sliders = [gr.Slider(-4, 4, value=0, step=0.05, label=f"vector {i}", visible=False)
                                   for i in range(MAX_SLIDERS)]
                        with gr.Accordion("Preview on 8 other images, files and Hub", open=False):
                            with gr.Row():
                                pick = gr.Dropdown([], label="Vector", allow_custom_value=False)
                                pscale = gr.Slider(-4, 4, value=1, step=0.5, label="Scale")
                                prev_btn = gr.Button("Preview")
                            grid = gr.Gallery(label="before | after", columns=4, height=320)
                            with gr.Row():
                                vfile = gr.File(label="Upload a vector (.safetensors)", file_types=[".safetensors"])
                                dl_btn = gr.Button("Download chosen vector")
                                vout = gr.File(label="Vector file")
                            vmsg = gr.Markdown()
                            with gr.Row():
                                repo = gr.Textbox(label="Hub repo (dataset)", placeholder="user/my-editgan-vectors")
                                token = gr.Textbox(label="Hub token", type="password")
                                push = gr.Button("Push library")
                                pull = gr.Button("Pull library")
                            hubmsg = gr.Markdown()
                    with gr.Tab("History", id="history") as history_tab:
                        with gr.Row():
                            undo = gr.Button("Undo")
                            redo = gr.Button("Redo")
                            export = gr.Button("Download result, mask and latent")
                        gr.Markdown("Click a step to go back to it; the downloads are of the current step.")
                        hist = gr.Dataframe(headers=["step", "what"], interactive=False, wrap=True)
                        files = gr.File(label="Downloads", file_count="multiple")
                    with gr.Tab("Annotate", id="annotate"):
                        gr.Markdown("For a model without a segmentation branch: generate or embed an image, add it "
                                    "here, paint its parts, save; repeat for a handful of images; train.")
                        names_box = gr.Textbox(label="Class names (comma-separated, one per palette colour)")
                        rename = gr.Button("Rename classes")
                        ann_palette = gr.Markdown()
                        with gr.Row():
                            add_img = gr.Button("Add current image")
                            ann_index = gr.Number(value=0, precision=0, label="Annotation #")
                            save_ann = gr.Button("Save annotation")
                        annotator = gr.ImageEditor(label="Annotation", type="numpy", image_mode="RGBA", format="png",
                                                   sources=(), transforms=(), canvas_size=(EDITOR_SIDE, EDITOR_SIDE),
                                                   fixed_canvas=True, brush=_brush(None),
                                                   eraser=gr.Eraser(default_size=8), layers=False, height=420)
                        ann_msg = gr.Markdown()
                        with gr.Row():
                            train_steps = gr.Slider(100, 2000, value=600, step=100, label="Training steps (max)")
                            train = gr.Button("Train branch", variant="primary")
                            stop3 = gr.Button("Stop", variant="stop")
                        train_msg = gr.Markdown()
                        branch_file = gr.File(label="Trained branch")

        view = [current, shown, caption, fidelity, diff, hist]
        long = dict(concurrency_id="long", concurrency_limit=1)
        loaded = [state, info, pick, *sliders, editor, palette_md, card, annotator, ann_palette]
        load.click(on_load_model, [state, model], loaded, api_name="load_model")
        demo.load(on_load_model, [state, model], loaded, api_visibility="private")
        go.click(on_sample, [state, model, seed, psi, overlay], [state, *view, editor, *sliders], api_name="sample")
        photo.upload(on_upload, [state, model, photo, fit], [state, prepared, boxed, status1], api_name="upload")
        fit.change(on_upload, [state, model, photo, fit], [state, prepared, boxed, status1],
                   api_visibility="private")
        embed_btn.click(gpu(on_embed), [state, model, embed_steps, overlay], [state, *view, editor, *sliders],
                        api_name="embed", show_progress_on=[status1], **long)
        for b in (stop1, stop2, stop3):
            b.click(on_stop, [state], [status1 if b is stop1 else status2 if b is stop2 else train_msg],
                    api_name="stop" if b is stop1 else None, api_visibility="public" if b is stop1 else "private",
                    concurrency_limit=None)
        overlay.change(on_overlay, [state, overlay], [shown], api_visibility="private")
        apply_btn.click(gpu(on_edit), [state, model, editor, edit_steps, overlay],
                        [state, compare, status2, new_mask, shown, caption, hist, editor, saved_md, fidelity, current],
                        api_name="edit", show_progress_on=[status2], **long)
        save_btn.click(on_save_vector, [state, vec_name], [state, saved_md, pick, *sliders], api_name="save_vector")
        gr.on([sl.input for sl in sliders] + [refine.change], on_scales, [state, refine, *sliders],
              [current, caption], api_name="set_scales", trigger_mode="always_last",
              show_progress="hidden", concurrency_limit=None)
        reset.click(on_reset, [state], [state, current, caption, hist, *sliders], api_name="reset_sliders")
        prev_btn.click(on_preview, [state, pick, pscale], [grid], api_name="preview", concurrency_limit=None)
        vfile.upload(on_upload_vector, [state, model, vfile], [state, vmsg, pick, *sliders], api_name="upload_vector")
        dl_btn.click(on_download_vector, [state, pick], [vout], api_name="download_vector")
        push.click(on_push, [state, repo, token], [hubmsg], api_name="push_vectors")
        pull.click(on_pull, [state, model, repo, token], [state, hubmsg, pick, *sliders], api_name="pull_vectors")
        undo.click(on_undo, [state, overlay], [state, *view, editor, *sliders], api_name="undo")
        redo.click(on_redo, [state, overlay], [state, *view, editor, *sliders], api_name="redo")
        history_tab.select(lambda s: s.history_rows() if isinstance(s, Session) else [], [state], [hist],
                           api_visibility="private")
        hist.select(on_goto, [state, overlay], [state, *view, editor, *sliders], api_visibility="private")
        export.click(on_export, [state], [files], api_name="export")
        add_img.click(on_annotate_add, [state, model], [state, annotator, ann_index, ann_msg], api_name="annotate_add")
        save_ann.click(on_annotate_save, [state, annotator, ann_index], [ann_msg], api_name="annotate_save")
        rename.click(on_class_names, [state, names_box], [ann_palette], api_name="class_names")
        train.click(gpu(on_train), [state, train_steps], [state, train_msg, branch_file], api_name="train_branch",
                    show_progress_on=[train_msg], **long)
    return demo


def main() -> None:
    p = argparse.ArgumentParser(description="EditGAN Studio web app")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    p.add_argument("--share", action="store_true", help="create a public gradio.live link")
    p.add_argument("--threads", type=int, default=int(os.environ.get("EDITGAN_TORCH_THREADS", 0)),
                   help="torch intra-op threads (0: torch's default). On 2 cores, 1 leaves a core to the sliders "
                        "while an edit runs, at ~25%% slower edits; measured in docs/results.md, the gain was "
                        "within the noise")
    args = p.parse_args()
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    demo = build_ui()
    demo.queue(default_concurrency_limit=4, max_size=64)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, allowed_paths=[str(OUT)])


if __name__ == "__main__":
    main()
