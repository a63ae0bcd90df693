"""Cutting photos for the model (editgan_core/pipeline/align.py, photo.py): FFHQ's alignment recipe, exact on ToyFaces'
known landmarks; dlib on a real photo; a rotated crop handed back; awkward photos."""

import io
import math

import numpy as np
import pytest
from PIL import Image

from editgan_core.pipeline.align import align_photo, detect_faces, ffhq_crop
from editgan_core.storage.imageio import prepare_image
from editgan_core.storage.masks import grow
from editgan_core.pipeline.photo import Crop, cut, paste_back, region_alpha
from editgan_core.toyfaces.palette import CLASS_INDEX
from editgan_core.toyfaces.render import alignment_framing, landmarks, render, render_seed, sample_params

NEUTRAL = dict(head_tilt=0.5, offset_x=0.5, offset_y=0.5, head_turn=0.5, eye_spacing=0.5, smile=0.5,
               mouth_width=0.5)


def psnr(a, b):
    mse = ((np.asarray(a, float) - np.asarray(b, float)) ** 2).mean()
    return float("inf") if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def place(img, crop, size=(1200, 900), fill=(90, 120, 60)):
    """The square ``img`` drawn into a ``size`` canvas where ``crop`` says (turned, scaled, shifted)."""
    inv = crop.inverse(img.shape[0])
    return np.asarray(Image.fromarray(img).transform(size, Image.AFFINE, data=tuple(inv.reshape(-1)),
                                                     resample=Image.BICUBIC, fillcolor=fill))


def moved_landmarks(p, res, crop):
    m = crop.matrix(res)
    return {k: tuple(m[:, :2] @ np.array(v) + m[:, 2]) for k, v in landmarks(p, res).items()}


def test_the_ffhq_recipe_by_hand():
    # eyes 20 px apart, the mouth 20 px below them: x = e2e + e2m turned = (40, 0); half side max(40, 36) = 40
    c = ffhq_crop((40, 50), (60, 50), (42, 70), (58, 70))
    assert (c.cx, c.cy, c.side, c.angle) == pytest.approx((50, 52, 80, 0))
    # the same face turned by 30 degrees about (50, 50): the square turns with it, the same size
    t = math.radians(30)
    rot = lambda p: (50 + math.cos(t) * (p[0] - 50) - math.sin(t) * (p[1] - 50),   # noqa: E731
                     50 + math.sin(t) * (p[0] - 50) + math.cos(t) * (p[1] - 50))
    r = ffhq_crop(rot((40, 50)), rot((60, 50)), rot((42, 70)), rot((58, 70)))
    assert r.side == pytest.approx(80) and r.angle == pytest.approx(t)
    assert (r.cx, r.cy) == pytest.approx(rot((50, 52)))


def test_toyfaces_landmarks_are_where_the_renderer_draws_eyes_and_mouth():
    for seed in range(6):
        img, mask, p = render_seed(seed, 256)
        lm = landmarks(p, 256)
        for k in ("eye_left", "eye_right"):
            x, y = lm[k]
            assert mask[int(y), int(x)] in (CLASS_INDEX["irises"], CLASS_INDEX["eye_whites"])
        for k in ("mouth_left", "mouth_right"):      # the corners: the end of the mouth line, lips within 3 px
            x, y = (int(v) for v in lm[k])
            near = mask[y - 3:y + 4, x - 3:x + 4]
            assert np.isin(near, [CLASS_INDEX["lips"], CLASS_INDEX["mouth"]]).any()


@pytest.mark.parametrize("angle,scale,centre", [(25, 0.8, (520, 470)), (-40, 1.3, (700, 430)), (0, 0.5, (300, 200))])
def test_a_turned_scaled_shifted_toyface_is_aligned_back_to_its_canonical_crop(angle, scale, centre):
    """A 512-px render with neutral geometry is its own canonical crop. Drawn into a bigger canvas, turned, scaled and
    shifted, it is cut back from its landmarks: the square's corners land within 1e-6 px of where the render went
    and the cut equals the render (what is left is the two resamplings)."""
    p = sample_params(5).replace(**NEUTRAL)
    img, _ = render(p, 512)
    zoom, shift = alignment_framing()
    where = Crop(centre[0], centre[1], 512 * scale, math.radians(angle))
    canvas = place(img, where)
    crop = ffhq_crop(*moved_landmarks(p, 512, where).values(), zoom=zoom, shift=shift)
    assert np.abs(crop.corners() - where.corners()).max() < 1e-6
    back = cut(canvas, crop, 512)
    assert psnr(back, img) > 38
    small = lambda a: np.asarray(Image.fromarray(a).resize((64, 64), Image.LANCZOS))  # noqa: E731
    assert psnr(small(back), small(img)) > 45


def test_alignment_follows_the_face_not_the_frame():
    """Any face (turned head, tilt, offset): the crop of the moved photo is the crop of the original, moved."""
    img, _, p = render_seed(3, 512)
    zoom, shift = alignment_framing()
    own = ffhq_crop(*landmarks(p, 512).values(), zoom=zoom, shift=shift)
    where = Crop(600, 450, 400, math.radians(15))
    moved = ffhq_crop(*moved_landmarks(p, 512, where).values(), zoom=zoom, shift=shift)
    assert psnr(cut(place(img, where), moved, 128), cut(img, own, 128)) > 35


