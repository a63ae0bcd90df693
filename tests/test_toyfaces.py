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
    ids = [CLASS_INDEX[c] for c in ("lips", "mouth")]
    mouth_area = np.isin(m0, ids) | np.isin(m1, ids)
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


def test_gaussian_parameterisation_matches_the_sampler():
    """Faces from Gaussian latents have the renderer's own attribute distributions (the default model's prior)."""
    from editgan_core.toyfaces.render import ATTRIBUTES, params_from_gaussian, sample_params

    rng = np.random.default_rng(0)
    a = np.stack([params_from_gaussian(rng.standard_normal(25)).vector() for _ in range(3000)])
    b = np.stack([sample_params(s).vector() for s in range(3000)])
    for i, name in enumerate(ATTRIBUTES):
        assert abs(a[:, i].mean() - b[:, i].mean()) < 0.03, name
        assert abs(a[:, i].std() - b[:, i].std()) < 0.03, name
    styles = ATTRIBUTES.index("hair_style")
    assert set(np.round(a[:, styles] * 3).astype(int)) == {0, 1, 2, 3}
    dyed = ATTRIBUTES.index("hair_hue")
    assert abs((a[:, dyed] > 0.3).mean() - 0.15) < 0.03
    assert params_from_gaussian(np.zeros(25)).vector()[ATTRIBUTES.index("skin_tone")] == pytest.approx(0.5)


def test_distillation_targets_are_a_function_of_the_latent(tmp_path):
    """Same z -> same face; training on a few latents lowers the loss; resume continues exactly."""
    import torch

    from editgan_core.toyfaces import distill as D

    z = torch.randn(3, 32, generator=torch.Generator().manual_seed(0))
    a, _ = D.render_latents(z, 16, workers=1)
    b, _ = D.render_latents(z.clone(), 16, workers=1)
    assert np.array_equal(a, b) and not np.array_equal(a[0], a[1])
    # only the direction of z matters (the mapping normalises it)
    assert np.allclose(D.latent_params(z)[0].vector(), D.latent_params(z * 3)[0].vector(), atol=1e-6)
    cfg = D.DistillConfig(res=16, z_dim=32, channel_base=64, channel_max=16, batch=4, data_size=12, val_size=4,
                          kimg=0.2)
    zz, imgs, masks = D.make_dataset(cfg, tmp_path, workers=1)
    assert masks is None
    d = D.Distiller(cfg, zz, imgs)
    first = d.train_step()["loss"]
    for _ in range(30):
        last = d.train_step()["loss"]
    assert last < first
    assert d.save(tmp_path) == tmp_path / "ckpt.safetensors"
    nxt = d.train_step()["loss"]
    d2 = D.Distiller(cfg, zz, imgs)
    d2.load(tmp_path / "ckpt.safetensors")
    assert d2.train_step()["loss"] == nxt


def test_distillation_part_weighting_uses_the_masks(tmp_path):
    import dataclasses

    import torch

    from editgan_core.toyfaces import distill as D
    from editgan_core.toyfaces.palette import CLASS_INDEX

    cfg = D.DistillConfig(res=16, z_dim=32, channel_base=64, channel_max=16, batch=4, data_size=8, val_size=2,
                          part_weight=4.0)
    z, imgs, masks = D.make_dataset(cfg, tmp_path, workers=1)
    assert masks.shape == (10, 16, 16) and np.isin(masks, [CLASS_INDEX["irises"], CLASS_INDEX["mouth"]]).any()
    fake, real = torch.zeros(1, 3, 16, 16), torch.ones(1, 3, 16, 16)
    w = torch.ones(1, 1, 16, 16)
    w[..., :8, :] = 5
    assert D.regression_loss(fake, real, 0.0, w) == D.regression_loss(fake, real, 0.0)   # normalised weights
    d = D.Distiller(cfg, z, imgs, masks)
    assert np.isfinite(d.train_step()["loss"])
    assert dataclasses.asdict(d.cfg)["part_weight"] == 4.0


def test_seed_ranges_are_disjoint():
    """Every use of ToyFaces seeds (judge, benchmarks, annotated renders, encoder, parser) keeps to its own range:
    starts SEED_SPAN apart, and every offset the code adds to a start stays well inside the span."""
    import re
    from pathlib import Path

    from editgan_core.toyfaces.dataset import SEED_SPAN, SEEDS
    from editgan_core.toyfaces.parser import VAL_OFFSET, ParserConfig

    assert {"gan_train", "judge_train", "eval", "annotated", "encoder_train", "parser"} <= set(SEEDS)
    starts = sorted(SEEDS.values())
    assert all(b - a >= SEED_SPAN for a, b in zip(starts, starts[1:])), SEEDS
    cfg = ParserConfig()
    assert cfg.n_train <= VAL_OFFSET and VAL_OFFSET + cfg.n_val < SEED_SPAN
    root = Path(__file__).resolve().parents[1]
    offsets = []
    for f in sorted(root.glob("editgan_core/**/*.py")) + sorted(root.glob("bench/*.py")):
        text = f.read_text(encoding="utf-8")
        for name, off in re.findall(r"SEEDS\[['\"](\w+)['\"]\]\s*\+\s*([0-9_]+)", text):
            assert name in SEEDS, f"{f.name}: unknown seed range {name}"
            offsets.append((f.name, name, int(off)))
        if f.name == "parser.py" and f.parent.name == "bench":
            for m in re.findall(r"^ASSISTED_OFFSET = ([0-9_]+)", text, re.M):
                offsets.append((f.name, "annotated", int(m)))
    assert any(o[1] == "eval" and o[2] == 500_000 for o in offsets)   # the scan finds the benchmarks' offsets
    for where, name, off in offsets:   # room for 100,000 renders after the largest offset
        assert off + 100_000 < SEED_SPAN, (where, name, off)


def test_shipped_parser_loads_with_transformers_and_labels_held_out_renders():
    """checkpoints/toyfaces/parser is a plain save_pretrained folder: the Auto classes load it (float32), its labels
    are the ToyFaces classes in ToyFaces order, and it labels held-out renders close to their exact masks."""
    pytest.importorskip("transformers")
    from pathlib import Path

    import torch
    import torch.nn.functional as F
    from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

    from editgan_core.pipeline.fewshot import miou
    from editgan_core.toyfaces.dataset import SEEDS, render_set

    folder = Path(__file__).resolve().parents[1] / "checkpoints" / "toyfaces" / "parser"
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {p.name for p in folder.iterdir()}
    assert (folder / "model.safetensors").stat().st_size < 5_000_000
    model = AutoModelForSemanticSegmentation.from_pretrained(str(folder)).eval()
    processor = AutoImageProcessor.from_pretrained(str(folder))
    assert [model.config.id2label[i] for i in range(model.config.num_labels)] == CLASS_NAMES
    assert next(model.parameters()).dtype == torch.float32
    imgs, masks, _ = render_set(range(SEEDS["eval"], SEEDS["eval"] + 4), 64, workers=1)
    with torch.no_grad():
        px = processor(images=list(imgs), return_tensors="pt")["pixel_values"]
        logits = F.interpolate(model(pixel_values=px).logits, size=(64, 64), mode="bilinear", align_corners=False)
    pred = logits.argmax(1).numpy()
    score, _ = miou(pred, masks, NUM_CLASSES)
    assert score > 0.8, score
