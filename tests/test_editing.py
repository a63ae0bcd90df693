"""Mask edits and editing vectors on a tiny model: locality, best-so-far, identity, additivity, files."""

import numpy as np
import pytest
import torch

from conftest import colour_branch, make_generator
from editgan_core.pipeline.editing import EditError, edit_from_mask, edit_region, optimise_region
from editgan_core.models.segbranch import segment
from editgan_core.errors import CheckpointError, EditGANError
from editgan_core.storage.identity import generator_identity
from editgan_core.storage.vectors import EditVector, list_library, load_vector, save_vector
from editgan_core.pipeline.apply import apply_vectors


@pytest.fixture(scope="module")
def setup():
    """A tiny generator and a branch trained to segment its images by their dominant colour channel."""
    G = make_generator()
    branch, _, _ = colour_branch(G)
    ws = G.mapping_ws(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(2)))
    return G, branch, ws


def _uniform_box(labels, size=6):
    """Top-left corner and class of a size x size window of one class."""
    R = labels.shape[0]
    for y in range(0, R - size):
        for x in range(0, R - size):
            win = labels[y:y + size, x:x + size]
            if (win == win[0, 0]).all():
                return y, x, int(win[0, 0])
    raise AssertionError("no uniform window")


def _paint(labels, cls, box=(8, 20, 8, 20)):
    new = labels.copy()
    new[box[0]:box[1], box[2]:box[3]] = cls
    return new


def test_edit_region_grows_by_margin():
    old = np.zeros((16, 16), np.uint8)
    new = old.copy()
    new[7:9, 7:9] = 2
    r = edit_region(old, new, margin=0)
    assert r.all()                          # class 0 changed too, so its pixels are all in the region
    r = edit_region(old, new, classes=[2], margin=2)
    assert r.sum() == 6 * 6 and r[5:11, 5:11].all()


def test_edit_moves_segmentation_towards_the_painted_class(setup):
    G, branch, ws = setup
    old = segment(G, branch, ws)[0]
    y, x, was = _uniform_box(old)
    cls = (was + 1) % 3
    new = _paint(old, cls, (y, y + 6, x, x + 6))
    res = edit_from_mask(G, branch, ws, new, steps=60, lr=0.1, margin=2)
    assert res.classes == sorted([was, cls])
    inside = np.zeros(old.shape, bool)
    inside[y:y + 6, x:x + 6] = True
    box = torch.from_numpy(np.flatnonzero(inside))

    def prob_in_box(w):   # the branch's mean probability of the painted class inside the box
        with torch.no_grad():
            _, feats = G.synthesis(w, return_features=True)
            return branch.logits_at(feats, box)[0].softmax(0)[cls].mean().item()

    before, after = prob_in_box(ws), prob_in_box(res.ws)
    assert after > before + 0.08, (before, after)
    assert res.loss < res.history[0]
    assert res.delta.shape == (G.num_ws, G.w_dim)
    assert torch.allclose(res.ws, ws + res.delta)


def test_pixels_far_outside_the_region_change_little(setup):
    """The RGB term holds the image outside the edit region: compare with the same optimisation without it."""
    G, branch, ws = setup
    old = segment(G, branch, ws)[0]
    target = old.copy()
    region = np.zeros(old.shape, bool)
    region[4:14, 4:14] = True
    target[region] = (old[region].astype(int) + 1) % 3
    kw = dict(steps=40, lr=0.1)
    kept, _, _ = optimise_region(G, branch, ws, target, region, rgb_weight=15.0, **kw)
    loose, _, _ = optimise_region(G, branch, ws, target, region, rgb_weight=0.0, **kw)
    far = torch.from_numpy(~edit_region(region.astype(np.uint8), region.astype(np.uint8), [1], margin=4))
    with torch.no_grad():
        orig, a, b = G.synthesis(ws), G.synthesis(ws + kept), G.synthesis(ws + loose)
    change_kept = (a - orig).abs()[0][:, far].mean()
    change_loose = (b - orig).abs()[0][:, far].mean()
    assert change_kept < 0.5 * change_loose, (change_kept, change_loose)


