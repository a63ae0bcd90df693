"""The Image tab: a sample from a seed, or a photo uploaded, cut (aligned face or box, moved, scaled, turned) and
embedded; the reconstruction against the photo; the current step handed back at the photo's own size."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from demo.session import Session
from demo.streaming import Done
from editgan_core.errors import EditGANError
from editgan_core.pipeline.align import ALIGNER, ALIGNER_LICENCE
from editgan_core.settings import EMBED, PIVOTAL, SAMPLE, check_number

from .common import LONG, VIEW, Page, editor_value, gpu, show, slider_updates, stop, ui_action, views

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.png"))   # demo/examples
CUTS = {"the model's": None, "aligned face": "face", "box": "box"}     # the Cut radio's labels -> prepare_photo
HINT = ("**Start here:** press *Generate* for a sample of the model, or upload a photo and press *Embed photo*; "
        "then paint its parts in the Edit tab or move a slider in the Vectors tab.")


def layout() -> SimpleNamespace:
    with gr.Tab("Image", id="image"):
        hint = gr.Markdown(HINT)
        with gr.Row():
            seed = gr.Number(value=0, precision=0, minimum=0, maximum=SAMPLE.max_seed, label="Seed")
            psi = gr.Slider(*SAMPLE.truncation_range, value=SAMPLE.truncation, step=0.05,
                                    label="Truncation psi")
            class_idx = gr.Number(value=0, precision=0, minimum=0, label="Class (conditional model)",
                                          visible=False)
            go = gr.Button("Generate", variant="primary")
        with gr.Row():
            # A file box, not gr.Image: gradio would decode the file itself and answer a broken or hostile file
            # with a generic error; prepare_image says what is wrong.
            photo = gr.File(label="Photo to edit (any size or mode)", type="filepath", height=220,
                            file_types=["image"])
            boxed = gr.Image(label="Your photo: the red box is what is used", type="numpy", interactive=False,
                             height=220)
            prepared = gr.Image(label="What the model sees", type="numpy", interactive=False, height=220)
        with gr.Column(visible=False) as examples_box:      # shown for face models (on_load_model)
            # An image field (hidden) takes the example, so the examples show as thumbnails; on_example then
            # treats it as an upload and puts it in the photo box.
            example = gr.Image(type="filepath", visible=False)
            examples = gr.Examples([[str(p)] for p in EXAMPLES], inputs=[example], examples_per_page=len(EXAMPLES),
                                   label="Example photos (ToyFaces renders): click one, then Embed photo")
        with gr.Accordion("Crop: what of the photo the model sees", open=True):
            with gr.Row():
                cut = gr.Radio(list(CUTS), value=next(iter(CUTS)), label="Cut (faces: aligned like FFHQ)")
                fit = gr.Radio(["crop", "pad"], value="crop", label="Box fit")
                face = gr.Number(value=0, precision=0, minimum=0, label="Face (0 = the largest)",
                                         visible=False)
            gr.Markdown(f"Faces are found and aligned with {ALIGNER} ({ALIGNER_LICENCE}).")
            with gr.Row():
                dx = gr.Slider(-0.5, 0.5, value=0, step=0.01, label="Move right")
                dy = gr.Slider(-0.5, 0.5, value=0, step=0.01, label="Move down")
                zoom = gr.Slider(0.5, 2.0, value=1, step=0.01, label="Scale")
                turn = gr.Slider(-45, 45, value=0, step=0.5, label="Turn (degrees)")
        with gr.Row():
            embed_steps = gr.Slider(0, 3 * EMBED.steps, value=EMBED.steps, step=10, label="Embedding steps")
            tune_steps = gr.Slider(0, 3 * PIVOTAL.steps, value=0, step=10,
                                   label=f"Pivotal tuning steps (0 = off; {PIVOTAL.steps}: a more faithful photo)")
            embed = gr.Button("Embed photo", variant="primary")
            halt = gr.Button("Stop", variant="stop")
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


@ui_action
def on_sample(session: Session, model: str, seed: int, truncation: float, class_idx: int, overlay: bool):
    return sampled(session.use_model(model), seed, truncation, class_idx, overlay)


@ui_action
def on_first_sample(session: Session, seed: int, truncation: float, class_idx: int, overlay: bool):
    """The first screen: a sample of the model the page opened on, so it never starts empty."""
    return sampled(session, seed, truncation, class_idx, overlay)


def sampled(session: Session, seed: int, truncation: float, class_idx: int, overlay: bool) -> dict:
    session.sample(
        int(check_number("the seed", seed, 0, SAMPLE.max_seed, integer=True)),
        check_number("truncation psi", truncation, *SAMPLE.truncation_range),
        None if class_idx is None else int(check_number("the class", class_idx, 0, 1_000_000, integer=True)))
    return {"top.state": session, **views(session, overlay), "edit.editor": editor_value(session),
            **slider_updates(session)}


@ui_action
def on_upload(session: Session, model: str, photo: str, fit: str, cut: str):
    """A new photo: faces found (when cut as a face), the crop controls back at their start."""
    if photo is None:
        raise EditGANError("choose an image file to upload")
    session.use_model(model)
    prepared, note, boxed = session.prepare_photo(photo, fit, cut=CUTS.get(cut))
    faces = len(session.upload.faces)
    return {"top.state": session, "image.prepared": show(prepared), "image.boxed": boxed,
            "image.status": f"Prepared for the model: {note}",
            "image.face": gr.update(value=0, maximum=max(0, faces - 1), visible=faces > 1),
            "image.dx": 0, "image.dy": 0, "image.zoom": 1, "image.turn": 0}


@ui_action
def on_example(session: Session, model: str, example: str, fit: str, cut: str):
    """An example photo clicked: uploaded as if the user had chosen its file."""
    return {**on_upload(session, model, example, fit, cut), "image.photo": example}


@ui_action
def on_adjust(session: Session, fit: str, face, dx: float, dy: float, zoom: float, turn: float):
    """The crop moved, scaled or turned, or another face chosen: cut the photo again."""
    prepared, note, boxed = session.adjust_crop(
        face=int(check_number("the face", face or 0, 0, 1000, integer=True)),
        dx=check_number("move right", dx, -0.5, 0.5),
        dy=check_number("move down", dy, -0.5, 0.5), zoom=check_number("the scale", zoom, 0.5, 2.0),
        turn=check_number("the turn", turn, -45, 45), fit=fit)
    return {"top.state": session, "image.prepared": show(prepared), "image.boxed": boxed,
            "image.status": f"Prepared for the model: {note}"}


@ui_action
def on_embed(session: Session, model: str, steps: int, overlay: bool, tune_steps: int = 0):
    """Streams the progress into the status line; ends with the full view. Closing the page stops it."""
    steps = int(check_number("embedding steps", steps, 0, 3 * EMBED.steps, integer=True))
    tune_steps = int(check_number("pivotal tuning steps", tune_steps or 0, 0, 3 * PIVOTAL.steps, integer=True))
    for item in session.use_model(model).embed_stream(steps=steps, tune_steps=tune_steps):
        if isinstance(item, Done):
            break
        yield {"top.state": session, "image.status": item.text}
    yield {"top.state": session, **views(session, overlay), "image.status": session.current.what,
           "edit.editor": editor_value(session), **slider_updates(session)}


def on_stop(session: Session):
    return stop(session, "image.status")


def on_overlay(session: Session, overlay: bool):
    if session.pos < 0:
        return {"image.shown": None}
    return {"image.shown": show(session.overlay() if overlay else session.current.image)}


@ui_action
def on_hand_back(session: Session, show_region: bool):
    """The current step handed back at the uploaded photo's size, the region tinted over it when asked."""
    image, msg = session.photo_view(bool(show_region))
    return {"image.handed": image, "image.handed_msg": msg}


