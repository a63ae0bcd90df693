"""Paste-back (editgan_core/pipeline/photo.py): an edit handed back at the photo's size, nothing outside its region."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from editgan_core.errors import EditGANError
from editgan_core.storage.imageio import prepare_image
from editgan_core.storage.masks import grow
from editgan_core.pipeline.photo import paste_back, region_alpha

R = 32


def _grown(region, box, size, px):
    """The region in photo pixels grown by ``px`` (what may change), for checking."""
    a = region_alpha(region, box, size, dilate=0.0, feather=1e-9)       # nearest-mapped region, a 1-px ramp
    return grow(a > 0, px)


@pytest.mark.parametrize("fit", ["crop", "pad"])
def test_paste_back_changes_only_the_dilated_region_at_the_photos_size(fit):
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)          # 300 x 200, not square
    prep = prepare_image(photo, R, fit=fit)
    edited = prep.array.copy()
    region = np.zeros((R, R), bool)
    region[10:20, 12:22] = True
    edited[region] = (255, 0, 0)                                          # the edit: a red patch
    out = paste_back(photo, edited, region, prep.box, dilate=0.02, feather=0.03)
    assert out.shape == photo.shape and out.dtype == np.uint8
    side = prep.box[2] - prep.box[0]
    may_change = _grown(region, prep.box, (300, 200), round(0.05 * side) + 1)
    assert np.array_equal(out[~may_change], photo[~may_change])           # untouched, bit for bit
    # inside the region (away from its edge, where the resize rings) the edit arrives: the red patch
    a = region_alpha(region, prep.box, (300, 200))
    inside = torch.from_numpy(_grown(region, prep.box, (300, 200), 0).astype(np.float32))[None, None]
    core = (-F.max_pool2d(-inside, 7, stride=1, padding=3))[0, 0].numpy() > 0
    assert core.sum() > 100 and (a[core] == 1).all()
    assert (out[core][:, 0] > 200).mean() > 0.9 and (out[core][:, 1] < 60).mean() > 0.9
    assert ((0 <= a) & (a <= 1)).all() and (a[~may_change] == 0).all()


def test_paste_back_refuses_what_does_not_fit():
    photo = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(EditGANError, match="square"):
        paste_back(photo, np.zeros((R, R, 3), np.uint8), np.zeros((R, R), bool), (0, 0, 40, 30))
    with pytest.raises(EditGANError, match="RGB uint8"):
        paste_back(photo[..., 0], np.zeros((R, R, 3), np.uint8), np.zeros((R, R), bool), (0, 0, 40, 40))
    with pytest.raises(EditGANError, match="model's square"):
        paste_back(photo, np.zeros((R, R, 3), np.uint8), np.zeros((16, 16), bool), (0, 0, 40, 40))
    # an empty region gives the photo back unchanged
    assert np.array_equal(paste_back(photo, np.full((R, R, 3), 255, np.uint8), np.zeros((R, R), bool),
                                     (0, 0, 40, 40)), photo)


def test_a_photos_export_comes_back_at_its_own_size_changed_only_where_the_parts_changed(tmp_path):
    """The studio: upload a wide photo, embed it, move a slider, export: photo.png is the uploaded photo's size and
    equals it outside the (grown) region where the segmentation changed; result.png stays the model's size."""
    import sys
    from pathlib import Path

    from PIL import Image

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from demo.model import Studio
    from demo.session import Session
    from editgan_core.models.generator import images_to_uint8

    s = Session(Studio())
    s.set_model("toyfaces")
    G = s.assets.G
    ws = G.mapping_ws(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(4)), truncation_psi=0.7)
    with torch.no_grad():
        face = images_to_uint8(G.synthesis(ws))[0].numpy()
    wide = np.full((100, 160, 3), 40, np.uint8)                      # the face inside a wider photo, 1.5x scale
    wide[2:98, 32:128] = np.asarray(Image.fromarray(face).resize((96, 96), Image.BICUBIC))
    s.prepare_photo(wide, "crop")
    base = s.embed(steps=5)
    s.set_scales({s.vector_names()[0]: 2.0})
    files = s.export(tmp_path)
    names = [f.name for f in files]
    assert names[0].endswith("_photo.png") and any(n.endswith("_result.png") for n in names)
    photo = np.asarray(Image.open(files[0]).convert("RGB"))
    assert photo.shape == wide.shape
    changed = s.labels_of(base) != s.labels_of()
    assert changed.any()
    side = 100                                                       # the crop box's side in photo pixels
    box = s.source[1]
    may = region_alpha(grow(changed, 5 + 3), box, (160, 100), dilate=0.02 + 2 / side, feather=0.03 + 2 / side) > 0
    assert np.array_equal(photo[~may], wide[~may]) and not np.array_equal(photo, wide)
    assert np.asarray(Image.open([f for f in files if f.name.endswith("_result.png")][0])).shape == (64, 64, 3)


