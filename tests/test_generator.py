"""The generator's numerics: fused vs non-fused, filters vs a literal reference, truncation, noise, clamp."""

import math
import threading
import time
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import make_generator
from editgan_core import GeneratorConfig


from editgan_core.models import ops
def ref_upfirdn2d(x, f1d, up, pad, gain):
    """Literal NVIDIA reference: zero-insert, pad, conv2d with the flipped 2-D filter."""
    n, c, h, w = x.shape
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    x = F.pad(x, [pad[0], pad[1], pad[2], pad[3]])
    f = torch.outer(torch.tensor(f1d), torch.tensor(f1d))
    f = f / f.sum() * gain
    f = f.flip([0, 1])[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, f, groups=c)


def test_upsample2d_matches_reference():
    x = torch.randn(2, 3, 7, 5)
    ours = ops.upsample2d(x, ops.filter_taps())
    ref = ref_upfirdn2d(x, [1, 3, 3, 1], up=2, pad=(2, 1, 2, 1), gain=4)
    assert ours.shape == (2, 3, 14, 10)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)


def test_upsampling_conv_matches_reference():
    x = torch.randn(2, 4, 6, 6)
    w = torch.randn(5, 4, 3, 3)
    s = torch.randn(2, 4)
    ours = ops.modulated_conv2d(x, w, s, up=2, padding=1, taps=ops.filter_taps(), demodulate=False, fused=False)
    # NVIDIA: transposed conv (stride 2, kernel not flipped), then the filter with padding 1 and gain 4.
    y = F.conv_transpose2d(x * s[:, :, None, None], w.transpose(0, 1), stride=2)
    ref = ref_upfirdn2d(y, [1, 3, 3, 1], up=1, pad=(1, 1, 1, 1), gain=4)
    assert ours.shape == (2, 5, 12, 12)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("demodulate", [True, False])
def test_fused_and_nonfused_modconv_agree(up, demodulate):
    x = torch.randn(3, 8, 8, 8)
    w = torch.randn(6, 8, 3, 3)
    s = torch.randn(3, 8)
    noise = torch.randn(1, 1, 8 * up, 8 * up)
    kw = dict(up=up, padding=1, taps=ops.filter_taps(), demodulate=demodulate, noise=noise)
    a = ops.modulated_conv2d(x, w, s, fused=True, **kw)
    b = ops.modulated_conv2d(x, w, s, fused=False, **kw)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # demodulation normalises each output filter: scaling the weights changes nothing
    if demodulate:
        torch.testing.assert_close(ops.modulated_conv2d(x, 7 * w, s, fused=True, **kw), a, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ["skip", "orig", "resnet"])
