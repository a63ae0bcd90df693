"""The Vectors tab: one slider per editing vector (with optional refinement), a by-name endpoint for scripts,
a preview on other images, vector files up and down, and a vector library on the Hub."""

from __future__ import annotations

import inspect
import shutil
from types import SimpleNamespace

import gradio as gr

from demo.hubsync import pull_library, push_library
from demo.session import Session
from editgan_core.errors import EditGANError
from editgan_core.loaders.hub import check_repo_name, push_folder
from editgan_core.settings import APPLY, REFINE, check_number
from editgan_core.storage.files import clip
from editgan_core.storage.kits import read_manifest

from .common import MAX_SLIDERS, Page, caption, downloads, show, slider_updates, ui_action

HINT = ("**Move a slider** to apply a saved edit to the current image, at any strength; save new ones from the "
        "Edit tab.")


def layout() -> SimpleNamespace:
    with gr.Tab("Vectors", id="vectors"):
        gr.Markdown(HINT)
        with gr.Row():
            refine = gr.Radio([str(c) for c in REFINE.choices], value=str(REFINE.choices[0]),
                              label="Refinement steps")
            reset = gr.Button("Reset sliders")
        sliders = [gr.Slider(*APPLY.slider_range, value=0, step=APPLY.slider_step, label=f"vector {i}",
                                     visible=False) for i in range(MAX_SLIDERS)]
        scales_json = gr.JSON(visible=False)          # the by-name endpoint's input (scripts)
        with gr.Accordion(f"Preview on {APPLY.preview_count} other images, files and Hub", open=False):
            with gr.Row():
                pick = gr.Dropdown([], label="Vector", allow_custom_value=False)
                pscale = gr.Slider(*APPLY.slider_range, value=1, step=0.5, label="Scale")
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
        with gr.Accordion("Publish a kit: this model made editable for anyone (branch, vectors, model card)",
                          open=False):
            with gr.Row():
                kit_repo = gr.Textbox(label="Hub repo (model) for the kit; empty: only the download",
                                      placeholder="user/my-editgan-kit")
                kit_token = gr.Textbox(label="Hub token (empty: HF_TOKEN or your login)", type="password")
                kit_license = gr.Textbox(label="Generator licence id (empty: the registry's)", placeholder="mit")
                publish = gr.Button("Publish kit")
            kit_msg = gr.Markdown()
            kit_file = gr.File(label="The kit (zip)")
    return SimpleNamespace(**locals())


@ui_action
def on_scales(session: Session, refine: int, *scales: float):
    """The sliders, by slot. Only the image and its caption come back: the session changes in place and the
    History tab refreshes when opened -- fewer outputs, less work per slider move."""
    names = session.vector_names()[:MAX_SLIDERS]
    session.refine_steps = int(check_number("refinement steps", refine, integer=True))
    session.set_scales({n: float(v) for n, v in zip(names, scales)})
    return {"top.current": show(session.current.image), "top.caption": caption(session)}


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
    return {"top.current": show(session.current.image), "top.caption": caption(session)}


@ui_action
def on_reset(session: Session):
    session.set_scales({n: 0.0 for n in session.current.scales})
    return {"top.state": session, "top.current": show(session.current.image), "top.caption": caption(session),
            "history.table": session.history_rows(), **slider_updates(session)}


@ui_action
def on_preview(session: Session, vector: str, scale: float):
    if not vector:
        raise EditGANError("choose a vector")
    scale = check_number("the preview scale", scale, *APPLY.slider_range)
    return {"vectors.grid": [(show(im) if im.shape[0] < 128 else im, cap)
                             for im, cap in session.preview(vector, scale)]}


@ui_action
def on_upload_vector(session: Session, model: str, file: str):
    if file is None:
        raise EditGANError("choose a .safetensors vector file")
    vec = session.use_model(model).add_vector_file(file)
    return {"top.state": session, "vectors.vmsg": f"loaded vector **{vec.name}**",
            "vectors.pick": gr.update(choices=session.vector_names(), value=vec.name), **slider_updates(session)}