def test_synthesis_stopped_early_is_the_start_of_the_full_pass():
    """stop_at: the blocks up to that resolution, their features exactly as in the full pass, the skip image at
    that resolution, and nothing read from the later W+ entries."""
    G = make_generator()
    ws = G.mapping_ws(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        full_img, full = G.synthesis(ws, return_features=True)
        img, feats = G.synthesis(ws, return_features=True, stop_at=16)
        k = G.ws_read_up_to(16)
        other = ws.clone()
        other[:, k:] += 1.0
        img2, feats2 = G.synthesis(other, return_features=True, stop_at=16)
        full2 = G.synthesis(other)
    assert img.shape == (2, 3, 16, 16) and len(feats) == sum(r <= 16 for r in G.feature_resolutions())
    for a, b in zip(feats, full):
        assert torch.equal(a, b)
    assert torch.equal(img, img2) and all(torch.equal(a, b) for a, b in zip(feats, feats2))
    assert not torch.equal(full_img, full2)           # the later entries do matter at full size
    assert 0 < k < G.num_ws
    with pytest.raises(ValueError):
        G.synthesis(ws, stop_at=12)


def test_edit_at_a_working_resolution_moves_only_coarse_entries(setup):
    """A mask edit that optimises with the synthesis stopped at half the model's size: only the W+ entries those
    blocks read move (so the vector leaves the finest layers alone), the painted class still takes the box, the
    image far outside the region stays, and the vector says how it was made."""
    G, branch, ws = setup
    old = segment(G, branch, ws)[0]
    y, x, was = _uniform_box(old)
    cls = (was + 1) % 3
    new = _paint(old, cls, (y, y + 6, x, x + 6))
    res = edit_from_mask(G, branch, ws, new, steps=60, lr=0.1, margin=2, work_resolution=16)
    exact = edit_from_mask(G, branch, ws, new, steps=60, lr=0.1, margin=2, work_resolution=0)
    k = G.ws_read_up_to(16)
    assert torch.count_nonzero(res.delta[k:]) == 0 and torch.count_nonzero(res.delta[:k]) > 0
    assert torch.count_nonzero(exact.delta[k:]) > 0
    assert res.vector.extra["work_resolution"] == 16 and exact.vector.extra["work_resolution"] == 32
    inside = np.zeros(old.shape, bool)
    inside[y:y + 6, x:x + 6] = True
    box = torch.from_numpy(np.flatnonzero(inside))

    def prob_in_box(w):
        with torch.no_grad():
            _, feats = G.synthesis(w, return_features=True)
            return branch.logits_at(feats, box)[0].softmax(0)[cls].mean().item()

    assert prob_in_box(res.ws) > prob_in_box(ws) + 0.08
    assert res.quality.psnr_outside > 20, res.quality


def test_stop_returns_best_so_far(setup):
    G, branch, ws = setup
    old = segment(G, branch, ws)[0]
    new = _paint(old, 1)
    n = {"c": 0}
    seen = []

    def stop():
        n["c"] += 1
        return n["c"] > 7

    res = edit_from_mask(G, branch, ws, new, steps=100, should_stop=stop,
                         progress=lambda s, t, loss, img: seen.append((s, img is not None)))
    assert res.stopped and res.steps == 7 and len(seen) == 7
    assert res.loss == min(res.history)
    assert res.image.shape == (1, 3, 32, 32) and torch.isfinite(res.image).all()


def test_bad_edits_get_clear_messages(setup):
    G, branch, ws = setup
    old = segment(G, branch, ws)[0]
    with pytest.raises(EditError, match="unchanged"):
        edit_from_mask(G, branch, ws, old)
    with pytest.raises(EditError, match="knows only 3 classes"):
        edit_from_mask(G, branch, ws, _paint(old, 7))
    with pytest.raises(EditError, match="32x32"):
        edit_from_mask(G, branch, ws, old[:16])


def _vector(G, name="smile", seed=0, **kw):
    d = torch.randn(G.num_ws, G.w_dim, generator=torch.Generator().manual_seed(seed)) * 0.3
    return EditVector(name=name, delta=d, generator=generator_identity(G, "tiny"), classes=["a"], **kw)


def test_scale_zero_is_identity_and_vectors_add(setup):
    G, branch, ws = setup
    v1, v2 = _vector(G, "a", 1), _vector(G, "b", 2)
    base = apply_vectors(G, ws, [])
    assert torch.equal(apply_vectors(G, ws, [(v1, 0.0)]).image, base.image)
    both = apply_vectors(G, ws, [(v1, 1.5), (v2, -0.5)])
    assert torch.allclose(both.ws, ws + 1.5 * v1.delta - 0.5 * v2.delta, atol=1e-6)
    assert not torch.allclose(both.image, base.image)


def test_refinement_improves_what_it_optimises_and_needs_branch(setup):
    """Refinement keeps the edited segmentation inside the vectors' region and pulls the rest back to the
    original image: outside the region the refined image is measurably closer to the original than the plain
    application, while inside it the segmentation still matches the edited one."""
    from editgan_core.pipeline.editing import edit_region, refine

    G, branch, ws = setup
    v = _vector(G)
    with pytest.raises(EditGANError, match="branch"):
        apply_vectors(G, ws, [(v, 1.0)], refine_steps=10)
    edited = ws + v.delta
    before, after = segment(G, branch, ws)[0], segment(G, branch, edited)[0]
    areas = [(np.isin(before, [c]) | np.isin(after, [c])).sum() for c in range(3)]
    cls = [int(np.argmin([a if a else 10 ** 9 for a in areas]))]        # the smallest part present
    region = edit_region(before, after, cls, margin=1)
    assert 0 < region.sum() < region.size
    refined = refine(G, branch, ws, edited, cls, steps=30, margin=1)
    with torch.no_grad():
        original, plain, out = G.synthesis(ws), G.synthesis(edited), G.synthesis(refined)
    outside = torch.from_numpy(~region)[None, None].float()

    def mse_out(img):
        return float(((img - original).square() * outside).sum() / outside.sum())

    assert mse_out(out) < 0.9 * mse_out(plain), (mse_out(out), mse_out(plain))
    assert (segment(G, branch, refined)[0][region] == after[region]).mean() > 0.8
    # apply_vectors uses the same refinement (names -> class indices), at the app's settings
    assert not torch.equal(apply_vectors(G, ws, [(v, 1.0)], branch=branch, refine_steps=10).ws, edited)


def test_vector_round_trip_is_bit_exact_and_other_models_refused(setup, tmp_path):
    G, _, _ = setup
    thumb = np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    v = _vector(G, "bigger eyes", thumb_before=thumb, thumb_after=thumb[::-1])
    path = save_vector(v, tmp_path / "lib")
    back = load_vector(path, expect_generator=generator_identity(G, "tiny"))
    assert torch.equal(back.delta, v.delta) and back.name == "bigger eyes" and back.classes == ["a"]
    assert np.array_equal(back.thumb_after, thumb[::-1]) and back.created
    assert path.name == "bigger_eyes.safetensors" and (tmp_path / "lib" / "bigger_eyes.json").is_file()
    other = generator_identity(make_generator(seed=1, channel_max=16), "other")
    with pytest.raises(EditGANError, match="belongs to another model"):
        load_vector(path, expect_generator=other)
    (tmp_path / "lib" / "broken.safetensors").write_bytes(b"\x00" * 10)
    vecs, problems = list_library(tmp_path / "lib", expect_generator=generator_identity(G, "tiny"))
    assert [x.name for x in vecs] == ["bigger eyes"] and len(problems) == 1
    with pytest.raises(EditGANError, match="vector name"):
        save_vector(_vector(G, "../evil"), tmp_path / "lib")
    with pytest.raises(CheckpointError):
        load_vector(tmp_path / "lib" / "broken.safetensors")


def test_crash_mid_save_keeps_the_old_vector(setup, tmp_path, monkeypatch):
    G, _, _ = setup
    v = _vector(G, "keep")
    save_vector(v, tmp_path)
    from editgan_core.storage import files

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(files, "save_file", boom)       # the writer of every file the project saves
    with pytest.raises(OSError):
        save_vector(_vector(G, "keep", seed=5), tmp_path)
    monkeypatch.undo()
    assert torch.equal(load_vector(tmp_path / "keep.safetensors").delta, v.delta)
    assert not [p for p in tmp_path.iterdir() if p.suffix not in (".safetensors", ".json")]


def test_library_folder_is_per_model(tmp_path, monkeypatch):
    from editgan_core.storage.vectors import library_dir

    monkeypatch.setenv("EDITGAN_HOME", str(tmp_path))
    a = library_dir({"name": "hf://org/repo/x.pkl", "sha256": "ab" * 32})
    b = library_dir({"name": "hf://org/repo/x.pkl", "sha256": "cd" * 32})
    assert a != b and a.parent == tmp_path / "vectors" and "/" not in a.name[len("hf"):]
    assert library_dir({"name": "m", "resolution": 32, "num_ws": 8, "w_dim": 16}).name == "m-32px-8x16"


def test_batched_optimisation_equals_separate_runs(setup):
    """Each image of a batch keeps its own loss, region and best iterate: the same deltas as one run per image."""
    G, branch, _ = setup
    ws = G.mapping_ws(torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(9)))
    labels = segment(G, branch, ws)
    regions = np.zeros(labels.shape, bool)
    regions[0, 2:10, 2:10] = True
    regions[1, 12:30, 5:20] = True          # image 2 has no region at all: only its RGB term acts
    targets = (labels.astype(int) + 1) % 3
    # Start away from delta = 0, where every gradient is rounding noise that Adam would blow up to full steps.
    start = 0.3 * torch.randn(ws.shape, generator=torch.Generator().manual_seed(4))
    kw = dict(steps=6, lr=0.01, delta0=start)
    together, hist, _ = optimise_region(G, branch, ws, targets, regions, **kw)
    for i in range(3):
        kw_i = {**kw, "delta0": start[i:i + 1]}
        alone, _, _ = optimise_region(G, branch, ws[i:i + 1], targets[i], regions[i], **kw_i)
        assert torch.allclose(together[i:i + 1], alone, atol=1e-4), i
        assert not torch.equal(together[i], start[i])
    assert len(hist) == 6


