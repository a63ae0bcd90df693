"""The studio's API with gradio_client, one client = one user session: every main endpoint, bad inputs with clear
messages after which the session keeps working, stop mid-optimisation, and sessions that never see each other."""

import os
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_generator
from editgan_core.checkpoints import save_native
from editgan_core.errors import EditGANError
from editgan_core.segbranch import generator_identity
from editgan_core.vectors import EditVector, save_vector

R = 64          # the built-in ToyFaces model
SHOW = 256      # small images are shown enlarged in the UI


@pytest.fixture(scope="module")
def app_module(tmp_path_factory):
    os.environ["EDITGAN_HOME"] = str(tmp_path_factory.mktemp("home"))
    import app
    return app


@pytest.fixture(scope="module")
def server(app_module):
    demo = app_module.build_ui()
    demo.queue(default_concurrency_limit=4)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    yield demo
    demo.close()


def client(server):
    from gradio_client import Client

    return Client(server.local_url, verbose=False)


def img(path):
    return np.asarray(Image.open(path).convert("RGB"))


def editor_payload(tmp_path, layer: np.ndarray, name="layer.png"):
    from gradio_client import handle_file

    p = tmp_path / name
    Image.fromarray(layer).save(p)
    bg = tmp_path / "bg.png"
    Image.fromarray(np.zeros(layer.shape[:2] + (4,), np.uint8)).save(bg)
    return {"background": handle_file(str(bg)), "layers": [handle_file(str(p))], "composite": None}


def sample(c, seed=5):
    out = c.predict("toyfaces", seed, 0.7, False, api_name="/sample")
    return out   # (current, shown, caption, fidelity, diff, history, editor, *sliders)


def mouth_layer(app_module, seed=5, cls_rgb=(0, 200, 120)) -> np.ndarray:
    """An RGBA layer (model resolution) painting "mouth" a few pixels past both corners of the mouth."""
    from demo.session import Session

    s = Session(app_module.STUDIO)
    s.set_model("toyfaces")
    lab = s.sample(seed, 0.7).labels
    rows, cols = np.nonzero(np.isin(lab, [8, 9]))
    layer = np.zeros((R, R, 4), np.uint8)
    y = int(rows.mean())
    layer[y:y + 2, cols.min() - 2:cols.max() + 3] = (*cls_rgb, 255)
    return layer


def test_studio_sample_matches_cli(tmp_path, app_module):
    from editgan_core.cli import main

    model = save_native(make_generator(), tmp_path / "m")
    im, caption = app_module.STUDIO.sample(str(model), 3, 0.7)
    main(["generate", "--model", str(model), "--seeds", "3", "--truncation", "0.7", "--out", str(tmp_path / "o")])
    assert np.array_equal(im, np.asarray(Image.open(tmp_path / "o" / "seed0003.png")))
    assert app_module.STUDIO.model(str(model)) is app_module.STUDIO.model(str(model))  # loaded once
    with pytest.raises(EditGANError, match="unknown model"):
        app_module.STUDIO.sample("no-such-model", 0, 0.7)


def test_sample_edit_save_slide_undo_export(server, app_module, tmp_path):
    c = client(server)
    out = sample(c)
    first = img(out[0])
    assert first.shape == (SHOW, SHOW, 3) and "sample seed 5" in out[2]
    res = c.predict("toyfaces", editor_payload(tmp_path, mouth_layer(app_module)), 30, False, api_name="/edit")
    status, edited = res[1], img(res[-1])
    assert "edited" in status and not np.array_equal(edited, first)
    msg = c.predict("wide mouth", api_name="/save_vector")[0]
    assert "saved vector **wide mouth**" in msg
    # Sliders: the vectors are (starter x5, then ours); move ours to 1.5.
    values = [0.0] * app_module.MAX_SLIDERS
    names = app_module.Session(app_module.STUDIO)
    names.set_model("toyfaces")
    idx = len(names.vector_names())
    values[idx] = 1.5
    cur, caption = c.predict(0, *values, api_name="/set_scales")
    slid = img(cur)
    assert "sliders wide mouth +1.50" in caption and not np.array_equal(slid, edited)
    values[idx] = 0.0
    cur0 = img(c.predict(0, *values, api_name="/set_scales")[0])
    assert np.array_equal(cur0, edited)             # scale 0 is the image before the sliders
    back = c.predict(False, api_name="/undo")
    assert "mask edit" in back[2]                   # the slider drag was one step
    files = c.predict(api_name="/export")
    names = sorted(os.path.basename(f) for f in files)
    assert any(n.endswith("_result.png") for n in names) and any(n.endswith("_mask.png") for n in names)
    assert any(n.endswith("_latent.safetensors") for n in names)
    assert img([f for f in files if f.endswith("_result.png")][0]).shape == (R, R, 3)   # files stay native
    grid = c.predict("wide mouth", 1.0, api_name="/preview")
    assert len(grid) == 8


