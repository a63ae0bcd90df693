"""The studio's page (Gradio): the model bar over five tabs, one module per tab (its layout, handlers and events
together). The only package that imports gradio; ``app.py`` launches what :func:`build_ui` builds."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Optional

import gradio as gr

from demo.model import Studio
from demo.session import Session
from editgan_core.pipeline.labeling import parser_for

from . import annotate, edit, history, image, vectors
from .common import (MAX_UPLOAD, OUT, STUDIO, VIEW, Page, clean_downloads, palette_md, session_brush, slider_updates,
                     ui_action)

__all__ = ["build_ui", "clean_downloads", "STUDIO", "OUT", "MAX_UPLOAD"]
TABS = (("image", image), ("edit", edit), ("vectors", vectors), ("history", history), ("annotate", annotate))


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
    brush, palette = gr.update(brush=session_brush(session)), palette_md(session)
    return {"top.state": session, "top.info": desc, "vectors.pick": gr.update(choices=session.vector_names(),
                                                                              value=None),
            **slider_updates(session), "edit.editor": brush, "edit.palette": palette,
            "top.card": STUDIO.model_card(session.model_ref), "annotate.annotator": brush,
            "annotate.palette": palette, "image.class_idx": gr.update(visible=bool(cond), maximum=max(cond - 1, 0),
                                                                      value=0),
            "top.tabs": gr.update(selected="annotate") if no_branch else gr.update(),
            "image.examples_box": gr.update(visible=STUDIO.is_face_model(session.model_ref)),
            "annotate.labeler": gr.update(
                placeholder=f"default: {parser_for(session.model_ref) or 'none fits this model: label by hand'}")}


def build_ui(model: Optional[str] = None) -> gr.Blocks:
    """The page, opening on ``model`` (else ``$EDITGAN_MODEL``, else the built-in model): that model is loaded and
    a sample of it shown as the page opens."""
    default = (model or os.environ.get("EDITGAN_MODEL") or "").strip() or Studio.default_model()
    # Cached result files older than a day are removed every hour; a session idle for 6 hours is dropped.
    with gr.Blocks(title="EditGAN Studio", delete_cache=(3600, 86400)) as demo:
        page = Page(demo)
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
                    parts = {name: page.add(name, module.layout()) for name, module in TABS}
        page.add("top", SimpleNamespace(state=state, model=model, load=load, info=info, card=card, current=current,
                                        caption=caption, tabs=tabs))
        loaded = ["top.state", "top.info", "vectors.pick", "vectors.sliders", "edit.editor", "edit.palette",
                  "top.card", "annotate.annotator", "annotate.palette", "image.class_idx", "top.tabs",
                  "annotate.labeler", "image.examples_box"]
        page.on(load.click, on_load_model, ["top.state", "top.model"], loaded, api_name="load_model")
        opened = page.on(demo.load, on_load_model, ["top.state", "top.model"], loaded, api_visibility="private")
        page.after(opened, image.on_first_sample, ["top.state", "image.seed", "image.psi", "image.class_idx",
                                                   "image.overlay"],
                   ["top.state", *VIEW, "edit.editor", "vectors.sliders"], api_visibility="private")
        for name, module in TABS:
            module.wire(page, parts[name])
    return demo