def test_batched_refinement_equals_one_image_at_a_time(setup):
    G, branch, ws = setup
    many = G.mapping_ws(torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(5)))
    vec = EditVector(name="v", delta=0.5 * torch.randn(G.num_ws, G.w_dim, generator=torch.Generator().manual_seed(1)),
                     generator=generator_identity(G, "tiny"), classes=["g"])
    a = apply_vectors(G, many, [(vec, 1.0)], branch=branch, refine_steps=5, refine_lr=0.05, batch=3)
    b = apply_vectors(G, many, [(vec, 1.0)], branch=branch, refine_steps=5, refine_lr=0.05, batch=1)
    assert torch.allclose(a.ws, b.ws, atol=1e-5)
    assert not torch.allclose(a.ws, many + vec.delta)   # refinement moved something


def test_large_regions_estimate_the_same_cross_entropy_from_samples(setup):
    """A region larger than ce_samples is evaluated at pixels drawn in proportion to their weight: on average
    the estimate equals the full weighted cross-entropy (unbiased), each draw is cheaper, and an edit with
    sampling still reaches the painted target; a region within the budget is evaluated whole (exact)."""
    G, branch, ws = setup
    R = G.img_resolution
    with torch.no_grad():
        _, feats = G.synthesis(ws, return_features=True)
    rng = np.random.default_rng(0)
    pix = torch.arange(R * R)
    tgt = torch.from_numpy(rng.integers(0, 3, (1, R * R)))
    wt = torch.from_numpy(rng.uniform(0.5, 3.0, (1, R * R)).astype(np.float32))
    full = branch.cross_entropy_per_image(feats, pix, tgt, wt)
    total = wt.sum(1)
    q = (wt[0] / total).double()
    draws = torch.Generator().manual_seed(1)
    est = []
    for _ in range(200):
        idx, count = torch.multinomial(q.float(), 128, replacement=True, generator=draws).unique(return_counts=True)
        w = wt[:, idx] * (count / (128 * q[idx])).float()[None]
        with torch.no_grad():
            est.append(float(branch.cross_entropy_per_image(feats, pix[idx], tgt[:, idx], w, total=total)))
    assert abs(np.mean(est) - float(full)) < 4 * np.std(est) / np.sqrt(len(est)) + 1e-4
    # the edit itself: sampled (64 draws a step; the region is most of the image) and whole both move the mask
    old = segment(G, branch, ws)[0]
    y, x, was = _uniform_box(old)
    cls = (was + 1) % 3
    new = _paint(old, cls, (y, y + 6, x, x + 6))
    box = torch.from_numpy(np.flatnonzero(_paint(np.zeros_like(old), 1, (y, y + 6, x, x + 6))))

    def prob_in_box(w):
        with torch.no_grad():
            _, f = G.synthesis(w, return_features=True)
            return branch.logits_at(f, box)[0].softmax(0)[cls].mean().item()

    for budget in (64, 0):
        res = edit_from_mask(G, branch, ws, new, steps=60, lr=0.1, margin=2, ce_samples=budget)
        assert res.region.sum() > 64
        assert prob_in_box(res.ws) > prob_in_box(ws) + 0.08, budget


