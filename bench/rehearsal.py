"""The real path at full size, through the app, timed step by step: "bring your own model" on a CPU.

    python bench/rehearsal.py --res 256 512 1024          # one fresh process per resolution
    python bench/rehearsal.py --res 256 --labels 16 --train-steps 600 --edit-steps 100    # the issue's journey

Stand-ins, since real weights cannot be downloaded here (tests/fakes/standins.py): an official-layout NVIDIA pickle with
random weights in the real configuration (paper256 at 256 px, config-f at 512 and 1024), served by the stand-in
Hub under the registry's name (ffhq-256 / ffhq-512 / ffhq-1024), and a tiny random face parser in the transformers
format served as `face-parsing`. The app is served in-process and driven with gradio_client exactly as a user's
browser drives it: load the model from the registry, sample and add N images to the Annotate tab (the parser
proposes each mask; a hand stroke corrects it), train the branch, sample, paint an edit and apply it, save the
vector, move its slider, export. For each step: wall seconds and the process's peak RSS so far (the model is in
it). A random-weight generator costs what a trained one does; a tiny random parser costs less than the real
SegFormer-b5 (~85 M parameters), so the labelling row is a lower bound.

    python bench/rehearsal.py --car            # EditGAN's own domain: car-512, a 4:3 photo handed back

The car journey (``--car``): the registry's ``car-512`` (512 x 384 pictures in a 512 net, display rows 64:448),
served by the stand-in Hub as an official-layout config-f pickle with random weights (the loader reads a file by
its content; rosinality's format has its own parity tests). No transformers model parses car parts (docs: Hub
part segmenters are YOLO/detectron2), so the user renames the classes to car parts and paints each label by hand:
body, wheels, windows, lights over the background, varied per image. Then: train, paint bigger wheels and edit,
save the vector; upload a 4:3 photo (a 1024 x 768 enlargement of the stand-in's own picture, rows 64:448), cut
the model's way (the car's visible part fitted to the photo), embed it, apply the vector and export: the photo
comes back at 1024 x 768, changed only where the parts changed. ``--picture`` writes photo and result side by
side.
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


def editor_side() -> int:
    """The sketch pad's side (imported late: the app's modules read HF_ENDPOINT when first imported)."""
    from demo.ui.common import EDITOR_SIDE

    return EDITOR_SIDE


class Journey:
    """One journey through the app served in this process: a scratch folder (Hub cache, EditGAN home), the
    steps timed with the process's peak RSS so far, and the sketch pad's payloads."""

    def __init__(self, tag: str):
        self.tag = tag
        self.tmp = Path(tempfile.mkdtemp(prefix=f"rehearsal-{tag}-"))
        os.environ["HF_HUB_CACHE"] = str(self.tmp / "hf-cache")
        os.environ["EDITGAN_HOME"] = str(self.tmp / "home")
        self.rows: list = []
        self.client = self.demo = None

    def timed(self, what: str, fn):
        t = time.perf_counter()
        out = fn()
        self.mark(what, round(time.perf_counter() - t, 2))
        return out

    def mark(self, what: str, seconds: float) -> None:
        self.rows.append({"step": what, "seconds": seconds, "peak_rss_mib": round(peak_mib())})
        print(json.dumps({"res": self.tag, **self.rows[-1]}), flush=True)

    def launch(self, endpoint: str):
        """The app, served here against the stand-in Hub at ``endpoint``, and a gradio_client on it. -> app."""
        from gradio_client import Client

        os.environ["HF_ENDPOINT"] = endpoint
        import app

        self.demo = app.build_ui()
        self.demo.queue(default_concurrency_limit=4)
        self.demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
        self.client = Client(self.demo.local_url, verbose=False)
        return app

    def payload(self, layer, name: str) -> dict:
        """An RGBA layer [side, side, 4] as the sketch pad sends it (transparent background, one layer)."""
        import numpy as np
        from gradio_client import handle_file
        from PIL import Image

        p, bg = self.tmp / f"{name}.png", self.tmp / "bg.png"
        Image.fromarray(layer).save(p)
        Image.fromarray(np.zeros(layer.shape[:2] + (4,), np.uint8)).save(bg)
        return {"background": handle_file(str(bg)), "layers": [handle_file(str(p))], "composite": None}


def layer_of(mask, rgb):
    """The pixels of ``mask`` painted in ``rgb``, the rest transparent."""
    import numpy as np

    layer = np.zeros(mask.shape + (4,), np.uint8)
    layer[mask] = (*rgb, 255)
    return layer


def one(res: int, labels: int, train_steps: int, edit_steps: int) -> list:
    import numpy as np

    from fakes import standins
    from fakes.fake_hub import FakeHub

    j = Journey(str(res))
    pkl = standins.official_pickle(res, j.tmp / "g.pkl")
    parser = standins.tiny_face_parser(j.tmp / "parser")
    with FakeHub() as fh:
        name = standins.serve_generator(fh, res, pkl)
        standins.serve_folder(fh, "jonathandinu/face-parsing", parser)
        app = j.launch(fh.endpoint)
        c = j.client
        side = max(editor_side(), res)

        from demo.session import Session

        yy, xx = np.mgrid[:side, :side]
        stroke = (yy - side // 2) ** 2 + (xx - side // 2) ** 2 < (side // 6) ** 2
        t0 = time.perf_counter()
        j.timed("load the model from the registry (download + load)",
                lambda: c.predict(model=name, api_name="/load_model"))
        probe = Session(app.STUDIO)          # the class table the page shows (same process)
        probe.set_model(name)
        names, palette = probe.class_table()
        hair, skin = palette[names.index("hair")], palette[names.index("skin")]

        def annotate():
            for seed in range(labels):
                c.predict(model=name, seed=seed, truncation=0.7, class_idx=0, overlay=False, api_name="/sample")
                _, idx, _ = c.predict(model=name, api_name="/annotate_add")
                c.predict(painted=j.payload(layer_of(stroke, hair), f"s{seed}"), index=idx,
                          api_name="/annotate_save")
        j.timed(f"sample + parser proposal + hand correction, {labels} images", annotate)
        j.timed(f"train the branch (at most {train_steps} steps)", lambda: c.predict(steps=train_steps,
                                                                                    api_name="/train_branch"))
        j.timed("sample the image to edit", lambda: c.predict(model=name, seed=50, truncation=0.7, class_idx=0,
                                                              overlay=False, api_name="/sample"))
        square = np.zeros((side, side), bool)
        square[side // 3: side // 2, side // 3: 2 * side // 3] = True
        j.timed(f"mask edit ({edit_steps} steps)",
                lambda: c.predict(model=name, painted=j.payload(layer_of(square, skin), "edit"), steps=edit_steps,
                                  overlay=False, api_name="/edit"))
        j.mark("first mask edit reached (wall, from load)", round(time.perf_counter() - t0, 1))
        j.timed("save the vector", lambda: c.predict(name="rehearsal", api_name="/save_vector"))
        j.timed("move its slider (one generator pass)", lambda: c.predict(scales={"rehearsal": 1.5}, refine=0,
                                                                          api_name="/apply_vectors"))
        j.timed("export result, mask and latent", lambda: c.predict(api_name="/export"))
        j.demo.close()
    return j.rows


CAR_PARTS = ["background", "body", "wheel", "window", "light"]


def car_layout(side: int, seed: int, palette, wheel_scale: float = 1.0):
    """A hand-painted car label map as an RGBA layer: body, two wheels, a window band, lights, on background;
    proportions vary with ``seed``. The car sits in rows 64:448 of 512 (the model's visible part)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    s = side / 512
    yy, xx = np.mgrid[:side, :side]
    colour = {n: palette[i] for i, n in enumerate(CAR_PARTS)}
    layer = np.zeros((side, side, 4), np.uint8)
    layer[..., :3], layer[..., 3] = colour["background"], 255
    top, bottom = (200 + rng.integers(-20, 20)) * s, (360 + rng.integers(-15, 15)) * s
    left, right = (60 + rng.integers(-20, 20)) * s, (450 + rng.integers(-20, 20)) * s
    body = (yy >= top) & (yy < bottom) & (xx >= left) & (xx < right)
    window = (yy >= top - 50 * s) & (yy < top + 10 * s) & (xx >= left + 90 * s) & (xx < right - 110 * s)
    layer[body | window, :3] = colour["body"]
    layer[window & (yy < top), :3] = colour["window"]
    radius = (38 + rng.integers(-6, 6)) * s * wheel_scale
    for cx in (left + 80 * s, right - 80 * s):
        layer[(yy - bottom) ** 2 + (xx - cx) ** 2 < radius ** 2, :3] = colour["wheel"]
    layer[(yy >= top + 10 * s) & (yy < top + 40 * s) & (xx >= right - 25 * s) & (xx < right), :3] = colour["light"]
    return layer


def one_car(labels: int, train_steps: int, edit_steps: int, embed_steps: int, picture: str = "") -> list:
    """The car journey through the app (see the module docstring)."""
    import numpy as np
    import torch
    from gradio_client import handle_file
    from PIL import Image

    from fakes import standins
    from editgan_core.loaders.registry import REGISTRY
    from fakes.fake_hub import FakeHub

    j = Journey("car-512")
    G = standins.full_size_generator(512, seed=7)
    pkl = standins.official_pickle(512, j.tmp / "car.pkl", seed=7)
    spec = REGISTRY["car-512"]
    with FakeHub() as fh:
        fh.add(spec.repo_id, spec.filename, pkl.read_bytes())
        fh.commit = spec.revision or fh.commit          # the registry pins this model's revision
        app = j.launch(fh.endpoint)
        c = j.client
        side = max(editor_side(), 512)

        from demo.session import Session

        t0 = time.perf_counter()
        j.timed("load car-512 from the registry (download + load)",
                lambda: c.predict(model="car-512", api_name="/load_model"))
        probe = Session(app.STUDIO)
        probe.set_model("car-512")
        names, palette = probe.class_table()
        parts = CAR_PARTS + [f"part {i}" for i in range(len(CAR_PARTS), len(names))]
        c.predict(names=", ".join(parts), api_name="/class_names")

        def annotate():
            for seed in range(labels):
                c.predict(model="car-512", seed=seed, truncation=0.7, class_idx=0, overlay=False, api_name="/sample")
                _, idx, _ = c.predict(model="car-512", api_name="/annotate_add")
                c.predict(painted=j.payload(car_layout(side, seed, palette), f"a{seed}"), index=idx,
                          api_name="/annotate_save")
        j.timed(f"sample + paint every label by hand, {labels} images", annotate)
        j.timed(f"train the branch (at most {train_steps} steps)", lambda: c.predict(steps=train_steps,
                                                                                    api_name="/train_branch"))
        j.timed("sample the car to edit", lambda: c.predict(model="car-512", seed=50, truncation=0.7, class_idx=0,
                                                            overlay=False, api_name="/sample"))
        wheels = car_layout(side, 50, palette, wheel_scale=1.35)
        wheels[~np.all(wheels[..., :3] == palette[CAR_PARTS.index("wheel")], -1), 3] = 0   # only the wheels painted
        j.timed(f"mask edit: bigger wheels ({edit_steps} steps)",
                lambda: c.predict(model="car-512", painted=j.payload(wheels, "edit"), steps=edit_steps, overlay=False,
                                  api_name="/edit"))
        j.mark("first mask edit reached (wall, from load)", round(time.perf_counter() - t0, 1))
        j.timed("save the vector", lambda: c.predict(name="bigger wheels", api_name="/save_vector"))
        with torch.no_grad():    # a 4:3 photo: the stand-in's own picture (rows 64:448), enlarged to 1024 x 768
            img = G.synthesis(G.mapping_ws(torch.randn(1, 512, generator=torch.Generator().manual_seed(99)),
                                           truncation_psi=0.7))
        pic = ((img[0].permute(1, 2, 0) * 127.5 + 128).clamp(0, 255).byte().numpy())[64:448]
        photo_path = j.tmp / "car_photo.png"
        Image.fromarray(pic).resize((1024, 768), Image.LANCZOS).save(photo_path)
        j.timed("upload a 1024 x 768 photo (the model's cut)",
                lambda: c.predict(model="car-512", photo=handle_file(str(photo_path)), fit="crop",
                                  cut="the model's", api_name="/upload"))
        j.timed(f"embed it ({embed_steps} steps)", lambda: c.predict(model="car-512", steps=embed_steps,
                                                                     overlay=False, tune_steps=0, api_name="/embed"))
        j.timed("apply the vector at 1.5 (one generator pass)",
                lambda: c.predict(scales={"bigger wheels": 1.5}, refine=0, api_name="/apply_vectors"))
        exported = j.timed("export: the photo at its size, result, mask, latent",
                           lambda: c.predict(api_name="/export"))
        j.demo.close()
    photo_out = next(str(p) for p in exported if str(p).endswith("_photo.png"))
    got = Image.open(photo_out)
    before = np.asarray(Image.open(photo_path).convert("RGB"), np.int16)
    after = np.asarray(got.convert("RGB"), np.int16)
    changed = np.abs(after - before).max(-1) > 0
    j.mark(f"handed back: {got.size[0]} x {got.size[1]}, {changed.mean():.1%} of its pixels changed", 0)
    if picture:
        both = Image.new("RGB", (2048 + 16, 768), "white")
        both.paste(Image.open(photo_path).convert("RGB"), (0, 0))
        both.paste(got.convert("RGB"), (1024 + 16, 0))
        both.save(picture)
    return j.rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--labels", type=int, default=16)
    p.add_argument("--train-steps", type=int, default=600)
    p.add_argument("--edit-steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--car", action="store_true", help="the car journey (car-512, a 4:3 photo handed back)")
    p.add_argument("--embed-steps", type=int, default=30, help="embedding steps of the car photo")
    p.add_argument("--picture", default="", help="with --car: write the photo and the result side by side here")
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.car:
        import torch

        from editgan_core.runtime import tune_allocator

        tune_allocator()
        if args.threads:
            torch.set_num_threads(args.threads)
        rows = one_car(args.labels, args.train_steps, args.edit_steps, args.embed_steps, args.picture)
        print("\n| step | car-512: s (peak RSS MiB) |\n|---|---|")
        for r in rows:
            print(f"| {r['step']} | {r['seconds']} ({r['peak_rss_mib']}) |")
        return
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
