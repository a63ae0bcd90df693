"""The Annotate tab: give a model a segmentation branch (or a better one) from a handful of images -- a labeler
proposes each mask, the user corrects it with the brush, then the branch trains (streamed, stoppable)."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import numpy as np

from demo.session import Session
from demo.streaming import Done
from editgan_core.errors import EditGANError
from editgan_core.settings import INTERACTIVE_BRANCH, check_number

from .common import (LONG, Page, downloads, editor_value, gpu, painted_labels, palette_md, session_brush, sketch_pad,
                     stop, ui_action)

HINT = ("To give a model a segmentation branch (or a better one): generate or embed an image and add it "
        "here. A parser that fits the model (or the branch trained so far) proposes its mask and says "
        "so; correct it with the brush, save; repeat for a handful of images; train.")


def layout() -> SimpleNamespace:
    with gr.Tab("Annotate", id="annotate"):
        gr.Markdown(HINT)
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
            index = gr.Number(value=0, precision=0, label="Annotation #")
            save = gr.Button("Save annotation")
        annotator = sketch_pad("Annotation")
        msg = gr.Markdown()
        with gr.Row():
            steps = gr.Slider(100, 2000, value=INTERACTIVE_BRANCH.max_steps, step=100,
                                      label="Training steps (max)")
            train = gr.Button("Train branch", variant="primary")
            halt = gr.Button("Stop", variant="stop")
        train_msg = gr.Markdown()
        branch_file = gr.File(label="Trained branch")
    return SimpleNamespace(**locals())


@ui_action
def on_annotate_add(session: Session, model: str):
    i = session.use_model(model).add_annotation_image()
    a = session.annotations[i]
    hint = ("correct it with the brush (or keep it) and press 'Save annotation'" if a.proposal is not None
            else "paint its parts and press 'Save annotation'")
    return {"top.state": session, "annotate.annotator": editor_value(session, a.image, a.proposal),
            "annotate.index": i, "annotate.msg": f"image {i} added; proposed mask: **{a.source}**. {hint}"}


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
        labels, note = painted_labels(session, painted, base=base)
    except EditGANError:
        if a.proposal is None:           # nothing painted and nothing proposed: say so
            raise
        labels, note = base, "nothing was painted"
    if note == "nothing was painted" and a.proposal is not None:
        note = "the proposal was kept as it is"
    session.set_annotation(i, labels)
    done = sum(a.labels is not None for a in session.annotations)
    return {"annotate.msg": f"annotation {i} saved ({done} annotated). {note}"}


@ui_action
def on_train(session: Session, steps: int):
    """Streams the training progress; ends with the held-out mIoU and the branch file. Closing the page stops it."""
    rep = None
    for item in session.train_stream(max_steps=int(check_number("training steps", steps, 1, 20_000, integer=True))):
        if isinstance(item, Done):
            rep = item.result[1]
            break
        yield {"top.state": session, "annotate.train_msg": item.text}
    path = downloads(session) / "branch.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(session.branch_bytes())
    yield {"top.state": session, "annotate.branch_file": str(path),
           "annotate.train_msg": f"branch trained: held-out mIoU **{rep.val_miou:.3f}** on {rep.val_images} images "
                                 f"({rep.steps} steps, {rep.seconds:.1f} s){' (stopped)' if rep.stopped else ''}. Edit with it now "
                                 f"(Edit tab), or share it with your vectors as a kit (Vectors tab, Publish kit)."}


def on_stop(session: Session):
    return stop(session, "annotate.train_msg")


@ui_action
def on_set_labeler(session: Session, labeler: str, class_map: str):
    note = session.set_labeler(labeler, class_map)
    return {"annotate.msg": note, "annotate.palette": palette_md(session),
            "edit.editor": gr.update(brush=session_brush(session)),
            "annotate.annotator": gr.update(brush=session_brush(session))}


@ui_action
def on_class_names(session: Session, names: str):
    if not session.model_ref:
        raise EditGANError("choose a model first")
    parts = [n.strip() for n in (names or "").split(",") if n.strip()]
    if len(parts) != len(session.class_table()[0]):
        raise EditGANError(f"give {len(session.class_table()[0])} comma-separated names, one per palette colour")
    session.class_names = parts
    return {"annotate.palette": palette_md(session)}


def wire(page: Page, an: SimpleNamespace) -> None:
    """The tab's events (``an``: its widgets); outputs in other tabs by name."""
    page.on(an.add.click, on_annotate_add, ["top.state", "top.model"],
            ["top.state", "annotate.annotator", "annotate.index", "annotate.msg"], api_name="annotate_add")
    page.on(an.save.click, on_annotate_save, ["top.state", "annotate.annotator", "annotate.index"],
            ["annotate.msg"], api_name="annotate_save")
    page.on(an.rename.click, on_class_names, ["top.state", "annotate.names"], ["annotate.palette"],
            api_name="class_names")
    page.on(an.use_labeler.click, on_set_labeler, ["top.state", "annotate.labeler", "annotate.class_map"],
            ["annotate.msg", "annotate.palette", "edit.editor", "annotate.annotator"], api_name="set_labeler")
    page.on(an.train.click, gpu(on_train), ["top.state", "annotate.steps"],
            ["top.state", "annotate.train_msg", "annotate.branch_file"], api_name="train_branch",
            show_progress_on=[an.train_msg], **LONG)
    page.on(an.halt.click, on_stop, ["top.state"], ["annotate.train_msg"], api_visibility="private",
            concurrency_limit=None)
