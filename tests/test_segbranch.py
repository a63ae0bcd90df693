"""Segmentation branch: the memory-saving evaluation equals the naive one; few-shot training learns; files."""

import numpy as np
import pytest
import torch

from conftest import make_generator
from editgan_core.errors import CheckpointError, EditGANError
from editgan_core.pipeline.fewshot import FeatureStore, miou, synthesis_features, train_branch
from editgan_core.storage.identity import generator_identity
from editgan_core.models.segbranch import BranchConfig, SegBranch, load_branch, save_branch

NAMES = ["bg", "a", "b"]
PALETTE = [(0, 0, 0), (255, 0, 0), (0, 255, 0)]


def _branch(G, **kw):
    cfg = BranchConfig(G.feature_channels(), G.feature_resolutions(), G.img_resolution, NAMES, PALETTE,
                       members=kw.pop("members", 3), hidden=kw.pop("hidden", (8, 4)), generator=generator_identity(G))
    torch.manual_seed(1)
    b = SegBranch(cfg)
    with torch.no_grad():   # non-trivial normalisation statistics, so BN is exercised too
        b.bn1.running_mean.normal_()
        b.bn1.running_var.uniform_(0.5, 2)
        b.bn2.running_mean.normal_()
        b.bn1.weight.uniform_(0.5, 1.5)
    return b.eval()


def _feats(G, n=2, seed=0):
    ws = G.mapping_ws(torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed)))
    with torch.no_grad():
        return ws, G.synthesis(ws, return_features=True)[1]


@pytest.mark.parametrize("chunk", [97, 4096])
def test_memory_saving_branch_equals_naive(chunk):
    G = make_generator()
    b = _branch(G)
    _, feats = _feats(G)
    with torch.no_grad():
        fast, naive = b(feats, chunk=chunk), b.naive_logits(feats)
    assert fast.shape == (2, 3, 32, 32)
    assert torch.allclose(fast, naive, atol=1e-5, rtol=1e-5)
    # and at an arbitrary subset of pixels
    pix = torch.tensor([0, 5, 31, 32, 500, 1023])
    at = b.logits_at(feats, pix)
    assert torch.allclose(at, naive.flatten(2)[:, :, pix], atol=1e-5, rtol=1e-5)


def test_gradients_match_naive():
    G = make_generator()
    b = _branch(G)
    _, feats = _feats(G, n=1)
    f1 = [f.clone().requires_grad_(True) for f in feats]
    f2 = [f.clone().requires_grad_(True) for f in feats]
    b(f1).square().sum().backward()
    b.naive_logits(f2).square().sum().backward()
    for a, c in zip(f1, f2):
        assert torch.allclose(a.grad, c.grad, atol=1e-4, rtol=1e-4)


def test_checkpointed_cross_entropy_equals_naive_with_gradients():
    G = make_generator()
    b = _branch(G)
    _, feats = _feats(G, n=2)
    target = torch.randint(0, 3, (32 * 32,), generator=torch.Generator().manual_seed(0))
    f1 = [f.clone().requires_grad_(True) for f in feats]
    f2 = [f.clone().requires_grad_(True) for f in feats]
    fast = b.cross_entropy(f1, torch.arange(32 * 32), target, chunk=300)
    naive = torch.nn.functional.cross_entropy(b.naive_logits(f2), target.view(1, 32, 32).repeat(2, 1, 1))
    assert torch.allclose(fast, naive, atol=1e-5)
    fast.backward()
    naive.backward()
    for a, c in zip(f1, f2):
        assert torch.allclose(a.grad, c.grad, atol=1e-5, rtol=1e-4)


def test_features_of_another_generator_are_refused():
    b = _branch(make_generator())
    _, feats = _feats(make_generator(img_resolution=16))
    with pytest.raises(EditGANError, match="another generator"):
        b(feats)


def test_save_load_roundtrip_and_identity_check(tmp_path):
    G = make_generator()
    b = _branch(G)
    path = save_branch(b, tmp_path / "branch.safetensors")
    b2 = load_branch(path, expect_generator=generator_identity(G))
    _, feats = _feats(G)
    assert torch.equal(b(feats), b2(feats))
    assert b2.cfg.class_names == NAMES and b2.cfg.palette == PALETTE
    other = generator_identity(make_generator(channel_max=16))
    with pytest.raises(EditGANError, match="belongs to another model"):
        load_branch(path, expect_generator=other)
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(CheckpointError):
        load_branch(tmp_path / "junk.safetensors")