@ui_action
def on_download_vector(session: Session, vector: str):
    if not vector:
        raise EditGANError("choose a vector")
    return {"vectors.vout": str(session.export_vector(vector, downloads(session)))}


@ui_action
def on_push(session: Session, repo: str, token: str):
    if not session.vectors:
        raise EditGANError("no vectors to push")
    return {"vectors.hubmsg": push_library(list(session.vectors.values()), repo, token or None)}


@ui_action
def on_pull(session: Session, model: str, repo: str, token: str):
    vecs, msg = pull_library(repo, token or None, session.use_model(model).assets.identity)
    for v in vecs:
        session.vectors[v.name] = v
    return {"top.state": session, "vectors.hubmsg": msg, "vectors.pick": gr.update(choices=session.vector_names()),
            **slider_updates(session)}


@ui_action
def on_publish_kit(session: Session, repo: str, token: str, license: str, progress=gr.Progress()):
    """The session's model as a kit (its branch, every vector here, the card), zipped for download and pushed to
    ``repo`` when one is given. Says what went where."""
    session.use_model(session.model_ref)
    repo = check_repo_name(repo) if (repo or "").strip() else ""      # before any work
    folder = downloads(session)
    progress(0.1, desc="writing the kit")
    kit, parts = session.make_kit(folder, license=(license or "").strip(), repo=repo)
    archive = shutil.make_archive(str(folder / "editgan-kit"), "zip", kit)
    listed = ", ".join(sorted({p.split("/")[0] + ("/" if "/" in p else "") for p in read_manifest(kit)["files"]}))
    gen = f"referenced ({parts.generator_ref})" if parts.generator_ref else "included (a local model)"
    msg = (f"Kit written: {listed}, README.md (the model card); {len(parts.vectors)} vectors; the generator "
           f"{gen}.")
    if repo:
        progress(0.5, desc=f"uploading to {repo}")
        url = push_folder(kit, repo, token or None, what=f"kit of {session.model_ref}")
        msg += f" **Uploaded** to {repo} ({url}): open it with `--model hf://{repo}`."
    return {"vectors.kit_msg": msg, "vectors.kit_file": archive}


def wire(page: Page, vec: SimpleNamespace) -> None:
    """The tab's events (``vec``: its widgets); outputs in other tabs by name."""
    shown = ["top.current", "top.caption"]
    page.on([sl.input for sl in vec.sliders] + [vec.refine.change], on_scales,
            ["top.state", "vectors.refine", "vectors.sliders"], shown, api_name="set_scales",
            trigger_mode="always_last", show_progress="hidden", queue=False)
    page.on(vec.scales_json.change, on_apply_vectors, ["top.state", "vectors.scales_json", "vectors.refine"], shown,
            api_name="apply_vectors", concurrency_limit=None)
    page.on(vec.reset.click, on_reset, ["top.state"], ["top.state", *shown, "history.table", "vectors.sliders"],
            api_name="reset_sliders")
    page.on(vec.preview.click, on_preview, ["top.state", "vectors.pick", "vectors.pscale"], ["vectors.grid"],
            api_name="preview", concurrency_limit=None)
    listed = ["top.state", "vectors.pick", "vectors.sliders"]
    page.on(vec.vfile.upload, on_upload_vector, ["top.state", "top.model", "vectors.vfile"],
            ["top.state", "vectors.vmsg", *listed[1:]], api_name="upload_vector")
    page.on(vec.download.click, on_download_vector, ["top.state", "vectors.pick"], ["vectors.vout"],
            api_name="download_vector")
    page.on(vec.push.click, on_push, ["top.state", "vectors.repo", "vectors.token"], ["vectors.hubmsg"],
            api_name="push_vectors")
    page.on(vec.publish.click, on_publish_kit, ["top.state", "vectors.kit_repo", "vectors.kit_token", "vectors.kit_license"],
            ["vectors.kit_msg", "vectors.kit_file"], api_name="publish_kit", show_progress_on=[vec.kit_msg])
    page.on(vec.pull.click, on_pull, ["top.state", "top.model", "vectors.repo", "vectors.token"],
            ["top.state", "vectors.hubmsg", *listed[1:]], api_name="pull_vectors")
