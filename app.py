"""EditGAN Studio -- the launcher. The page is built by demo.ui (one module per tab: layout, handlers and events);
the work happens in demo.session.Session (one per user, in gr.State) over demo.model.Studio (models, loaded once
per process).

Run locally with ``python app.py`` (http://127.0.0.1:7860); the same file runs as a Hugging Face Space (CPU, GPU
or ZeroGPU: the long actions carry ``spaces.GPU`` when the ``spaces`` package is there, and run as they are when
it is not). Long actions (embed, edit, train) stream their progress from the session; closing the page ends them.
"""

from __future__ import annotations

import argparse
import os

from demo.ui import MAX_UPLOAD, OUT, STUDIO, build_ui, clean_downloads
from editgan_core.models import fast
from editgan_core.runtime import configure_threads, tune_allocator

__all__ = ["build_ui", "main", "STUDIO"]
tune_allocator()                  # process-wide: freed activations are reused, not returned to the OS


def main() -> None:
    p = argparse.ArgumentParser(description="EditGAN Studio web app")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    p.add_argument("--share", action="store_true", help="create a public gradio.live link")
    p.add_argument("--model", default=os.environ.get("EDITGAN_MODEL") or None,
                   help="the model the page opens on (a sample of it is shown at once): a registry name, a local path "
                        "or kit folder, or hf://user/kit (default: $EDITGAN_MODEL, else the built-in ToyFaces model)")
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
    demo = build_ui(args.model)
    demo.queue(default_concurrency_limit=4, max_size=64)
    clean_downloads()
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, allowed_paths=[str(OUT)],
                max_file_size=MAX_UPLOAD)


if __name__ == "__main__":
    main()