def test_generator_paths_agree(arch):
    G = make_generator(architecture=arch)
    z = torch.randn(3, 16)
    with torch.no_grad():
        fused = G(z, fused=True)
        nonfused = G(z, fused=False)
        one = G(z[1:2])
    assert fused.shape == (3, 3, 32, 32)
    assert fused.abs().max() > 0.1
    torch.testing.assert_close(fused, nonfused, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(one, fused[1:2], rtol=1e-4, atol=1e-4)


def test_grad_path_equals_inference_path(tiny_G):
    ws = tiny_G.mapping_ws(torch.randn(2, 16))
    with torch.no_grad():
        ref = tiny_G.synthesis(ws)
    ws = ws.clone().requires_grad_(True)
    img = tiny_G.synthesis(ws)
    img.square().mean().backward()
    torch.testing.assert_close(img.detach(), ref, rtol=1e-5, atol=1e-5)
    assert ws.grad is not None and ws.grad.abs().sum() > 0


def test_truncation_psi_and_cutoff(tiny_G):
    z = torch.randn(2, 16)
    w = tiny_G.mapping_ws(z)
    assert w.shape == (2, tiny_G.num_ws, 16)
    avg = tiny_G.w_avg
    t = tiny_G.mapping_ws(z, truncation_psi=0.5)
    torch.testing.assert_close(t, avg + 0.5 * (w - avg))
    t0 = tiny_G.mapping_ws(z, truncation_psi=0.0)
    torch.testing.assert_close(t0, avg.expand_as(t0))
    c = tiny_G.mapping_ws(z, truncation_psi=0.5, truncation_cutoff=3)
    torch.testing.assert_close(c[:, :3], t[:, :3])
    torch.testing.assert_close(c[:, 3:], w[:, 3:])


def test_noise_modes(tiny_G):
    ws = tiny_G.mapping_ws(torch.randn(1, 16))
    with torch.no_grad():
        c1, c2 = tiny_G.synthesis(ws, noise_mode="const"), tiny_G.synthesis(ws, noise_mode="const")
        r1 = tiny_G.synthesis(ws, noise_mode="random", generator=torch.Generator().manual_seed(1))
        r2 = tiny_G.synthesis(ws, noise_mode="random", generator=torch.Generator().manual_seed(2))
        r1b = tiny_G.synthesis(ws, noise_mode="random", generator=torch.Generator().manual_seed(1))
        none = tiny_G.synthesis(ws, noise_mode="none")
        for name, p in tiny_G.named_parameters():
            if name.endswith("noise_strength"):
                p.zero_()
        zero_strength = tiny_G.synthesis(ws, noise_mode="const")
    assert torch.equal(c1, c2)
    assert torch.equal(r1, r1b)
    assert (r1 - r2).abs().max() > 1e-3
    assert (c1 - none).abs().max() > 1e-3
    torch.testing.assert_close(none, zero_strength)
    with pytest.raises(ValueError, match="noise_mode"):
        tiny_G.synthesis(ws, noise_mode="fixed")


def test_conv_clamp_bounds_activations():
    G = make_generator(conv_clamp=0.5)
    with torch.no_grad():
        _, feats = G.synthesis(G.mapping_ws(torch.randn(2, 16)), return_features=True)
    for f in feats[1:]:
        assert f.abs().max() <= 0.5 + 1e-6
    G2 = make_generator(conv_clamp=None)
    with torch.no_grad():
        _, feats2 = G2.synthesis(G2.mapping_ws(torch.randn(2, 16)), return_features=True)
    assert max(f.abs().max() for f in feats2[1:]) > 0.5


def test_conditional_mapping():
    G = make_generator(c_dim=4)
    z = torch.randn(2, 16)
    c = torch.eye(4)[:2]
    with torch.no_grad():
        a = G(z, c)
        b = G(z, torch.eye(4)[2:4])
    assert (a - b).abs().max() > 1e-3
    with pytest.raises(ValueError, match="conditional"):
        G(z)


def test_features_layout(tiny_G):
    ws = tiny_G.mapping_ws(torch.randn(2, 16))
    with torch.no_grad():
        img, feats = tiny_G.synthesis(ws, return_features=True)
    assert len(feats) == tiny_G.num_ws
    assert [f.shape[1] for f in feats] == tiny_G.feature_channels()
    assert [f.shape[2] for f in feats] == tiny_G.feature_resolutions()
    torch.testing.assert_close(feats[0][0], tiny_G.synthesis.b4.const)
    # features are after activation (leaky ReLU with gain sqrt 2, so negatives are scaled by 0.2)
    assert feats[-1].min() < 0 and feats[-1].max() > 0


def test_inputs_follow_and_are_checked(tiny_G):
    ws = tiny_G.mapping_ws(torch.randn(1, 16)).double()
    with torch.no_grad():
        img = tiny_G.synthesis(ws)
    assert img.dtype == torch.float32
    with pytest.raises(ValueError, match="ws must be"):
        tiny_G.synthesis(torch.randn(1, 3, 16))
    with pytest.raises(ValueError, match="z must be"):
        tiny_G(torch.randn(1, 5))


def test_config_validation_and_roundtrip():
    with pytest.raises(ValueError, match="power of two"):
        GeneratorConfig(img_resolution=48)
    with pytest.raises(ValueError, match="architecture"):
        GeneratorConfig(architecture="unet")
    cfg = GeneratorConfig(img_resolution=64, channels={4: 8, 8: 8, 16: 4, 32: 4, 64: 2})
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.num_ws == 2 * int(math.log2(64)) - 2
    with pytest.raises(ValueError, match="unknown"):
        GeneratorConfig.from_dict({**cfg.to_dict(), "bogus": 1})


def test_uint8_mapping_matches_nvidia():
    from editgan_core import images_to_uint8

    img = torch.tensor([-1.0, -0.999, 0.0, 0.5, 1.0, 2.0]).reshape(1, 1, 2, 3).repeat(1, 3, 1, 1)
    out = images_to_uint8(img)
    assert out.shape == (1, 2, 3, 3)
    assert out[0, :, :, 0].flatten().tolist() == [0, 0, 128, 191, 255, 255]


def test_fp16_path_close_to_fp32():
    G = make_generator(num_fp16_res=2)
    ws = G.mapping_ws(torch.randn(2, 16))
    with torch.no_grad():
        ref = G.synthesis(ws)
        half, feats = G.synthesis(ws, fp16=True, return_features=True)
    assert half.dtype == torch.float32                      # images always come back in float32
    assert feats[-1].dtype == torch.float16 and feats[2].dtype == torch.float32  # only the top 2 blocks
    assert ((half - ref).abs().max() / ref.abs().max()) < 2e-2


def test_bf16_fast_path_is_close_to_float32_and_switchable():
    """The preview path (editgan_core/models/fast.py): bf16 images within 40 dB PSNR of float32 (forced on, so it runs
    on any CPU), float32 exactly when off; the bf16 copy does not touch the float32 generator."""
    from editgan_core.models import fast
    from editgan_core.models.generator import images_to_uint8

    G = make_generator()
    ws = G.mapping_ws(torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(0)), truncation_psi=0.7)
    with torch.no_grad():
        exact = G.synthesis(ws)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    try:
        fast.set_mode("on")
        assert fast.enabled("cpu")
        quick = fast.fast_synthesis(G, ws)
        assert quick.dtype == torch.float32 and quick.shape == exact.shape
        a, b = images_to_uint8(exact).numpy().astype(float), images_to_uint8(quick).numpy().astype(float)
        psnr = 10 * np.log10(255 ** 2 / max(np.mean((a - b) ** 2), 1e-12))
        assert 40 < psnr < 200, psnr                   # close, and really computed in another precision
        fast.set_mode("off")
        assert not fast.enabled("cpu") and torch.equal(fast.fast_synthesis(G, ws), exact)
        with pytest.raises(ValueError):
            fast.set_mode("sometimes")
    finally:
        fast.set_mode("auto")
    assert all(torch.equal(v, before[k]) for k, v in G.state_dict().items())
    assert next(G.parameters()).dtype == torch.float32


