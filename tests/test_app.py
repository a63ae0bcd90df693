"""The studio's API with gradio_client, one client = one user session: every main endpoint, bad inputs with clear
messages after which the session keeps working, stop mid-optimisation, and sessions that never see each other."""

import json
import os
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_generator
from editgan_core.loaders.checkpoints import save_native
from editgan_core.errors import EditGANError
from editgan_core.storage.identity import generator_identity
from editgan_core.storage.vectors import EditVector, save_vector

R = 64          # the built-in ToyFaces model
MAX_SLIDERS = 12  # the Vectors tab's slider slots (demo.ui.common.MAX_SLIDERS, checked in app_module)
SHOW = 256      # small images are shown enlarged in the UI


@pytest.fixture(scope="module")
def app_module(tmp_path_factory):
    os.environ["EDITGAN_HOME"] = str(tmp_path_factory.mktemp("home"))
    import app
    from demo.ui import common

    assert common.MAX_SLIDERS == MAX_SLIDERS
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
    out = c.predict(model="toyfaces", seed=seed, truncation=0.7, class_idx=0, overlay=False, api_name="/sample")
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


def test_session_sample_matches_cli_and_samples_conditional_models(tmp_path, app_module):
    """The UI's own sampling path (Session.sample) gives the CLI's picture for a seed, unconditional and
    conditional (defect 3: it used to ignore c_dim)."""
    from demo.session import Session
    from editgan_core.commands import main

    for name, G, extra in [("m", make_generator(), []), ("cond", make_generator(c_dim=4), ["--class", "2"])]:
        model = save_native(G, tmp_path / name)
        s = Session(app_module.STUDIO)
        s.set_model(str(model))
        step = s.sample(3, 0.7, class_idx=2 if G.c_dim else None)
        assert main(["generate", "--model", str(model), "--seeds", "3", "--truncation", "0.7",
                     "--out", str(tmp_path / f"out-{name}"), *extra]) == 0
        assert np.array_equal(step.image, img(tmp_path / f"out-{name}" / "seed0003.png"))
    other = s.sample(3, 0.7, class_idx=1)
    assert not np.array_equal(other.image, step.image)          # the class changes the picture
    with pytest.raises(EditGANError, match="conditional"):
        s.sample(3, 0.7, class_idx=None)
    with pytest.raises(EditGANError, match="conditional: choose a class between 0 and 3"):
        s.sample(3, 0.7, class_idx=9)


def test_registry_hub_model_loads_samples_and_shows_its_card(server, app_module, tmp_path, monkeypatch):
    """A registry Hub entry (cifar10-32, conditional) served by the stand-in Hub, through /load_model: loaded,
    sampled with a class, model card shown (defect 1: the card raised TypeError for every Hub entry)."""
    from fakes import fake_nvidia
    from editgan_core.loaders.registry import REGISTRY
    from fakes.fake_hub import FakeHub

    spec = REGISTRY["cifar10-32"]
    fake_nvidia.save_snapshot(make_generator(c_dim=10), tmp_path / "cifar.pkl")
    with FakeHub() as fh:
        fh.add(spec.repo_id, spec.filename, (tmp_path / "cifar.pkl").read_bytes())
        monkeypatch.setenv("HF_ENDPOINT", fh.endpoint)
        c = client(server)
        out = c.predict(model="cifar10-32", api_name="/load_model")
        assert fh.requests >= 1
    desc, card, class_box = out[0], out[16], out[-2]     # [-1]: the Annotate tab's labeler box
    assert "**cifar10-32**" in desc and "conditional on 10 classes" in desc
    assert "CIFAR-10" in card and "hf://hysts/StyleGAN2/models/stylegan2-cifar10-32x32.pkl" in card
    assert class_box["visible"] is True and class_box["maximum"] == 9
    a = c.predict(model="cifar10-32", seed=1, truncation=1.0, class_idx=3, overlay=False, api_name="/sample")
    b = c.predict(model="cifar10-32", seed=1, truncation=1.0, class_idx=4, overlay=False, api_name="/sample")
    assert "class 3" in a[2] and img(a[0]).shape == (SHOW, SHOW, 3)
    assert not np.array_equal(img(a[0]), img(b[0]))
    with pytest.raises(Exception, match="maximum value 9|between 0 and 9"):
        c.predict(model="cifar10-32", seed=1, truncation=1.0, class_idx=12, overlay=False, api_name="/sample")


