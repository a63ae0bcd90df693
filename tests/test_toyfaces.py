"""ToyFaces renderer: deterministic, aligned masks, every part present, attributes act locally."""

import numpy as np
import pytest

from editgan_core.toyfaces import (ATTRIBUTES, CLASS_INDEX, CLASS_NAMES, NUM_CLASSES, PALETTE, colorize, decode,
                                   render, render_seed, sample_params)


def test_deterministic_and_varied():
    a_img, a_mask, a_p = render_seed(7, 64)
    b_img, b_mask, b_p = render_seed(7, 64)
    assert a_img.tobytes() == b_img.tobytes() and a_mask.tobytes() == b_mask.tobytes()
    assert np.array_equal(a_p.vector(), b_p.vector())
    c_img, _, c_p = render_seed(8, 64)
    assert np.abs(a_img.astype(int) - c_img).mean() > 5
    assert a_img.shape == (64, 64, 3) and a_img.dtype == np.uint8 and a_mask.shape == (64, 64)
    assert a_p.vector().shape == (len(ATTRIBUTES),) and ((0 <= a_p.vector()) & (a_p.vector() <= 1)).all()


def test_every_class_appears_in_a_small_sample():
    seen = np.zeros(NUM_CLASSES, bool)
    for s in range(12):
        seen[np.unique(render_seed(s, 64)[1])] = True
    assert seen.all(), [CLASS_NAMES[i] for i in np.flatnonzero(~seen)]


def test_mask_and_image_are_aligned():
    # With one sample per pixel, each unshaded part has exactly its material colour.
    img, mask, _ = render_seed(3, 64, supersample=1)
    whites = img[mask == CLASS_INDEX["eye_whites"]]
    assert len(whites) > 0 and (whites == whites[0]).all() and whites[0].min() > 230
    mouth = img[mask == CLASS_INDEX["mouth"]]
    assert len(mouth) > 0 and len(np.unique(mouth, axis=0)) <= 2   # interior + teeth
    # with anti-aliasing, the majority label still tells the colour: white eyes, dark pupils/irises
    img4, mask4, _ = render_seed(3, 64)
    bright = img4.astype(int).sum(-1)
    assert bright[mask4 == CLASS_INDEX["eye_whites"]].mean() > 3 * 190
    assert bright[mask4 == CLASS_INDEX["irises"]].mean() < bright[mask4 == CLASS_INDEX["eye_whites"]].mean() - 150


def test_attribute_changes_act_locally():
    _, m0, p = render_seed(11, 64, smile=0.1)
    _, m1, _ = render_seed(11, 64, smile=0.95)
    changed = m0 != m1
    assert changed.sum() > 3
    mouth_area = np.isin(m0, [CLASS_INDEX[c] for c in ("lips", "mouth")]) | np.isin(m1, [CLASS_INDEX[c] for c in ("lips", "mouth")])
    assert (changed & ~mouth_area).sum() == 0
    _, h0, _ = render_seed(11, 64, hair_length=0.0)
    _, h1, _ = render_seed(11, 64, hair_length=1.0)
    assert (h1 == CLASS_INDEX["hair"]).sum() > (h0 == CLASS_INDEX["hair"]).sum() + 50
    with pytest.raises(ValueError, match="unknown ToyFaces attributes"):
        render_seed(1, 64, smiles=1.0)


def test_resolutions():
    for res in (16, 128):
        img, mask, _ = render_seed(2, res)
        assert img.shape == (res, res, 3)
    with pytest.raises(ValueError, match="power of two"):
        render(sample_params(0), 100)


def test_palette_round_trip_and_nearest_colour():
    _, mask, _ = render_seed(4, 64)
    rgb = colorize(mask)
    labels, unknown = decode(rgb)
    assert np.array_equal(labels, mask) and unknown == 0
    noisy = rgb.astype(int)
    noisy[:5, :5] += 3                     # antialiased / shifted strokes
    labels, unknown = decode(np.clip(noisy, 0, 255).astype(np.uint8))
    assert np.array_equal(labels, mask) and unknown == 25
    alpha = np.full(mask.shape, 255, np.uint8)
    alpha[0, 0] = 0
    assert decode(rgb, alpha=alpha)[0][0, 0] == 0
    assert len({tuple(c) for c in PALETTE}) == NUM_CLASSES
    with pytest.raises(ValueError):
        colorize(np.full((2, 2), NUM_CLASSES))
