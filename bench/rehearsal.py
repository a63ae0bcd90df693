"""The real path at full size, through the app, timed step by step: "bring your own model" on a CPU.

    python bench/rehearsal.py --res 256 512 1024          # one fresh process per resolution
    python bench/rehearsal.py --res 256 --labels 16 --train-steps 600 --edit-steps 100    # the issue's journey

Stand-ins, since real weights cannot be downloaded here (tests/standins.py): an official-layout NVIDIA pickle with
random weights in the real configuration (paper256 at 256 px, config-f at 512 and 1024), served by the stand-in
Hub under the registry's name (ffhq-256 / ffhq-512 / ffhq-1024), and a tiny random face parser in the transformers
format served as `face-parsing`. The app is served in-process and driven with gradio_client exactly as a user's
browser drives it: load the model from the registry, sample and add N images to the Annotate tab (the parser
proposes each mask; a hand stroke corrects it), train the branch, sample, paint an edit and apply it, save the
vector, move its slider, export. For each step: wall seconds and the process's peak RSS so far (the model is in
it). A random-weight generator costs what a trained one does; a tiny random parser costs less than the real
SegFormer-b5 (~85 M parameters), so the labelling row is a lower bound.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(res: int, labels: int, train_steps: int, edit_steps: int) -> list:
    import numpy as np
    from gradio_client import Client, handle_file
    from PIL import Image

    import standins
    from fake_hub import FakeHub

    tmp = Path(tempfile.mkdtemp(prefix=f"rehearsal{res}-"))
    os.environ["HF_HUB_CACHE"] = str(tmp / "hf-cache")
    os.environ["EDITGAN_HOME"] = str(tmp / "home")
    rows = []

    def timed(what, fn):
        t = time.perf_counter()
        out = fn()
        rows.append({"step": what, "seconds": round(time.perf_counter() - t, 2), "peak_rss_mib": round(peak_mib())})
        print(json.dumps({"res": res, **rows[-1]}), flush=True)
        return out

    pkl = standins.official_pickle(res, tmp / "g.pkl")
    parser = standins.tiny_face_parser(tmp / "parser")
    with FakeHub() as fh:
        name = standins.serve_generator(fh, res, pkl)
        standins.serve_folder(fh, "jonathandinu/face-parsing", parser)
        os.environ["HF_ENDPOINT"] = fh.endpoint
        import app

        demo = app.build_ui()
        demo.queue(default_concurrency_limit=4)
        demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
        c = Client(demo.local_url, verbose=False)
        side = max(app.EDITOR_SIDE, res)

        from demo.session import Session

        def payload(mask, tag, rgb):
            layer = np.zeros((side, side, 4), np.uint8)
            layer[mask] = (*rgb, 255)
            p, bg = tmp / f"{tag}.png", tmp / "bg.png"
            Image.fromarray(layer).save(p)
            Image.fromarray(np.zeros((side, side, 4), np.uint8)).save(bg)
            return {"background": handle_file(str(bg)), "layers": [handle_file(str(p))], "composite": None}

        yy, xx = np.mgrid[:side, :side]
        stroke = (yy - side // 2) ** 2 + (xx - side // 2) ** 2 < (side // 6) ** 2
        t0 = time.perf_counter()
        timed("load the model from the registry (download + load)", lambda: c.predict(model=name, api_name="/load_model"))
        probe = Session(app.STUDIO)          # the class table the page shows (same process)
        probe.set_model(name)
        names, palette = probe.class_table()
        hair, skin = palette[names.index("hair")], palette[names.index("skin")]

        def annotate():
            for seed in range(labels):
                c.predict(model=name, seed=seed, truncation=0.7, class_idx=0, overlay=False, api_name="/sample")
                _, idx, _ = c.predict(model=name, api_name="/annotate_add")
                c.predict(painted=payload(stroke, f"s{seed}", hair), index=idx, api_name="/annotate_save")
        timed(f"sample + parser proposal + hand correction, {labels} images", annotate)
        timed(f"train the branch (at most {train_steps} steps)", lambda: c.predict(steps=train_steps,
                                                                                  api_name="/train_branch"))
        timed("sample the image to edit", lambda: c.predict(model=name, seed=50, truncation=0.7, class_idx=0,
                                                            overlay=False, api_name="/sample"))
        square = np.zeros((side, side), bool)
        square[side // 3: side // 2, side // 3: 2 * side // 3] = True
        timed(f"mask edit ({edit_steps} steps)", lambda: c.predict(model=name, painted=payload(square, "edit", skin),
                                                                   steps=edit_steps, overlay=False, api_name="/edit"))
        rows.append({"step": "first mask edit reached (wall, from load)", "seconds": round(time.perf_counter() - t0, 1),
                     "peak_rss_mib": round(peak_mib())})
        timed("save the vector", lambda: c.predict(name="rehearsal", api_name="/save_vector"))
        timed("move its slider (one generator pass)", lambda: c.predict(scales={"rehearsal": 1.5}, refine=0,
                                                                        api_name="/apply_vectors"))
        timed("export result, mask and latent", lambda: c.predict(api_name="/export"))
        demo.close()
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--labels", type=int, default=16)
    p.add_argument("--train-steps", type=int, default=600)
    p.add_argument("--edit-steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        import torch

        from editgan_core.runtime import tune_allocator

        tune_allocator()
        if args.threads:
            torch.set_num_threads(args.threads)
        print("RESULT " + json.dumps(one(args.one, args.labels, args.train_steps, args.edit_steps)), flush=True)
        return
    table = {}
    for res in args.res:
        cmd = [sys.executable, __file__, "--one", str(res), "--labels", str(args.labels), "--train-steps",
               str(args.train_steps), "--edit-steps", str(args.edit_steps), "--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(out.stdout[-3000:], out.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"the {res}-px run failed")
        table[res] = json.loads(line[7:])
    steps = [r["step"] for r in table[args.res[0]]]
    print("\n| step | " + " | ".join(f"{r} px: s (peak RSS MiB)" for r in args.res) + " |")
    print("|---|" + "---|" * len(args.res))
    for i, s in enumerate(steps):
        print(f"| {s} | " + " | ".join(f"{table[r][i]['seconds']} ({table[r][i]['peak_rss_mib']})" for r in args.res)
              + " |")


if __name__ == "__main__":
    main()
