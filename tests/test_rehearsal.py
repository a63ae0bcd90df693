"""The real path, rehearsed at full size: a registry-named official-layout pickle (random weights, the real
256-px configuration) and a face parser stand-in, both served by the stand-in Hub, taken through the app as a
user would: load from the registry, sample, label (the parser proposes; the user corrects by hand), train a
branch, edit, save and slide a vector, export. Both runs take minutes on 2 cores (256 px: about 5 min), so they
are marked slow (python -m pytest -m slow); bench/rehearsal.py times the steps."""

import os

import numpy as np
import pytest
from PIL import Image

from fakes import standins
from fakes.fake_hub import FakeHub


def _layer(side, painted, rgb):
    layer = np.zeros((side, side, 4), np.uint8)
    layer[painted] = (*rgb, 255)
    return layer


def _payload(tmp_path, layer, name):
    from gradio_client import handle_file

    p, bg = tmp_path / f"{name}.png", tmp_path / "bg.png"
    Image.fromarray(layer).save(p)
    Image.fromarray(np.zeros(layer.shape[:2] + (4,), np.uint8)).save(bg)
    return {"background": handle_file(str(bg)), "layers": [handle_file(str(p))], "composite": None}


def journey(res, tmp_path, monkeypatch, *, n_labels=3, train_steps=100, edit_steps=30):
    from gradio_client import Client

    import app
    from demo.ui.common import EDITOR_SIDE
    from demo.session import Session

    pkl = standins.official_pickle(res, tmp_path / f"g{res}.pkl")
    parser = standins.tiny_face_parser(tmp_path / "parser")
    with FakeHub() as fh:
        name = standins.serve_generator(fh, res, pkl)
        standins.serve_folder(fh, "jonathandinu/face-parsing", parser)
        monkeypatch.setenv("HF_ENDPOINT", fh.endpoint)
        demo = app.build_ui()
        demo.queue(default_concurrency_limit=4)
        demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
        try:
            c = Client(demo.local_url, verbose=False)
            out = c.predict(model=name, api_name="/load_model")
            assert "no segmentation branch yet" in out[0] and f"{res}x{res}" in out[0]
            side = max(EDITOR_SIDE, res)
            probe = Session(app.STUDIO)                 # the same process: the class table the page shows
            probe.set_model(name)
            names, palette = probe.class_table()
            assert "eye" in names and "lips" in names   # face-parsing's labels through the default class map
            hair, skin = palette[names.index("hair")], palette[names.index("skin")]
            for seed in range(n_labels):
                c.predict(model=name, seed=seed, truncation=0.7, class_idx=0, overlay=False, api_name="/sample")
                _, idx, msg = c.predict(model=name, api_name="/annotate_add")
                assert "parser face-parsing" in msg                           # the parser proposed the mask
                yy, xx = np.mgrid[:side, :side]
                stroke = (yy - side // 2) ** 2 + (xx - side // 2) ** 2 < (side // 6) ** 2   # the user corrects
                saved = c.predict(painted=_payload(tmp_path, _layer(side, stroke, hair), f"s{seed}"), index=idx,
                                  api_name="/annotate_save")
                assert "saved" in saved
            msg, branch_file = c.predict(steps=train_steps, api_name="/train_branch")
            assert "held-out mIoU" in msg and os.path.getsize(branch_file) > 10_000
            c.predict(model=name, seed=50, truncation=0.7, class_idx=0, overlay=False, api_name="/sample")
            square = np.zeros((side, side), bool)
            square[side // 3: side // 2, side // 3: 2 * side // 3] = True
            try:
                res_edit = c.predict(model=name, painted=_payload(tmp_path, _layer(side, square, skin), "edit"),
                                     steps=edit_steps, overlay=False, api_name="/edit")
            except Exception as e:  # noqa: BLE001
                # A random-weight stand-in may admit no better image within the steps; the user is told so.
                assert "found nothing better than the unchanged image" in str(e), e
                return
            assert "edited" in res_edit[1]
            c.predict(name="rehearsal", api_name="/save_vector")
            cur, caption = c.predict(scales={"rehearsal": 1.5}, refine=0, api_name="/apply_vectors")
            assert "rehearsal +1.50" in caption
            files = c.predict(api_name="/export")
            result = [f for f in files if f.endswith("_result.png")][0]
            assert np.asarray(Image.open(result)).shape == (res, res, 3)
        finally:
            demo.close()


@pytest.mark.slow
def test_full_size_256_journey_through_the_app(tmp_path, monkeypatch):
    journey(256, tmp_path, monkeypatch)


@pytest.mark.slow
def test_full_size_512_journey_through_the_app(tmp_path, monkeypatch):
    journey(512, tmp_path, monkeypatch)
