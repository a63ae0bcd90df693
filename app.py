"""EditGAN Studio -- Gradio app. Layout and wiring only; the work happens in demo.model.Studio.

Run locally with ``python app.py`` (http://127.0.0.1:7860); the same file runs as a Hugging Face Space.
"""

from __future__ import annotations

import argparse
import os

import gradio as gr

from demo.model import Studio
from editgan_core.errors import EditGANError
from editgan_core.runtime import tune_allocator

tune_allocator()
STUDIO = Studio()  # models load once per process and are shared by every session


def on_sample(model_ref: str, seed: float, truncation: float):
    try:
        image, caption = STUDIO.sample(model_ref, int(seed), truncation)
        return image, caption, STUDIO.describe(model_ref)
    except EditGANError as e:
        raise gr.Error(str(e)) from None


def build_ui() -> gr.Blocks:
    default = Studio.default_model()
    with gr.Blocks(title="EditGAN Studio") as demo:
        gr.Markdown("# EditGAN Studio\nEdit GAN images by repainting their part segmentation. "
                    "This build has the generator core; editing arrives with the next issues.")
        if default is None:
            gr.Markdown("> The built-in ToyFaces model is not in `checkpoints/` yet. Pick a registry model "
                        "(needs its file in the Hugging Face cache) or type a local path / `hf://org/repo/file`.")
        with gr.Row():
            with gr.Column(scale=1):
                model = gr.Dropdown(Studio.model_choices(), value=default, allow_custom_value=True, label="Model",
                                    info="registry name, local path or hf://org/repo/file[@revision]")
                seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
                trunc = gr.Slider(0.0, 1.5, value=0.7, step=0.05, label="Truncation psi")
                go = gr.Button("Generate", variant="primary")
                info = gr.Markdown()
            with gr.Column(scale=2):
                image = gr.Image(label="Sample", type="numpy", format="png", interactive=False, height=384)
                caption = gr.Markdown()
        go.click(on_sample, [model, seed, trunc], [image, caption, info], api_name="sample")
    return demo


def main() -> None:
    p = argparse.ArgumentParser(description="EditGAN Studio web app")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    p.add_argument("--share", action="store_true", help="create a public gradio.live link")
    args = p.parse_args()
    demo = build_ui()
    demo.queue(default_concurrency_limit=1, max_size=64)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share)


if __name__ == "__main__":
    main()