def _synthetic_task(G, n):
    """Masks that are a fixed function of the image: which channel is largest (learnable from features)."""
    ws, _ = _feats(G, n=n, seed=3)
    with torch.no_grad():
        img = G.synthesis(ws)
    masks = img.argmax(1).numpy().astype(np.uint8)
    return ws, masks


def test_few_shot_training_lowers_loss_and_beats_chance():
    G = make_generator()
    ws, masks = _synthetic_task(G, 6)
    branch, report = train_branch(G, ws, masks, NAMES, PALETTE, members=2, hidden=(16, 8), max_steps=240,
                                  pixels_per_step=512, eval_every=40, patience=10)
    losses = [h["loss"] for h in report.history]
    assert losses[-1] < losses[0]
    assert report.val_images == 1 and report.train_images == 5
    feats = synthesis_features(G, ws)
    pred = branch.predict(feats).numpy()
    m, _ = miou(pred, masks, 3)
    assert m > 0.6, m   # chance is ~0.33
    assert report.val_miou == pytest.approx(miou(pred[[int(i) for i in _val_index(6)]],
                                                 masks[_val_index(6)], 3)[0], abs=1e-6)


def _naive_members(b, feats, pix):
    """Every member's logits at ``pix`` the naive way: upsample all features, concatenate, full MLP."""
    R = b.cfg.out_resolution
    up = [f if f.shape[-1] == R else torch.nn.functional.interpolate(f, size=(R, R), mode="bilinear",
                                                                      align_corners=False) for f in feats]
    x = torch.cat(up, 1).flatten(2)[:, :, pix].permute(0, 2, 1)                      # [N, P, D]
    N, P = x.shape[:2]
    return b._tail(b.fc1(x.reshape(N * P, -1))).view(N, P, b.cfg.members, b.cfg.num_classes)


@pytest.mark.parametrize("kind", ["scattered", "region"])
def test_first_layer_at_wanted_pixels_equals_the_naive_computation(kind):
    """Training (scattered samples: features blended at the taps of large levels) and a mask edit (a contiguous
    region: only the positions its taps touch are projected) read the first layer at the wanted pixels only; the
    values and the gradients equal the naive upsample-everything computation, also from float16 features."""
    G = make_generator()
    b = _branch(G, members=3)
    _, feats = _feats(G)
    if kind == "scattered":
        pix = torch.randperm(32 * 32, generator=torch.Generator().manual_seed(0))[:50]
    else:   # a 9 x 12 box: touches few positions of every level
        pix = torch.tensor([y * 32 + x for y in range(20, 29) for x in range(3, 15)])
    f1 = [f.clone().requires_grad_(True) for f in feats]
    f2 = [f.clone().requires_grad_(True) for f in feats]
    fast, naive = b.member_logits_at(f1, pix), _naive_members(b, f2, pix)
    torch.testing.assert_close(fast, naive, rtol=1e-5, atol=1e-5)
    half = b.member_logits_at([f.half() for f in feats], pix)
    torch.testing.assert_close(half, naive, rtol=2e-2, atol=2e-2)
    # the gradients an edit (features) and the trainer (weights) use
    g = torch.randn_like(fast)
    gw1 = torch.autograd.grad((fast * g).sum(), [b.fc1.weight] + f1)
    gw2 = torch.autograd.grad((naive * g).sum(), [b.fc1.weight] + f2)
    for x, y in zip(gw1, gw2):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("half", [False, True])
