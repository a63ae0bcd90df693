"""Embedding: odd inputs are fitted and explained; optimisation recovers a generator sample; encoder; LPIPS."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_generator
from editgan_core.pipeline.embed import (embed, encoder_only, load_encoder, save_encoder,
                                train_encoder)
from editgan_core.errors import CheckpointError, EditGANError, ModelNotFoundError
from editgan_core.storage.imageio import ImageInputError, prepare_image
from editgan_core.storage.latents import load_latent, save_latent
from editgan_core.storage.masks import decode_mask, encode_mask
from editgan_core.models.perceptual import VGG16_CONVS, FallbackDistance, LPIPS, load_lpips, perceptual_for
from editgan_core.storage.identity import generator_identity
from fakes.fake_hub import FakeHub


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "1", "I;16", "I", "F", "CMYK"])
def test_every_image_mode_is_accepted(mode):
    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 255, (30, 50, 3), dtype=np.uint8))
    if mode == "I;16":
        im = Image.fromarray((rng.integers(0, 65535, (30, 50))).astype(np.uint16))
    elif mode in ("I", "F"):
        im = base.convert("L").convert(mode)
    else:
        im = base.convert(mode)
    prep = prepare_image(im, 16)
    assert prep.tensor.shape == (1, 3, 16, 16) and prep.array.shape == (16, 16, 3)
    assert -1 <= prep.tensor.min() and prep.tensor.max() <= 1
    assert "center-cropped 50x30 to 30x30" in prep.note and "resized 30x30 down to 16x16" in prep.note
    assert prep.original_mode == mode


def test_alpha_is_composited_and_said():
    im = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    prep = prepare_image(im, 8)
    assert "transparency composited over white" in prep.note
    assert (prep.array == 255).all()


def test_pad_keeps_whole_image_and_16bit_png_bytes():
    arr = (np.linspace(0, 65535, 40 * 20).reshape(20, 40)).astype(np.uint16)
    prep = prepare_image(_png(Image.fromarray(arr)), 32, fit="pad")
    assert "padded 40x20 to 40x40" in prep.note and "rescaled to 8 bits" in prep.note
    assert (prep.array[0] == 255).all()            # the padding (white) is on top
    rows = prep.array[9:23, 16, 0].astype(int)
    assert rows[-1] - rows[0] > 150                # the top-to-bottom ramp survived the 16 -> 8 bit rescale


def test_numpy_inputs_of_any_dtype():
    for a in (np.random.rand(12, 12, 3), np.random.rand(12, 12) * 65535, np.zeros((12, 12, 1), np.uint8)):
        assert prepare_image(a, 8).array.shape == (8, 8, 3)
    with pytest.raises(ImageInputError, match="HxW"):
        prepare_image(np.zeros((4, 4, 5)), 8)


def test_bad_images_get_clear_errors(tmp_path):
    with pytest.raises(ImageInputError, match="not a readable image"):
        prepare_image(b"this is not an image", 16)
    with pytest.raises(ImageInputError, match="only 4x4"):
        prepare_image(Image.new("RGB", (4, 4)), 16)
    with pytest.raises(ImageInputError, match="no such image"):
        prepare_image(tmp_path / "missing.png", 16)
    trunc = _png(Image.new("RGB", (64, 64), (1, 2, 3)))[:60]
    with pytest.raises(ImageInputError):
        prepare_image(trunc, 16)


def test_decompression_bomb_is_refused(monkeypatch):
    import editgan_core.storage.imageio as io_mod

    monkeypatch.setattr(io_mod, "MAX_PIXELS", 1000)
    with pytest.raises(ImageInputError, match="limit|enormous"):
        prepare_image(_png(Image.new("L", (100, 100))), 16)


def test_mask_with_unknown_colours_maps_to_nearest_and_says_so():
    palette = [(0, 0, 0), (255, 0, 0), (0, 0, 255)]
    labels = np.array([[0, 1], [2, 1]], np.uint8)
    rgb = encode_mask(labels, palette)
    assert decode_mask(rgb, palette) == (pytest.approx(labels), "")
    rgb2 = rgb.copy()
    rgb2[0, 1] = (230, 20, 10)   # off-palette red
    out, msg = decode_mask(rgb2, palette)
    assert np.array_equal(out, labels)
    assert "1 pixels (25.0%) had colours outside the palette" in msg


def test_embedding_recovers_a_generator_sample():
    G = make_generator()
    with torch.no_grad():
        target_ws = G.mapping_ws(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(5)))
        target = G.synthesis(target_ws)
    start = embed(G, target, steps=0)
    res = embed(G, target, steps=150, lr=0.1)
    assert res.ws.shape == (2, G.num_ws, G.w_dim)
    assert (res.loss < 0.35 * start.loss).all()
    assert (res.psnr > start.psnr + 6).all(), (start.psnr, res.psnr)
    assert torch.allclose(G.synthesis(res.ws), res.image, atol=1e-5)   # image is the best latent's
    assert min(res.history) <= res.history[-1] + 1e-9


def test_stop_returns_best_so_far():
    G = make_generator()
    target = G.synthesis(G.mapping_ws(torch.randn(1, G.z_dim)))
    n = {"calls": 0}

    def stop():
        n["calls"] += 1
        return n["calls"] > 10

    res = embed(G, target, steps=500, should_stop=stop)
    assert res.stopped and res.steps == 10
    assert res.loss.item() <= min(res.history) + 1e-6


def test_wrong_size_is_refused():
    G = make_generator()
    with pytest.raises(EditGANError, match="prepare_image"):
        embed(G, torch.zeros(1, 3, 16, 16))


def test_encoder_trains_saves_and_helps(tmp_path):
    G = make_generator()
    torch.manual_seed(0)
    enc = train_encoder(G, steps=60, batch=8, lr=2e-3)
    ident = generator_identity(G, "tiny")
    path = save_encoder(enc, tmp_path / "encoder.safetensors", ident)
    enc2 = load_encoder(path, expect_generator=ident)
    with torch.no_grad():
        target = G.synthesis(G.mapping_ws(torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(9))))
    a, b = encoder_only(G, enc, target), encoder_only(G, enc2, target)
    with torch.no_grad():   # stored as float16: the loaded encoder is the trained one with fp16-rounded weights
        for t in list(enc.parameters()) + list(enc.buffers()):
            t.copy_(t.half().float())
    assert torch.equal(encoder_only(G, enc, target).ws, b.ws)
    avg = embed(G, target, steps=0)
    assert a.loss.mean() < avg.loss.mean()          # better than starting from w_avg
    with pytest.raises(EditGANError, match="belongs to another model"):
        load_encoder(path, expect_generator=generator_identity(make_generator(w_dim=8, z_dim=8)))


def test_latent_files_round_trip_and_refuse_other_models(tmp_path):
    G = make_generator()
    ident = generator_identity(G, "tiny", sha256="ab" * 32)
    ws = torch.randn(1, G.num_ws, G.w_dim)
    p = save_latent(tmp_path / "x.latent.safetensors", ws, ident)
    back, meta = load_latent(p, expect_generator=ident)
    assert torch.equal(back, ws)
    with pytest.raises(EditGANError, match="another model"):
        load_latent(p, expect_generator={**ident, "sha256": "cd" * 32, "name": "other"})
    np.save(tmp_path / "plain.npy", ws[0].numpy())
    assert torch.equal(load_latent(tmp_path / "plain.npy", expect_generator=ident)[0], ws)
    np.save(tmp_path / "bad.npy", np.zeros((3, 3), np.float32))
    with pytest.raises(EditGANError, match="shape"):
        load_latent(tmp_path / "bad.npy", expect_generator=ident)


def _fake_lpips_state(seed=0):
    """Random LPIPS-VGG16 weights in the lpips package's layout (net.sliceK.N.*, linK.model.1.weight)."""
    g = torch.Generator().manual_seed(seed)
    state, idx = {}, [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    for (i, o), k in zip(VGG16_CONVS, idx):
        s = (k > 4) + (k > 9) + (k > 16) + (k > 23) + 1
        state[f"net.slice{s}.{k}.weight"] = torch.randn(o, i, 3, 3, generator=g) * (2 / (9 * i)) ** 0.5
        state[f"net.slice{s}.{k}.bias"] = 0.05 * torch.randn(o, generator=g)
    for j, c in enumerate((64, 128, 256, 512, 512)):
        state[f"lin{j}.model.1.weight"] = torch.rand(1, c, 1, 1, generator=g)
    return state


def _fake_lpips_file(path):
    from safetensors.torch import save_file

    save_file(_fake_lpips_state(), str(path))


def _reference_lpips(state, x, y):
    """LPIPS written out from its definition (Zhang et al. 2018; the lpips package's LPIPS.forward), in float64:
    scale the input, VGG16 conv stages (taps relu1_2, relu2_2, relu3_3, relu4_3, relu5_3), unit-normalise each
    feature vector over channels, squared difference, 1x1 linear head (no bias), spatial mean, sum over layers."""
    import torch.nn.functional as F

    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)
    stages = [[0, 2], [5, 7], [10, 12, 14], [17, 19, 21], [24, 26, 28]]   # torchvision vgg16.features indices
    conv = {}
    for key, t in state.items():
        if key.startswith("net.slice") and key.endswith(".weight"):
            conv[int(key.split(".")[2])] = (t.double(), state[key[:-len("weight")] + "bias"].double())

    def taps(img):
        h, out = (img.double() - shift) / scale, []
        for n, stage in enumerate(stages):
            if n:
                h = F.max_pool2d(h, kernel_size=2, stride=2)
            for k in stage:
                h = F.relu(F.conv2d(h, conv[k][0], conv[k][1], padding=1))
            out.append(h)
        return out

    total = torch.zeros(x.shape[0], dtype=torch.float64)
    for j, (fx, fy) in enumerate(zip(taps(x), taps(y))):
        nx = fx / (torch.sqrt((fx ** 2).sum(1, keepdim=True)) + 1e-10)
        ny = fy / (torch.sqrt((fy ** 2).sum(1, keepdim=True)) + 1e-10)
        head = state[f"lin{j}.model.1.weight"].double()                  # [1, C, 1, 1]
        total += F.conv2d((nx - ny) ** 2, head).mean((1, 2, 3))
    return total