def test_sample_edit_save_slide_undo_export(server, app_module, tmp_path):
    c = client(server)
    out = sample(c)
    first = img(out[0])
    assert first.shape == (SHOW, SHOW, 3) and "sample seed 5" in out[2]
    res = c.predict("toyfaces", editor_payload(tmp_path, mouth_layer(app_module)), 30, False, api_name="/edit")
    status, edited = res[1], img(res[-1])
    assert "edited" in status and not np.array_equal(edited, first)
    assert "of the painted pixels" in status and "PSNR outside the region" in status     # the quality readout
    msg = c.predict("wide mouth", api_name="/save_vector")[0]
    assert "saved vector **wide mouth**" in msg
    # Sliders: the vectors are (starter x5, then ours); move ours to 1.5.
    from demo.session import Session

    values = [0.0] * MAX_SLIDERS
    names = Session(app_module.STUDIO)
    names.set_model("toyfaces")
    idx = len(names.vector_names())
    values[idx] = 1.5
    cur, caption = c.predict("0", *values, api_name="/set_scales")
    slid = img(cur)
    assert "sliders wide mouth +1.50" in caption and not np.array_equal(slid, edited)
    values[idx] = 0.0
    cur0 = img(c.predict("0", *values, api_name="/set_scales")[0])
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


def test_a_photo_edit_is_handed_back_at_its_size_with_the_region_shown(server, app_module, tmp_path):
    """Upload a photo (a sample drawn at 4x the model's size, with a texture the model never draws), embed it, edit
    the mouth: the status says how much of the photo the edit changes; the Image tab hands the edit back at the
    photo's size, changed only inside the region it can tint over the photo."""
    from gradio_client import handle_file

    from demo.session import Session

    c = client(server)
    s = Session(app_module.STUDIO)
    s.set_model("toyfaces")
    face = s.sample(5, 0.7).image
    rng = np.random.default_rng(1)
    photo = np.asarray(Image.fromarray(face).resize((4 * R, 4 * R), Image.BICUBIC)).astype(np.int16)
    photo = np.clip(photo + rng.integers(-6, 7, photo.shape), 0, 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "me.png")
    with pytest.raises(Exception, match="upload and embed a photo first"):
        c.predict(False, api_name="/hand_back")
    c.predict("toyfaces", handle_file(str(tmp_path / "me.png")), "crop", api_name="/upload")
    c.predict("toyfaces", 60, False, api_name="/embed")
    res = c.predict("toyfaces", editor_payload(tmp_path, mouth_layer(app_module)), 30, False, api_name="/edit")
    assert "Handed back to your photo" in res[1] and "of the photo changed" in res[1]
    shown, msg = c.predict(False, api_name="/hand_back")
    back = img(shown)
    assert back.shape == photo.shape and "bit-identical" in msg
    changed = np.any(back != photo, axis=2)
    assert 0 < changed.mean() < 0.2                  # the mouth's surroundings, not the face
    labels = s.current.labels
    eye_rows = np.nonzero(np.isin(labels, [5, 6]))[0]
    assert not changed[:4 * int(eye_rows.mean())].any()    # from the eyes' middle up: the photo, bit for bit
    from editgan_core.storage.masks import grow
    mouth = grow(np.isin(labels, [8, 9]), 12)          # the lips and mouth grown by the region's reach (~10 px)
    assert not changed[~np.kron(mouth, np.ones((4, 4), bool)).astype(bool)].any()
    tinted = img(c.predict(True, api_name="/hand_back")[0])
    region = np.any(tinted != back, axis=2)
    assert region.any() and not (changed & ~region).any()      # every changed pixel is inside the region shown


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
    prepared, boxed, note = c.predict("toyfaces", handle_file(str(tmp_path / "w.png")), "crop",
                                      api_name="/upload")[:3]
    assert "crop" in note.lower() and img(prepared).shape[:2] == (SHOW, SHOW)
    box = img(boxed)
    assert box.shape[:2] == (216, 384)                          # 160x90 shown at 384 wide
    red = (box[..., 0] == 255) & (box[..., 1] == 0) & (box[..., 2] == 0)
    cols = np.nonzero(red.any(0))[0]
    assert cols.min() > 50 and cols.max() < 335                 # the central square is outlined, not the edges
    out = c.predict("toyfaces", 5, False, api_name="/embed")
    assert "embedded photo (5 steps" in out[2] and "PSNR" in out[3]