def test_a_rotated_crop_is_handed_back_changing_only_the_dilated_region():
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    crop = Crop(210, 140, 180, math.radians(20))
    R = 32
    model_in = cut(photo, crop, R)
    edited = model_in.copy()
    region = np.zeros((R, R), bool)
    region[12:20, 10:22] = True
    edited[region] = (0, 255, 0)
    out = paste_back(photo, edited, region, crop)
    exact = region_alpha(region, crop, (400, 300), dilate=0.0, feather=1e-9) > 0
    may_change = grow(exact, round(0.05 * 180) + 2)
    assert np.array_equal(out[~may_change], photo[~may_change])
    core = ~grow(~exact, 4) & exact
    assert core.sum() > 100 and (out[core][:, 1] > 200).mean() > 0.9
    # the cut of the pasted photo shows the edit where it was painted
    assert cut(out, crop, R)[14:18, 13:19, 1].mean() > 200


def test_a_box_beyond_the_photo_is_filled_by_reflection_or_colour():
    photo = np.zeros((100, 100, 3), np.uint8)
    photo[:, :50] = 200
    refl = cut(photo, Crop(20, 50, 100), 50)           # 30 px to the left of the photo
    assert refl[:, 2, 0].mean() > 120                   # the bright left half mirrored, not black
    filled = cut(photo, Crop(20, 50, 100), 50, fill=(0, 0, 255))
    assert (filled[:, 2] == (0, 0, 255)).all()


# -- a real photo (dlib) ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def astronaut():
    skimage = pytest.importorskip("skimage.data")
    return skimage.astronaut()


def test_the_astronaut_is_found_and_cut_like_ffhq(astronaut):
    faces = detect_faces(astronaut)
    assert len(faces) == 1
    f = faces[0]
    found = align_photo(astronaut, 256, faces=faces)
    c = found.crop
    # her face: eyes level within a few degrees, the square about twice the eye distance x 2 around them
    eye_d = math.dist(f.eye_left, f.eye_right)
    assert 160 < c.side < 190 and abs(math.degrees(c.angle)) < 6 and c.side == pytest.approx(4 * eye_d, rel=0.2)
    assert 200 < c.cx < 250 and 90 < c.cy < 125 and found.note.startswith("1 face found")
    # turned by 30 degrees, the photo gives the same face upright
    turned = np.asarray(Image.fromarray(astronaut).rotate(30, resample=Image.BICUBIC, expand=True))
    t = align_photo(turned, 256)
    assert math.degrees(t.crop.angle) == pytest.approx(math.degrees(c.angle) - 30, abs=3)
    assert psnr(cut(turned, t.crop, 64), cut(astronaut, c, 64)) > 22


def test_several_faces_largest_first_and_no_face(astronaut):
    canvas = np.full((600, 1100, 3), 128, np.uint8)
    canvas[50:562, 20:532] = astronaut
    canvas[100:356, 700:956] = np.asarray(Image.fromarray(astronaut).resize((256, 256), Image.LANCZOS))
    faces = detect_faces(canvas)
    assert len(faces) == 2 and faces[0].area > faces[1].area and faces[0].box[0] < 532 < faces[1].box[0]
    second = align_photo(canvas, 256, faces=faces, choose=1)
    assert "2 faces found, using face 1" in second.note and second.crop.cx > 700
    with pytest.raises(Exception, match="choose one from 0 to 1"):
        align_photo(canvas, 256, faces=faces, choose=2)
    none = align_photo(np.full((300, 300, 3), 90, np.uint8), 256)
    assert none.crop is None and "no face" in none.note


def test_a_small_face_is_said_to_be_soft(astronaut):
    small = np.asarray(Image.fromarray(astronaut).resize((256, 256), Image.LANCZOS))
    found = align_photo(small, 1024)
    assert found.crop is not None and "small" in found.note


# -- awkward photos -----------------------------------------------------------------------------------------

def test_an_exif_rotated_jpeg_is_used_upright():
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, :40] = 255                                    # bright on the left, as the camera saw it
    im = Image.fromarray(img)
    exif = im.getexif()
    exif[0x0112] = 6                                     # "rotate 90 CW to view"
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif.tobytes(), quality=95)
    prep = prepare_image(buf.getvalue(), 32, fit="pad")
    assert prep.original_size == (40, 80) and "EXIF orientation 6" in prep.note
    assert prep.original[:20].mean() > 200 and prep.original[60:].mean() < 50      # bright now on top


def test_cmyk_and_16_bit_photos_are_converted_and_said_so():
    cmyk = Image.new("CMYK", (50, 40), (0, 255, 255, 0))             # red in CMYK
    buf = io.BytesIO()
    cmyk.save(buf, "JPEG")
    prep = prepare_image(buf.getvalue(), 16)
    assert "CMYK converted to RGB" in prep.note and prep.array[..., 0].mean() > 200
    deep = Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16))
    buf = io.BytesIO()
    deep.save(buf, "PNG")
    prep = prepare_image(buf.getvalue(), 16)
    assert "rescaled to 8 bits" in prep.note and prep.original.max() > 200


def test_a_crop_off_the_photo_is_refused():
    with pytest.raises(Exception, match="entirely outside the photo"):
        cut(np.zeros((50, 50, 3), np.uint8), Crop(-500, -500, 100, 0.3), 32)