def test_bad_inputs_are_clear_and_the_session_keeps_working(server, app_module, tmp_path):
    from gradio_client import handle_file

    c = client(server)
    sample(c, seed=11)
    # A non-image upload.
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(Exception, match="(?i)image"):
        c.predict("toyfaces", handle_file(str(bad)), "crop", api_name="/upload")
    # A tiny image.
    Image.new("RGB", (4, 4)).save(tmp_path / "tiny.png")
    with pytest.raises(Exception, match="only 4x4"):
        c.predict("toyfaces", handle_file(str(tmp_path / "tiny.png")), "crop", api_name="/upload")
    # A huge image (a decompression bomb: 81 megapixels in a few kB) is refused before it is decoded.
    Image.new("1", (9000, 9000)).save(tmp_path / "huge.png")
    with pytest.raises(Exception, match="limit"):
        c.predict("toyfaces", handle_file(str(tmp_path / "huge.png")), "crop", api_name="/upload")
    # An empty mask (nothing painted).
    with pytest.raises(Exception, match="nothing was painted|unchanged"):
        c.predict("toyfaces", editor_payload(tmp_path, np.zeros((R, R, 4), np.uint8)), 10, False, api_name="/edit")
    # A vector from another model.
    G = make_generator()
    other = EditVector(name="alien", delta=torch.zeros(G.num_ws, G.w_dim), generator=generator_identity(G, "tiny"),
                       classes=["skin"])
    path = save_vector(other, tmp_path / "lib")
    with pytest.raises(Exception, match="another model"):
        c.predict("toyfaces", handle_file(str(path)), api_name="/upload_vector")
    # An unknown colour is mapped to the nearest class and said so.
    layer = mouth_layer(app_module, seed=11, cls_rgb=(3, 198, 121))
    res = c.predict("toyfaces", editor_payload(tmp_path, layer, "odd.png"), 20, False, api_name="/edit")
    assert "outside the palette" in res[1]
    # ... and after all that the session still works: a wide photo is cropped and embedded.
    Image.fromarray((np.random.default_rng(0).random((90, 160, 3)) * 255).astype(np.uint8)).save(tmp_path / "w.png")
    prepared, boxed, note = c.predict("toyfaces", handle_file(str(tmp_path / "w.png")), "crop", api_name="/upload")
    assert "crop" in note.lower() and img(prepared).shape[:2] == (SHOW, SHOW)
    box = img(boxed)
    assert box.shape[:2] == (144, 256)                          # 160x90 shown at 256 wide
    red = (box[..., 0] == 255) & (box[..., 1] == 0) & (box[..., 2] == 0)
    cols = np.nonzero(red.any(0))[0]
    assert cols.min() > 30 and cols.max() < 225                 # the central square is outlined, not the edges
    out = c.predict("toyfaces", 5, False, api_name="/embed")
    assert "embedded photo (5 steps" in out[2] and "PSNR" in out[3]