def test_every_api_field_answers_bad_values_in_one_line_naming_it(server, app_module, tmp_path):
    """Text, NaN or out-of-range values where the API expects numbers, refinement as the strings its docs show, a
    malformed Hub reference: each a one-line message naming the field, and the session keeps working."""
    c = client(server)
    sample(c, seed=7)
    for kw, said in [(dict(seed="abc"), "Seed must be a number"), (dict(truncation="nan"), "must be a finite number"),
                     (dict(seed=-1), "Seed: Value -1 is less than"), (dict(truncation=9), "Truncation psi: Value 9")]:
        args = {**dict(model="toyfaces", seed=5, truncation=0.7, class_idx=0, overlay=False), **kw}
        with pytest.raises(Exception, match=said) as e:
            c.predict(api_name="/sample", **args)
        assert "upstream" not in str(e.value) and "\n" not in str(e.value).strip()
    with pytest.raises(Exception, match="the scale for 'smile' must be a number"):
        c.predict({"smile": "abc"}, "0", api_name="/apply_vectors")
    cur, caption = c.predict({"smile": 1}, "10", api_name="/apply_vectors")      # refinement "10", as documented
    assert "smile +1.00" in caption
    # a slider after its label and range followed a vector (gradio rebuilds the session's copy of it then)
    c.predict(model="toyfaces", api_name="/load_model")
    sample(c, seed=7)
    with pytest.raises(Exception, match=r"bigger eyes .* must be a number, got 'abc'") as e:
        c.predict("0", "abc", *[0.0] * (MAX_SLIDERS - 1), api_name="/set_scales")
    assert "upstream" not in str(e.value)
    with pytest.raises(Exception, match="may not hold '..'"):
        c.predict("hf://a/b/../c.pkl", api_name="/load_model")
    assert "sample seed 8" in sample(c, seed=8)[2]


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
    loaded = c.predict(model, api_name="/load_model")
    assert "no segmentation branch yet" in loaded[0] and "Annotate tab" in loaded[0]
    for seed in range(4):
        out = c.predict(model=model, seed=seed, truncation=0.7, class_idx=0, overlay=False, api_name="/sample")
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
            vals = [0.0] * MAX_SLIDERS
            for j in range(3):
                vals[k % 5] = 0.5 * (j + 1)
                cur, caption = c.predict("0", *vals, api_name="/set_scales")
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


def _wait_for_output(job, timeout=60):
    end = time.time() + timeout
    while not job.outputs() and time.time() < end:
        time.sleep(0.05)
    assert job.outputs(), "the long action streamed nothing"


def test_a_client_that_leaves_mid_embedding_stops_it_and_frees_the_queue(server, app_module, tmp_path):
    """Defect 4: a long action whose client goes away (page closed, event cancelled) must stop, not hold the
    queue of long actions for every other user until it ends."""
    from gradio_client import handle_file

    Image.fromarray((np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8)).save(tmp_path / "p.png")
    a = client(server)
    sample(a, seed=7)
    a.predict(model="toyfaces", photo=handle_file(str(tmp_path / "p.png")), fit="crop", api_name="/upload")
    job = a.submit(model="toyfaces", steps=300, overlay=False, api_name="/embed")
    _wait_for_output(job)                                     # it is running and streaming its progress
    job.cancel()
    t0 = time.time()
    b = client(server)
    sample(b, seed=8)
    b.predict(model="toyfaces", photo=handle_file(str(tmp_path / "p.png")), fit="crop", api_name="/upload")
    out = b.predict(model="toyfaces", steps=3, overlay=False, api_name="/embed")   # waits for the queue slot
    assert "embedded photo (3 steps" in out[2]
    waited = time.time() - t0
    a.predict(overlay=False, api_name="/undo")
    caption = a.predict(overlay=False, api_name="/redo")[2]
    assert "embedded photo" in caption and "stopped" in caption, caption
    done = int(caption.split("(")[1].split(" steps")[0])
    assert done < 300 and waited < 30, (done, waited)


def test_leaving_a_training_stream_stops_the_training(app_module, tmp_path):
    """The same for branch training, at the session's stream: closing it early stops the trainer at once."""
    from demo.session import Session

    s = Session(app_module.STUDIO)
    s.set_model(str(save_native(make_generator(), tmp_path / "tiny-train")))
    for seed in range(3):
        s.sample(seed, 0.7)
        i = s.add_annotation_image()
        lab = (s.current.image.argmax(2) > 0).astype(np.uint8)
        s.set_annotation(i, lab)
    stream = s.train_stream(max_steps=100000)
    first = next(stream)
    assert first.step > 0 and "training" in first.text
    t0 = time.time()
    stream.close()                       # what Gradio does when the client is gone
    assert s.stop_event.is_set() and time.time() - t0 < 10
    assert s.branch is not None          # the best so far is kept