def test_a_pivotal_tuned_photo_renders_with_its_tuning_and_exports_it(tmp_path):
    """The studio with pivotal tuning: the photo's steps (embedding, sliders) render with the tuned copy, which is
    closer to the photo; a sample afterwards uses the model again; the export carries the tuning, which reloads
    into the same generator."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from demo.model import Studio
    from demo.session import Session
    from editgan_core.pipeline.embed import load_tuning
    from editgan_core.models.generator import images_to_uint8
    from editgan_core.toyfaces.render import render_seed

    s = Session(Studio())
    s.set_model("toyfaces")
    G = s.assets.G
    face = render_seed(123, 64)[0]                       # a render: the generator can only approximate it
    s.prepare_photo(face, "crop")
    plain = s.embed(steps=10)
    tuned = s.embed(steps=10, tune_steps=30)
    assert tuned.tuning is not None and plain.tuning is None and "pivotal tuning 30 steps" in tuned.what
    err = lambda img: float(((img.astype(float) - face) ** 2).mean())  # noqa: E731
    assert err(tuned.image) < err(plain.image)
    name = s.vector_names()[0]
    moved = s.set_scales({name: 1.5})
    with torch.no_grad():
        want = images_to_uint8(tuned.tuning.G.synthesis(moved.ws))[0].numpy()
    assert moved.tuning is tuned.tuning and np.array_equal(s.exact_image(moved), want)
    files = s.export(tmp_path)
    tuning_file = next(f for f in files if f.name.endswith("_tuning.safetensors"))
    again = load_tuning(tuning_file, G, expect_generator=s.assets.identity)[0]
    with torch.no_grad():
        assert np.array_equal(images_to_uint8(again.synthesis(moved.ws))[0].numpy(), want)
    sample = s.sample(3)
    assert sample.tuning is None
    with torch.no_grad():
        assert np.array_equal(sample.image, images_to_uint8(G.synthesis(sample.ws))[0].numpy())


def test_the_studio_cuts_uploads_as_faces_or_boxes_and_moves_the_box():
    """Session.prepare_photo / adjust_crop: a box moves, scales and turns with the controls; a photo cut as a face
    with no face in it says so and uses the box; a bad face number is refused and changes nothing."""
    import math
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from demo.model import Studio
    from demo.session import Session
    from editgan_core.pipeline.photo import Crop

    s = Session(Studio())
    s.set_model("toyfaces")
    rng = np.random.default_rng(5)
    photo = rng.integers(0, 256, (120, 200, 3), dtype=np.uint8)
    first, note, preview = s.prepare_photo(photo, "crop")
    assert s.upload.cut == "box" and s.source[1] == Crop.from_box((40, 0, 160, 120))
    assert preview.shape == (230, 384, 3) and first.shape == (64, 64, 3)
    moved, note, _ = s.adjust_crop(dx=0.1, dy=-0.05, zoom=0.5, turn=30)
    c = s.source[1]
    assert (c.cx, c.cy, c.side) == pytest.approx((100 + 12, 60 - 6, 60)) and c.angle == pytest.approx(math.radians(30))
    assert "turned 30.0 deg" in note and not np.array_equal(moved, first)
    _, note, _ = s.prepare_photo(np.full((100, 100, 3), 128, np.uint8), "crop", cut="face")
    assert s.upload.cut == "face" and s.upload.faces == [] and "no face found" in note
    before = s.source
    with pytest.raises(EditGANError, match="a photo is cut as"):
        s.prepare_photo(photo, "crop", cut="sideways")
    assert s.source is before


# A synthetic face at model size: what a model draws before and after an edit, and a photo with its own detail.
BG, SKIN, HAIR, EYE, LIPS, MOUTH = range(6)
COLOURS = np.array([[60, 110, 60], [200, 160, 130], [120, 70, 30], [40, 140, 60], [200, 60, 70], [90, 20, 30]],
                   np.float32)


def _face(R: int = 48, smile: bool = False, long_hair: bool = False) -> np.ndarray:
    yy, xx = np.mgrid[:R, :R]
    lab = np.full((R, R), BG, np.uint8)
    lab[(yy - 26) ** 2 + (xx - 24) ** 2 < 15 ** 2] = SKIN
    lab[(yy < 16) & ((yy - 20) ** 2 + (xx - 24) ** 2 < 17 ** 2)] = HAIR
    if long_hair:                                            # strands down both sides of the face
        lab[14:44, 6:11] = HAIR
        lab[14:44, 37:42] = HAIR
    lab[20:23, 17:20] = EYE
    lab[20:23, 28:31] = EYE
    lab[33:35, 19:29] = LIPS
    if smile:                                                # the corners go up, the mouth opens a little
        lab[31:33, 17:19] = LIPS
        lab[31:33, 29:31] = LIPS
        lab[34, 21:27] = MOUTH
    return lab


def _draw(lab: np.ndarray, shift=None) -> np.ndarray:
    """The model's picture of ``lab``: flat colours, blurred a little; ``shift`` {class: levels} on top."""
    img = COLOURS[lab].copy()
    for c, v in (shift or {}).items():
        img[lab == c] += v
    t = torch.from_numpy(img).permute(2, 0, 1)[None]
    t = F.avg_pool2d(F.pad(t, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return np.clip(np.rint(t[0].permute(1, 2, 0).numpy()), 0, 255).astype(np.uint8)


def _photo_of(lab: np.ndarray, side: int, seed: int = 0) -> np.ndarray:
    """A photo of the face at ``side`` pixels: sharp edges and a texture of its own the model never draws."""
    big = np.kron(lab, np.ones((side // lab.shape[0],) * 2, np.uint8))
    tex = np.random.default_rng(seed).normal(0, 9, big.shape + (3,))
    return np.clip(np.rint(COLOURS[big] + tex), 0, 255).astype(np.uint8)


def _in_photo(mask: np.ndarray, side: int) -> np.ndarray:
    return np.kron(mask, np.ones((side // mask.shape[0],) * 2, bool)).astype(bool)


def test_the_edit_region_is_where_parts_moved_not_every_pixel_of_their_classes():
    from editgan_core.pipeline.photo import changed_region

    lab0, lab1 = _face(), _face(smile=True)
    lab1[21, 16] = SKIN                                      # the branch's flicker on an eye's edge (no colour change)
    before = _draw(lab0)
    after = _draw(lab1, {EYE: 30, BG: 25})                   # the vector pulls on the eyes and background as well
    region = changed_region(before, after, lab0, lab1, classes=[SKIN, LIPS, MOUTH])
    mouth = grow(np.isin(lab0, [LIPS, MOUTH]) | np.isin(lab1, [LIPS, MOUTH]), 3)
    assert region.acted[31:35, 17:31].any() and region.reshaped[31:33, 17:19].all()
    assert not (region.acted & ~mouth).any()                 # not the eyes, the background, the flicker, the hair
    assert not (region.reshaped & ~region.acted).any()
    assert region.acted.mean() < 0.1 * np.isin(lab1, [SKIN, LIPS, MOUTH]).mean()
    # every class: the eyes' own change counts too, the background's as well (it touches no moved part? it does not)
    every = changed_region(before, after, lab0, lab1)
    assert every.acted[31:35, 17:31].any() and not every.acted[20:23, 28:31].any()
    # no segmentation: the colour changes, without specks
    plain = changed_region(before, after)
    assert plain.acted[20:23, 28:31].all() and not plain.reshaped.any()
    with pytest.raises(EditGANError, match="model's square"):
        changed_region(before, after[:40])


@pytest.mark.parametrize("blend", ["delta", "poisson", "replace"])
def test_a_smile_changes_the_photo_only_near_the_mouth_and_keeps_its_detail(blend):
    """A vector on skin, lips and mouth that also pulls on the eyes, hair and background: handed back into a 384-px
    photo, eyes, hair and background are bit-identical, only the mouth's surroundings change, and beside the mouth,
    where the skin only got lighter, the photo keeps its own texture."""
    from editgan_core.pipeline.photo import Crop, changed_region, hand_back

    side = 384
    lab0, lab1 = _face(), _face(smile=True)
    before = _draw(lab0)
    after = _draw(lab1, {EYE: 30, HAIR: 20, BG: 25})
    after[36:39, 20:28] = np.clip(after[36:39, 20:28].astype(int) + 14, 0, 255)     # the chin's shading, lighter
    photo = _photo_of(lab0, side)
    region = changed_region(before, after, lab0, lab1, classes=[SKIN, LIPS, MOUTH])
    res = hand_back(photo, Crop.from_box((0, 0, side, side)), before, after, region, blend=blend)
    changed = np.any(res.photo != photo, axis=2)
    keep = _in_photo(np.isin(lab0, [EYE, HAIR, BG]), side)
    assert not changed[keep].any() and changed.any()
    # the reach: reshaped parts and colour changes within 2 x 5 % of the side, then dilated and feathered (5 %)
    mouth = grow(np.isin(lab0, [LIPS, MOUTH]) | np.isin(lab1, [LIPS, MOUTH]), 7)
    assert not changed[~_in_photo(mouth, side)].any()
    assert res.changed_share == pytest.approx(changed.mean()) and res.changed_share < 0.3 * (lab0 == SKIN).mean()
    assert np.isinf(res.psnr_outside) and "bit-identical" in res.summary()
    assert not changed[res.alpha == 0].any()
    # the chin: lighter by the model's change, the photo's texture kept (not the model's flat skin)
    chin = res.photo[37 * 8 + 2:38 * 8 - 2, 22 * 8:26 * 8].astype(float) - photo[37 * 8 + 2:38 * 8 - 2, 22 * 8:26 * 8]
    assert 8 < chin.mean() < 16 and chin.std() < 3
    # the corners of the mouth went up: the skin there turned towards the lips' red (green 160 -> 60)
    corner = (slice(31 * 8 + 3, 33 * 8 - 3), slice(17 * 8 + 3, 19 * 8 - 3))
    assert photo[corner][..., 1].mean() - res.photo[corner][..., 1].mean() > 30


def test_a_mask_edit_of_the_hair_hands_back_the_hair_only():
    from editgan_core.pipeline.photo import Crop, changed_region, hand_back

    side = 288
    lab0, lab1 = _face(), _face(long_hair=True)
    before, after = _draw(lab0), _draw(lab1)
    photo = _photo_of(lab0, side, seed=1)
    region = changed_region(before, after, lab0, lab1, classes=[BG, SKIN, HAIR])
    res = hand_back(photo, Crop.from_box((0, 0, side, side)), before, after, region)
    changed = np.any(res.photo != photo, axis=2)
    strands = _in_photo(grow(lab1 != lab0, 2), side)
    assert changed[strands].mean() > 0.5
    assert not changed[~_in_photo(grow(lab1 != lab0, 4), side)].any()       # the face, eyes, mouth: untouched
    assert not changed[_in_photo(np.isin(lab0, [EYE, LIPS]), side)].any()


def test_poisson_blending_meets_the_photo_at_the_border_with_the_models_gradients_inside():
    from editgan_core.pipeline.photo import poisson_blend

    rng = np.random.default_rng(0)
    base = rng.uniform(0, 255, (30, 40, 3)).astype(np.float32)
    yy, xx = np.mgrid[:30, :40]
    source = np.stack([3.0 * xx, 2.0 * yy, 0.1 * xx * yy], 2).astype(np.float32)
    inside = np.zeros((30, 40), bool)
    inside[8:22, 10:30] = True
    out = poisson_blend(base, source, inside)
    assert np.array_equal(out[~inside], base[~inside])

    def lap(a):
        return 4 * a[1:-1, 1:-1] - a[:-2, 1:-1] - a[2:, 1:-1] - a[1:-1, :-2] - a[1:-1, 2:]
    deep = inside[1:-1, 1:-1]
    assert np.allclose(lap(out)[deep], lap(source)[deep], atol=1e-3)
    # a source that differs from the photo by a constant brings nothing: the same gradients
    assert np.allclose(poisson_blend(base, base + 50, inside), base, atol=1e-3)


def test_hand_back_refuses_what_does_not_fit():
    from editgan_core.pipeline.photo import ChangedRegion, hand_back

    img = np.zeros((R, R, 3), np.uint8)
    region = ChangedRegion(np.ones((R, R), bool), np.zeros((R, R), bool))
    with pytest.raises(EditGANError, match="blend must be"):
        hand_back(np.zeros((40, 40, 3), np.uint8), (0, 0, 40, 40), img, img, region, blend="smudge")
    with pytest.raises(EditGANError, match="model's square"):
        hand_back(np.zeros((40, 40, 3), np.uint8), (0, 0, 40, 40), img, img[:16, :16], region)
