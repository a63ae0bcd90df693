"""The History tab: every step of the session; undo, redo, go back to any step; download the current one (the
photo edited at its size, the model's crop, mask and latent)."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from demo.session import Session

from .common import VIEW, Page, downloads, editor_value, slider_updates, ui_action, views

HINT = "Click a step to go back to it; the downloads are of the current step."


def layout() -> SimpleNamespace:
    with gr.Tab("History", id="history") as tab:
        with gr.Row():
            undo = gr.Button("Undo")
            redo = gr.Button("Redo")
            export = gr.Button("Download: your photo edited (at its size), the model's crop, mask and latent")
        gr.Markdown(HINT)
        table = gr.Dataframe(headers=["step", "what"], interactive=False, wrap=True)
        files = gr.File(label="Downloads", file_count="multiple")
    return SimpleNamespace(**locals())


def moved(session: Session, overlay: bool) -> dict:
    """After the session moved to another step: everything that shows it."""
    return {"top.state": session, **views(session, overlay), "edit.editor": editor_value(session),
            **slider_updates(session)}


@ui_action
def on_undo(session: Session, overlay: bool):
    session.undo()
    return moved(session, overlay)


@ui_action
def on_redo(session: Session, overlay: bool):
    session.redo()
    return moved(session, overlay)


@ui_action
def on_goto(session: Session, overlay: bool, evt: gr.SelectData):
    row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    session.goto(int(row))
    return moved(session, overlay)


@ui_action
def on_export(session: Session):
    return {"history.files": [str(p) for p in session.export(downloads(session))]}


def on_history_tab(session: Session):
    return {"history.table": session.history_rows()}


def wire(page: Page, hi: SimpleNamespace) -> None:
    """The tab's events (``hi``: its widgets); outputs in other tabs by name."""
    everything = ["top.state", *VIEW, "edit.editor", "vectors.sliders"]
    page.on(hi.undo.click, on_undo, ["top.state", "image.overlay"], everything, api_name="undo")
    page.on(hi.redo.click, on_redo, ["top.state", "image.overlay"], everything, api_name="redo")
    page.on(hi.tab.select, on_history_tab, ["top.state"], ["history.table"], api_visibility="private")
    page.on(hi.table.select, on_goto, ["top.state", "image.overlay"], everything, api_visibility="private")
    page.on(hi.export.click, on_export, ["top.state"], ["history.files"], api_name="export")