def test_edit_quality_reads_what_the_result_reached_and_what_changed_outside():
    """The readout on hand-made cases: a result that took half of the painted pixels, and an image that changed
    only inside the region (PSNR outside infinite) or by a known amount outside it."""
    from editgan_core.pipeline.editing import edit_quality

    target = np.zeros((8, 8), np.uint8)
    target[2:6, 2:6] = 1
    painted = target == 1
    result = np.zeros_like(target)
    result[2:4, 2:6] = 1                                   # half of the painted square
    region = np.zeros((8, 8), bool)
    region[1:7, 1:7] = True
    before = torch.zeros(1, 3, 8, 8)
    after = before.clone()
    after[..., 3, 3] = 0.5                                  # inside the region only
    q = edit_quality(before, after, target, result, region, painted, [0, 1])
    assert q.reached == 0.5 and q.psnr_outside == float("inf") and "unchanged" in q.summary()
    assert "follows the painting only in part" in q.advice() and "outside" not in q.advice()
    iou1 = 8 / 16
    iou0 = ((result == 0) & (target == 0) & region).sum() / (((result == 0) | (target == 0)) & region).sum()
    assert q.region_iou == pytest.approx((iou1 + iou0) / 2)
    after[..., 0, 0] = 0.2                                  # one pixel outside, all three channels
    q = edit_quality(before, after, target, result, region, painted, [0, 1])
    n_out = (~region).sum() * 3
    assert q.psnr_outside == pytest.approx(10 * np.log10(4 / (3 * 0.04 / n_out)))
    assert q.as_dict()["psnr_outside_db"] == round(q.psnr_outside, 2)


