"""The Edit tab: paint the segmentation with the palette, optimise the latent to match it (streamed, stoppable),
compare before and after, save the change as an editing vector."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from demo.session import Session
from demo.streaming import Done
from editgan_core.settings import EDIT, check_number

from .common import (LONG, Page, editor_value, gpu, painted_labels, show, sketch_pad, slider_updates, stop, ui_action,
                     views)

HINT = ("**Paint** a part bigger, smaller or somewhere else with its palette colour (the brush), then press "
        "*Apply edit*; *Save as editing vector* keeps the change for any other image.")


def layout() -> SimpleNamespace:
    with gr.Tab("Edit", id="edit"):
        gr.Markdown(HINT)
        palette = gr.Markdown()
        with gr.Row():
            editor = sketch_pad("Segmentation (paint to edit)")
            with gr.Column():
                compare = gr.ImageSlider(label="Before / after", type="numpy", height=300)
                new_mask = gr.Image(label="New segmentation", type="numpy", interactive=False, height=160)
        with gr.Row():
            steps = gr.Slider(10, 2 * EDIT.steps, value=EDIT.steps, step=10, label="Optimisation steps")
            apply = gr.Button("Apply edit", variant="primary")
            halt = gr.Button("Stop", variant="stop")
        status = gr.Markdown()
        with gr.Row():
            vec_name = gr.Textbox(label="Vector name", placeholder="e.g. bigger smile")
            save = gr.Button("Save as editing vector")
        saved = gr.Markdown()
    return SimpleNamespace(**locals())


def work_note(res) -> str:
    """Where a mask edit optimised, when not at the model's size, and what the memory budget changed."""
    work, R = res.vector.extra.get("work_resolution"), res.image.shape[-1]
    out = f" Optimised at {work} px (coarse and middle layers), rendered at {R} px." if work and work < R else ""
    return out + "".join(f" {n}." for n in res.notes)


def handed_note(s: Session) -> str:
    """After an edit of an uploaded photo: how much of the photo it changes (the Image tab shows it)."""
    res = s.photo_result()
    return "" if res is None else f" Handed back to your photo (Image tab): {res.summary()}."


@ui_action
def on_edit(session: Session, model: str, painted: dict, steps: int, overlay: bool):
    """Streams (preview, status) while optimising; ends with the full view. Closing the page stops it."""
    steps = int(check_number("optimisation steps", steps, 1, 10 * EDIT.steps, integer=True))
    session.use_model(model)
    before = show(session.current.image)
    labels, note = painted_labels(session, painted)
    res = None
    for item in session.edit_stream(labels, steps=int(steps)):
        if isinstance(item, Done):
            res = item.result
            break
        if item.image is not None:
            yield {"top.state": session, "edit.compare": (before, show(item.image)),
                   "edit.status": f"{item.text} {note}"}
    msg = (f"edited {len(res.classes)} classes in {res.steps} steps, {res.seconds:.1f} s"
           f"{' (stopped: best so far kept)' if res.stopped else ''}: {res.quality.summary()}. "
           f"{'**Advice:** ' + res.quality.advice() + '. ' if res.quality.advice() else ''}{note}"
           f"{work_note(res)}{handed_note(session)}")
    view = views(session, overlay)
    yield {"top.state": session, "edit.compare": (before, view["top.current"]), "edit.status": msg,
           "edit.new_mask": show(session.mask_rgb()), **view, "edit.editor": editor_value(session),
           "edit.saved": ""}


def on_stop(session: Session):
    return stop(session, "edit.status")


@ui_action
def on_save_vector(session: Session, name: str):
    vec, path, note = session.save_vector(name)
    where = f" (library: {path.parent})" if path else " (kept in this session: download it from the Vectors tab)"
    return {"top.state": session,
            "edit.saved": f"saved vector **{vec.name}** ({', '.join(vec.classes)}){where}{'. ' + note if note else ''}",
            "vectors.pick": gr.update(choices=session.vector_names(), value=vec.name), **slider_updates(session)}


def wire(page: Page, ed: SimpleNamespace) -> None:
    """The tab's events (``ed``: its widgets); outputs in other tabs by name."""
    page.on(ed.apply.click, gpu(on_edit), ["top.state", "top.model", "edit.editor", "edit.steps", "image.overlay"],
            ["top.state", "edit.compare", "edit.status", "edit.new_mask", "image.shown", "top.caption",
             "history.table", "edit.editor", "edit.saved", "image.fidelity", "image.diff", "top.current"],
            api_name="edit", show_progress_on=[ed.status], **LONG)
    page.on(ed.halt.click, on_stop, ["top.state"], ["edit.status"], api_visibility="private",
            concurrency_limit=None)
    page.on(ed.save.click, on_save_vector, ["top.state", "edit.vec_name"],
            ["top.state", "edit.saved", "vectors.pick", "vectors.sliders"], api_name="save_vector")