def test_annotation_proposals_come_from_the_branch_trained_so_far_and_labelers_are_checked(app_module, tmp_path):
    """A model with no parser and no branch: nothing is proposed at first; once a branch is trained in the
    session, it proposes the next image's mask (and says so). A labeler chosen by the user is checked: not a
    segmentation model, or a class map naming unknown labels, is refused and changes nothing."""
    from demo.session import Session
    from fakes.standins import make_segformer

    s = Session(app_module.STUDIO)
    s.set_model(str(save_native(make_generator(), tmp_path / "plain")))
    for seed in range(3):
        s.sample(seed, 0.7)
        i = s.add_annotation_image()
        assert s.annotations[i].proposal is None and s.annotations[i].source.startswith("nothing")
        s.set_annotation(i, (s.current.image.argmax(2) > 0).astype(np.uint8))
    s.train_branch(max_steps=50)
    s.sample(7, 0.7)
    i = s.add_annotation_image()
    a = s.annotations[i]
    assert a.source == "the branch trained in this session" and a.proposal.shape == (32, 32)
    assert np.array_equal(a.proposal, s.labels_of())
    # a labeler of the user's choice
    with pytest.raises(EditGANError, match="(?i)not a|segmentation"):
        s.set_labeler(str(tmp_path / "plain"))                  # a StyleGAN folder is not a labeler
    seg = make_segformer(tmp_path / "seg")
    with pytest.raises(EditGANError, match="does not have: tail"):
        s.set_labeler(str(seg), '{"tail": "skin"}')
    assert s.labeler_choice is None                             # refused: nothing changed
    names = s.current_branch().cfg.class_names
    note = s.set_labeler(str(seg), json.dumps({"skin": names[1], "hair": names[2]}))
    assert "labeler" in note and "unmapped (background)" in note
    proposal, source = s.propose()
    assert source.startswith("parser") and proposal.shape == (32, 32) and set(np.unique(proposal)) <= {0, 1, 2}


def test_slider_previews_take_the_fast_path_and_exports_are_exact(app_module, tmp_path):
    """A slider move renders by the bf16 fast path (forced on here, so the test runs on any CPU); sliders back at
    0 give the exact image before them; the export re-renders the step in float32."""
    from PIL import Image

    from demo.session import Session
    from editgan_core import images_to_uint8

    from editgan_core.models import fast
    s = Session(app_module.STUDIO)
    s.set_model("toyfaces")
    base = s.sample(3, 0.7)
    name = s.vector_names()[0]
    try:
        fast.set_mode("on")
        moved = s.set_scales({name: 1.0})
        assert not moved.exact
        with torch.no_grad():
            exact = images_to_uint8(s.assets.G.synthesis(moved.ws))[0].numpy()
        diff = np.abs(moved.image.astype(int) - exact.astype(int))
        assert 0 < diff.max() <= 16 and diff.mean() < 1.0          # a close preview, not the float32 image
        renders = []
        real = s._render
        s._render = lambda *a: renders.append(1) or real(*a)      # count the full-size passes of the export
        files = s.export(tmp_path / "out")
        del s._render
        assert np.array_equal(np.asarray(Image.open(files[0]).convert("RGB")), exact) and moved.exact
        assert len(renders) == 1 and moved.labels is not None    # the image and its segmentation: one pass
        back = s.set_scales({name: 0.0})
        assert back.exact and np.array_equal(back.image, base.image)
    finally:
        fast.set_mode("auto")


def test_publish_kit_zips_the_sessions_model_and_pushes_it(server, tmp_path, monkeypatch):
    """The Vectors tab's "Publish kit": the session's model with its branch and vectors, as a zip, and on a Hub
    model repo when one is named; a bad repo name is one line and loses nothing."""
    import zipfile

    from gradio_client.exceptions import AppError

    from fakes.fake_hub import FakeHub

    c = client(server)
    sample(c)
    msg, archive = c.predict(repo="", token="", license="mit", api_name="/publish_kit")
    names = set(zipfile.ZipFile(archive).namelist())
    assert {"kit.json", "README.md", "branch.safetensors", "model.safetensors", "vectors/smile.safetensors"} <= names
    assert "Kit written" in msg and "Uploaded" not in msg
    with FakeHub() as fh:
        monkeypatch.setenv("HF_ENDPOINT", fh.endpoint)
        msg, _ = c.predict(repo="user/studio-kit", token="", license="", api_name="/publish_kit")
        with pytest.raises(AppError, match="a Hub repo is 'user/name'"):
            c.predict(repo="no-slash", token="", license="", api_name="/publish_kit")
    assert "Uploaded" in msg and "hf://user/studio-kit" in msg
    assert ("user/studio-kit", "kit.json") in fh.files and ("user/studio-kit", "thumbs/smile.png") in fh.files
    assert "python app.py --model hf://user/studio-kit" in fh.files[("user/studio-kit", "README.md")].decode()
    _, caption = c.predict({"smile": 1}, "0", api_name="/apply_vectors")     # the session goes on
    assert "smile" in caption