def test_lpips_downloads_from_the_hub_once_then_offline(tmp_path):
    _fake_lpips_file(tmp_path / "vgg.safetensors")
    cache = str(tmp_path / "cache")
    with FakeHub() as fh:
        fh.add("org/lpips", "LPIPS/vgg.safetensors", (tmp_path / "vgg.safetensors").read_bytes())
        with pytest.raises(ModelNotFoundError, match="not in the local cache"):
            load_lpips(repo_id="org/lpips", endpoint=fh.endpoint, cache_dir=cache)   # cache only by default
        lp = load_lpips(download=True, repo_id="org/lpips", endpoint=fh.endpoint, cache_dir=cache)
    lp2 = load_lpips(repo_id="org/lpips", endpoint=fh.endpoint, cache_dir=cache)     # server gone: cache
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = x + 0.3 * torch.randn_like(x)
    d_same, d_diff = lp(x, x), lp(x, y)
    assert torch.allclose(d_same, torch.zeros(2), atol=1e-6) and (d_diff > 0).all()
    assert torch.equal(lp2(x, y), d_diff)


def test_lpips_equals_the_reference_formula_and_has_its_properties():
    state = _fake_lpips_state()
    lp = LPIPS.from_state_dict(state)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 32, 48, generator=g) * 2 - 1
    y = (x + 0.4 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    y[2] = torch.rand(3, 32, 48, generator=g) * 2 - 1                     # an unrelated image
    with torch.no_grad():
        d = lp(x, y)
        ref = _reference_lpips(state, x, y)
        torch.testing.assert_close(d.double(), ref, rtol=1e-5, atol=1e-5)
        assert d[2] > d[0] > 0 and d[2] > d[1] > 0                      # closer images, smaller distance
        torch.testing.assert_close(lp(x, x), torch.zeros(3), rtol=0, atol=1e-6)      # d(x, x) = 0
        torch.testing.assert_close(lp(y, x), d, rtol=1e-6, atol=1e-7)                # symmetric
        torch.testing.assert_close(lp(x[1:2], y[1:2]), d[1:2], rtol=1e-5, atol=1e-6)  # per image, not per batch
        # The same weights in torchvision's layout (features.N.*, heads under other names) give the same distance.
        def torchvision_name(k):   # net.slice1.0.weight -> features.0.weight; lin0.model.1.weight -> heads.0.weight
            return "features." + k.split(".", 2)[2] if k.startswith("net.") else \
                k.replace("lin", "heads.").replace(".model.1", "")

        tv = {torchvision_name(k): v for k, v in state.items()}
        assert "features.28.bias" in tv and "heads.4.weight" in tv
        torch.testing.assert_close(LPIPS.from_state_dict(tv)(x, y), d, rtol=0, atol=0)


def test_lpips_rejects_other_weights(tmp_path):
    from safetensors.torch import save_file

    save_file({"conv.weight": torch.zeros(8, 3, 3, 3)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(CheckpointError, match="not LPIPS-VGG16"):
        load_lpips(tmp_path / "x.safetensors")
    assert isinstance(LPIPS(), LPIPS)


def test_perceptual_choice_without_network(tmp_path):
    assert isinstance(perceptual_for(None), FallbackDistance)
    with pytest.raises(CheckpointError, match="no discriminator"):
        perceptual_for(tmp_path, "discriminator")


def test_pivotal_tuning_brings_the_photo_closer_and_leaves_the_model_alone(tmp_path):
    """A photo the generator cannot reach (another generator's render): tuning a copy lifts its PSNR; the model's
    own weights are untouched; the saved float16 delta reloads into the very same tuned generator; a tuning of
    another generator is refused."""
    from editgan_core.pipeline.embed import load_tuning, pivotal_tune, save_tuning

    G = make_generator(seed=1).eval()
    other = make_generator(seed=2).eval()
    ident = generator_identity(G, "tiny")
    with torch.no_grad():
        photo = other.synthesis(other.mapping_ws(torch.randn(1, other.z_dim, generator=torch.Generator()
                                                             .manual_seed(0))))
    before = {k: v.clone() for k, v in G.state_dict().items()}
    res = embed(G, photo, steps=20)
    tu = pivotal_tune(G, res.ws, photo, steps=40, lr=3e-3)
    assert tu.psnr_before == pytest.approx(float(res.psnr[0]), abs=1e-3)
    assert tu.psnr > tu.psnr_before + 1.0 and tu.steps == 40
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in before.items())         # the model is unchanged
    assert all(d.dtype == torch.float16 for d in tu.delta.values())
    assert any(d.abs().max() > 0 for d in tu.delta.values())
    path = save_tuning(tmp_path / "me.tuning.safetensors", tu, ident)
    again, meta = load_tuning(path, G, expect_generator=ident)
    with torch.no_grad():
        assert torch.equal(again.synthesis(res.ws), tu.G.synthesis(res.ws))
    assert meta["psnr"] == pytest.approx(tu.psnr, abs=0.01)
    with pytest.raises(EditGANError, match="belongs to another model"):
        load_tuning(path, other, expect_generator=generator_identity(other, "tiny"))      # same shapes: weights
    with pytest.raises(CheckpointError):
        load_latent(path)                                                             # not a latent file
    # a stop mid-way keeps the best weights so far
    stopped = pivotal_tune(G, res.ws, photo, steps=40, lr=3e-3, should_stop=lambda: True)
    assert stopped.stopped and stopped.steps == 0 and stopped.psnr == pytest.approx(stopped.psnr_before, abs=0.05)