def wire(page: Page, im: SimpleNamespace) -> None:
    """The tab's events (``im``: its widgets); outputs in other tabs by name."""
    crop_controls = ["image.face", "image.dx", "image.dy", "image.zoom", "image.turn"]
    page.on(im.go.click, on_sample, ["top.state", "top.model", "image.seed", "image.psi", "image.class_idx",
                                     "image.overlay"],
            ["top.state", *VIEW, "edit.editor", "vectors.sliders"], api_name="sample")
    uploaded = ["top.state", "image.prepared", "image.boxed", "image.status", *crop_controls]
    upload_in = ["top.state", "top.model", "image.photo", "image.fit", "image.cut"]
    page.on(im.photo.upload, on_upload, upload_in, uploaded, api_name="upload")
    page.after(im.examples.load_input_event, on_example, ["top.state", "top.model", "image.example", "image.fit",
                                                          "image.cut"], [*uploaded, "image.photo"],
               api_visibility="private")
    page.on(im.cut.input, on_upload, upload_in, uploaded, api_visibility="private")
    page.on([im.fit.input, im.face.input] + [page[c].release for c in crop_controls[1:]], on_adjust,
            ["top.state", "image.fit", *crop_controls],
            ["top.state", "image.prepared", "image.boxed", "image.status"], api_name="adjust_crop")
    page.on(im.embed.click, gpu(on_embed), ["top.state", "top.model", "image.embed_steps", "image.overlay",
                                            "image.tune_steps"],
            ["top.state", *VIEW, "image.status", "edit.editor", "vectors.sliders"], api_name="embed",
            show_progress_on=[im.status], **LONG)
    page.on(im.halt.click, on_stop, ["top.state"], ["image.status"], api_name="stop", concurrency_limit=None)
    page.on(im.overlay.change, on_overlay, ["top.state", "image.overlay"], ["image.shown"],
            api_visibility="private")
    handed = ["image.handed", "image.handed_msg"]
    page.on(im.hand.click, on_hand_back, ["top.state", "image.region"], handed, api_name="hand_back", **LONG)
    page.on(im.region.input, on_hand_back, ["top.state", "image.region"], handed, api_visibility="private", **LONG)