def _queue_behind_a_pass(sp, first, others, started, gate):
    """Run ``first`` (its pass waits for ``gate``), then ``others``, which queue behind it; release the pass once
    they all wait; join everyone."""
    threads = [threading.Thread(target=first)]
    threads[0].start()
    while not started:
        time.sleep(0.001)
    threads += [threading.Thread(target=f) for f in others]
    for t in threads[1:]:
        t.start()
    while len(sp.waiting) < len(others):
        time.sleep(0.001)
    gate.set()
    for t in threads:
        t.join(10)


def test_concurrent_previews_share_passes_and_each_gets_its_own_images():
    """Slider moves of several users (threads) that arrive while a pass runs are rendered together in the next
    pass; each caller gets exactly its own rows; an error in a shared pass reaches every caller of that pass and
    the next pass works."""
    from editgan_core.models.fast import _SharedPasses

    gate, sizes = threading.Event(), []

    def render(ws):
        sizes.append(len(ws))
        if len(sizes) == 1:
            gate.wait(10)                   # the first pass runs while the others arrive
        if bool((ws < 0).any()):
            raise RuntimeError("bad latent")
        return ws * 2

    sp = _SharedPasses(render)
    inputs = [torch.full((1, 3), float(k + 1)) for k in range(4)] + [torch.full((2, 3), 9.0)]
    out = [None] * len(inputs)

    def call(k):
        out[k] = sp(inputs[k])

    _queue_behind_a_pass(sp, partial(call, 0), [partial(call, k) for k in range(1, 5)], sizes, gate)
    assert sizes == [1, 5] and sp.batches == {1: 1, 4: 1}        # one pass alone, then the four callers together
    for k, x in enumerate(inputs):
        assert torch.equal(out[k], x * 2)

    errors = []

    def bad(k):
        try:
            sp(torch.full((1, 3), -1.0 if k == 0 else 1.0))
        except RuntimeError as e:
            errors.append(str(e))

    gate.clear()
    sizes.clear()
    _queue_behind_a_pass(sp, partial(call, 0), [partial(bad, k) for k in range(3)], sizes, gate)
    assert sizes == [1, 3] and errors == ["bad latent"] * 3          # one bad latent fails its whole pass
    assert not sp.busy and torch.equal(sp(torch.ones(1, 3)), torch.full((1, 3), 2.0))    # and the next one works