def test_edit_quality_reads_lpips_outside_the_region_when_weights_are_there():
    """LPIPS (random VGG weights: the measure, not its calibration) sees nothing when only the region changed, and a
    change outside it; without weights the readout leaves it out."""
    from editgan_core.pipeline.editing import edit_quality
    from editgan_core.models.perceptual import LPIPS

    torch.manual_seed(0)
    lp = LPIPS().eval()
    with torch.no_grad():
        for lin in lp.lins:                                  # non-zero heads
            lin.fill_(1.0)
    R = 32
    target = np.zeros((R, R), np.uint8)
    target[8:20, 8:20] = 1
    region = np.zeros((R, R), bool)
    region[6:22, 6:22] = True
    before = torch.rand(1, 3, R, R) * 2 - 1
    after = before.clone()
    after[..., 10:18, 10:18] = 1.0                          # inside only
    q = edit_quality(before, after, target, target, region, target == 1, [0, 1], lpips=lp)
    assert q.lpips_outside == 0.0 and "LPIPS outside 0.000" in q.summary() and q.advice() == ""
    after[..., 0:4, 0:4] = -1.0                             # and outside
    q2 = edit_quality(before, after, target, target, region, target == 1, [0, 1], lpips=lp)
    assert q2.lpips_outside > 0 and q2.as_dict()["lpips_outside"] == round(q2.lpips_outside, 4)
    q3 = edit_quality(before, after, target, target, region, target == 1, [0, 1])
    assert q3.lpips_outside is None and "lpips_outside" not in q3.as_dict() and "LPIPS" not in q3.summary()


def test_stroke_edges_are_the_rim_of_what_was_painted():
    from editgan_core.pipeline.editing import stroke_edges

    old = np.zeros((12, 12), np.uint8)
    old[0:2] = 2                                             # an edge that was not painted: not a stroke edge
    new = old.copy()
    new[4:8, 4:8] = 1                                        # the stroke
    painted = old != new
    e = stroke_edges(new, painted, 1)
    ring = np.zeros_like(painted)
    ring[3:9, 3:9] = True
    ring[5:7, 5:7] = False                                   # both sides of the stroke's outline, not its core
    ring[[3, 3, 8, 8], [3, 8, 3, 8]] = False                 # (4-neighbour edges: the outer corners touch none)
    assert np.array_equal(e, ring)
    assert not e[0:3].any()                                  # the untouched hair line is left alone
    assert stroke_edges(new, painted, 2).sum() > e.sum()


def test_painted_pixels_take_the_colour_their_class_already_has():
    from editgan_core.pipeline.editing import painted_colours

    G = make_generator()
    ws = G.mapping_ws(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(1)))
    R = G.img_resolution
    old = np.zeros((R, R), np.uint8)
    old[:8] = 1                                               # class 1 at the top
    new = old.copy()
    new[8:12, :4] = 1                                         # painted longer: class 1, which exists
    new[20:24, 20:24] = 2                                     # class 2, which the image does not have yet
    painted = old != new
    target, mask = painted_colours(G, ws, old, new, painted)
    with torch.no_grad():
        img = G.synthesis(ws)[0]
    want = img[:, :8].mean((1, 2))
    assert torch.allclose(target[0, :, 10, 2], want, atol=1e-6) and mask[0, 0, 10, 2] == 1
    assert mask[0, 0, 22, 22] == 0 and mask.sum() == 16