def test_stop_mid_edit_keeps_best_so_far(server, app_module, tmp_path):
    c = client(server)
    sample(c)
    job = c.submit("toyfaces", editor_payload(tmp_path, mouth_layer(app_module)), 200, False, api_name="/edit")
    time.sleep(3.0)
    c.predict(api_name="/stop")
    res = job.result(timeout=120)
    assert "stopped: best so far kept" in res[1]
    steps = int(res[1].split(" steps")[0].split()[-1])
    assert 0 < steps < 200


def test_sessions_do_not_share_state(server):
    a, b = client(server), client(server)
    sa, sb = sample(a, seed=1), sample(b, seed=2)
    assert not np.array_equal(img(sa[0]), img(sb[0]))
    sample(a, seed=3)
    back = a.predict(False, api_name="/undo")
    assert "seed 1" in back[2]
    with pytest.raises(Exception, match="nothing to undo"):
        b.predict(False, api_name="/undo")            # b has one step only: a's history is not b's


def test_annotate_and_train_a_branch_for_a_model_without_one(server, tmp_path):
    """A generator with no branch: annotate a few samples by colour, train, then the Edit tab works on it."""
    c = client(server)
    model = str(save_native(make_generator(), tmp_path / "tiny"))
    c.predict(model, api_name="/load_model")
    for seed in range(4):
        out = c.predict(model, seed, 0.7, False, api_name="/sample")
        im = img(out[0])[::SHOW // 32, ::SHOW // 32]            # the tiny model is 32 px
        layer = np.zeros((32, 32, 4), np.uint8)
        layer[..., 3] = 255
        dom = im.argmax(2)                                      # paint by dominant channel: background/skin/hair
        for k, rgb in enumerate([(0, 0, 0), (255, 204, 153), (140, 70, 20)]):
            layer[dom == k, :3] = rgb
        _, idx, _ = c.predict(model, api_name="/annotate_add")
        msg = c.predict(editor_payload(tmp_path, layer), idx, api_name="/annotate_save")
        assert "saved" in msg
    msg, branch_file = c.predict(200, api_name="/train_branch")
    assert "held-out mIoU" in msg and os.path.getsize(branch_file) > 1000


def test_concurrent_sliders_while_an_edit_runs(server, app_module, tmp_path):
    """8 clients move sliders while a 9th runs an edit: no errors, each sees only its own images."""
    editor = client(server)
    sample(editor)
    job = editor.submit("toyfaces", editor_payload(tmp_path, mouth_layer(app_module)), 60, False, api_name="/edit")
    errors, results = [], {}

    def user(k):
        try:
            c = client(server)
            sample(c, seed=100 + k)
            vals = [0.0] * app_module.MAX_SLIDERS
            for j in range(3):
                vals[k % 5] = 0.5 * (j + 1)
                cur, caption = c.predict(0, *vals, api_name="/set_scales")
            results[k] = (img(cur), caption)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=user, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert len(results) == 8
    for k, (im, caption) in results.items():
        assert "+1.50" in caption
    assert len({r[0].tobytes() for r in results.values()}) == 8      # eight different faces: no leaks
    assert "edited" in job.result(timeout=300)[1]


def test_session_history_slider_drag_is_one_step_and_redo_branch_drops(app_module):
    """Without HTTP: a drag is one step; undo then a new move replaces the redo branch; redo past the end says so."""
    from demo.session import Session

    s = Session(app_module.STUDIO)
    s.set_model("toyfaces")
    s.sample(2, 0.7)
    name = s.vector_names()[0]
    s.set_scales({name: 0.5})
    s.set_scales({name: 1.0})
    assert len(s.steps) == 2 and s.current.scales == {name: 1.0}
    s.undo()
    s.set_scales({name: -1.0})
    assert len(s.steps) == 2 and s.current.scales == {name: -1.0}
    with pytest.raises(EditGANError, match="nothing to redo"):
        s.redo()
    with pytest.raises(EditGANError, match="no vector named"):
        s.set_scales({"nope": 1.0})
    with pytest.raises(EditGANError, match="out of range"):
        s.set_scales({name: 99.0})
    assert s.current.scales == {name: -1.0}           # refused input changed nothing