def test_shared_passes_keep_to_their_batch_cap(monkeypatch):
    """More waiting latents than one pass takes: every caller still gets its own rows, no pass is over the cap."""
    from editgan_core.models import fast
    monkeypatch.setattr(fast, "MAX_BATCH", 2)
    gate, sizes = threading.Event(), []

    def render(ws):
        sizes.append(len(ws))
        if len(sizes) == 1:
            gate.wait(10)
        return ws + 1

    sp = fast._SharedPasses(render)
    out = {}

    def call(k):
        out[k] = sp(torch.full((1, 2), float(k)))

    _queue_behind_a_pass(sp, partial(call, 0), [partial(call, k) for k in range(1, 6)], sizes, gate)
    assert sorted(out) == list(range(6)) and all(torch.equal(out[k], torch.full((1, 2), k + 1.0)) for k in out)
    assert max(sizes) == 2 and sum(sizes) == 6


def test_shared_passes_under_load_never_stall():
    """Eight threads, 200 calls each, with a render that takes a little time: every call returns its own rows
    (none waits forever, none gets another's)."""
    from editgan_core.models.fast import _SharedPasses

    def render(ws):
        time.sleep(0.0005)
        return ws * 3

    sp, bad = _SharedPasses(render), []

    def user(k):
        for i in range(200):
            x = torch.full((1, 2), float(1000 * k + i))
            if not torch.equal(sp(x), x * 3):
                bad.append((k, i))

    threads = [threading.Thread(target=user, args=(k,), daemon=True) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads) and not bad
    assert sum(k * v for k, v in sp.batches.items()) == 1600 and max(sp.batches) > 1


def test_fast_synthesis_from_several_threads_equals_one_pass_each():
    """The shared passes on a real (tiny) generator: eight threads, each its own latent, get the images a pass of
    their latent alone gives (bf16 forced on, so it runs on any CPU)."""
    from editgan_core.models import fast
    G = make_generator()
    ws = G.mapping_ws(torch.randn(8, G.z_dim, generator=torch.Generator().manual_seed(3)), truncation_psi=0.7)
    try:
        fast.set_mode("on")
        alone = [fast.fast_synthesis(G, ws[k:k + 1]) for k in range(8)]
        got = [None] * 8

        def call(k):
            got[k] = fast.fast_synthesis(G, ws[k:k + 1])

        threads = [threading.Thread(target=call, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        fast.set_mode("auto")
    for a, b in zip(alone, got):
        assert b.shape == a.shape and (b - a).abs().max() < 2e-2     # bf16 kernels may round a batch differently


def test_cached_demodulation_weights_follow_weight_changes():
    """The unfused path keeps sum(w^2) per layer while the weight is unchanged; changing the weight in place
    (fine-tuning) must not reuse the stale value."""
    G = make_generator()
    ws = G.mapping_ws(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        G.synthesis(ws, fused=False)
        for p in G.synthesis.parameters():
            if p.ndim == 4:
                p.mul_(1.5).add_(0.01)
        cached = G.synthesis(ws, fused=False)
        for m in G.synthesis.modules():
            m.__dict__.pop("_wsq_key", None)
        fresh = G.synthesis(ws, fused=False)
    torch.testing.assert_close(cached, fresh)
