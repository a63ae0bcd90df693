"""Paste-back (editgan_core/photo.py): an edit handed back at the photo's size, nothing outside its region."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from editgan_core.errors import EditGANError
from editgan_core.imageio import prepare_image
from editgan_core.masks import grow
from editgan_core.photo import paste_back, region_alpha

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
    from editgan_core.generator import images_to_uint8

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
    from editgan_core.embed import load_tuning
    from editgan_core.generator import images_to_uint8
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
    from editgan_core.photo import Crop

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


def test_the_changed_region_follows_the_edited_parts():
    from editgan_core.photo import changed_region

    before = np.zeros((40, 40), np.uint8)
    before[20:22, 5:7] = 1                                  # the edited part, unchanged here
    after = before.copy()
    after[5:8, 5:8] = 1                                     # the edited part grew here
    after[30, 30] = 2                                       # a flicker of another part elsewhere
    every = changed_region(before, after, (40, 40))
    edited = changed_region(before, after, (40, 40), classes=[1])
    assert every[30, 30] and not edited[30, 30] and edited[6, 6] and edited[2, 2]       # grown by the margin
    assert edited[21, 6] and not every[21, 6]               # the whole edited part, changed or not
    assert changed_region(None, after, (40, 40)).all()