def test_feature_store_gives_the_in_memory_values_and_gradients(tmp_path, half):
    """The trainer reads features from the disk store: the same values as computing them in memory (in the store's
    dtype), so the branch's logits and the gradients of its weights are the same, and its folder is removed."""
    G = make_generator()
    b = _branch(G, members=3)
    ws, _ = _feats(G, n=3)
    dense = synthesis_features(G, ws, batch=1, half=half)    # the store computes one image a pass, too
    pix = torch.randperm(32 * 32, generator=torch.Generator().manual_seed(0))[:200]
    with FeatureStore(G, ws, half=half, folder=tmp_path) as store:
        assert len(store) == 3 and store.dtype == (torch.float16 if half else torch.float32)
        folder = store.folder
        assert folder.parent == tmp_path and len(list(folder.iterdir())) == 3
        for i in range(3):
            got = store.image(i)
            for a, c in zip(got, dense):
                assert a.shape == c[i:i + 1].shape and a.dtype == c.dtype
                assert torch.equal(a, c[i:i + 1])
            b.train()
            l1 = b.member_logits_at(got, pix)
            g1 = torch.autograd.grad(l1.square().sum(), list(b.parameters()))
            l2 = b.member_logits_at([c[i:i + 1] for c in dense], pix)
            g2 = torch.autograd.grad(l2.square().sum(), list(b.parameters()))
            assert torch.equal(l1, l2)
            for x, y in zip(g1, g2):
                assert torch.equal(x, y)
            b.eval()
            assert torch.equal(b.predict(got), b.predict([c[i:i + 1] for c in dense]))
    assert not folder.exists()


def _peak_allocated(fn) -> int:
    """Peak bytes that torch's CPU allocator held above the start while ``fn`` ran (the profiler's memory events,
    in time order)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    now = peak = 0     # an operator's allocations count as its own (self); frees outside operators as [memory]
    for e in sorted(prof.events(), key=lambda e: e.time_range.start):
        now += e.self_cpu_memory_usage
        peak = max(peak, now)
    return peak


def test_branch_training_memory_does_not_grow_with_the_number_of_images(tmp_path):
    """Counted allocations, not time: training on 24 images holds what training on 4 holds (one image's features
    while the store is written, a step's rows while training), where the in-memory features alone grow by 20
    images' worth."""
    G = make_generator()
    ws, masks = _synthetic_task(G, 24)
    per_image = sum(f[:1].numel() * f.element_size() for f in synthesis_features(G, ws[:1]))
    kw = dict(members=2, hidden=(8, 4), max_steps=4, pixels_per_step=64, eval_every=2, scratch=tmp_path)
    small = _peak_allocated(lambda: train_branch(G, ws[:4], masks[:4], NAMES, PALETTE, **kw))
    large = _peak_allocated(lambda: train_branch(G, ws, masks, NAMES, PALETTE, **kw))
    assert small > 0 and large > 0
    assert large - small < 2 * per_image, (small, large, per_image)    # in memory: + 20 x per_image
    kept = _peak_allocated(lambda: synthesis_features(G, ws))
    assert kept >= 24 * per_image > large    # the measurement sees features held in memory


def test_training_is_seeded_without_touching_the_global_rng():
    """Item 7: a session thread that trains a branch must not reseed torch's global RNG (other users' threads
    draw from it), and the branch must depend on its own seed only."""
    G = make_generator()
    ws, masks = _synthetic_task(G, 3)
    kw = dict(members=2, hidden=(8, 4), max_steps=20, pixels_per_step=256, eval_every=10, seed=5)
    runs = []
    for global_seed in (123, 456):
        torch.manual_seed(global_seed)
        branch, _ = train_branch(G, ws, masks, NAMES, PALETTE, **kw)
        runs.append((branch, torch.rand(4)))         # what the next user of the global RNG would draw
    _, feats = _feats(G)
    assert torch.equal(runs[0][0](feats), runs[1][0](feats))     # the same branch for the same seed
    assert not torch.equal(runs[0][1], runs[1][1])               # the global RNG was not reset to a seed


def _val_index(n, seed=0):
    return np.random.default_rng(seed).permutation(n)[:int(round(n * 0.2))]


def test_stop_returns_a_usable_branch():
    G = make_generator()
    ws, masks = _synthetic_task(G, 3)
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > 5

    branch, report = train_branch(G, ws, masks, NAMES, PALETTE, members=2, hidden=(8, 4), max_steps=1000,
                                  eval_every=100, should_stop=stop)
    assert report.stopped and report.steps <= 6
    assert branch.predict(synthesis_features(G, ws[:1])).shape == (1, 32, 32)


def test_bad_annotations_are_refused():
    G = make_generator()
    ws, masks = _synthetic_task(G, 2)
    with pytest.raises(EditGANError, match="one 32x32 mask per latent"):
        train_branch(G, ws, masks[:1], NAMES, PALETTE)
    with pytest.raises(EditGANError, match="only 3 classes"):
        train_branch(G, ws, masks + 3, NAMES, PALETTE)
