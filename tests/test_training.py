"""Discriminator, GAN training (resume, export) and the ToyFaces judge, all on tiny settings."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from editgan_core.checkpoints import load_generator
from editgan_core.discriminator import Conv2dLayer, Discriminator, DiscriminatorConfig
from editgan_core.toyfaces import CLASS_INDEX, render_seed
from editgan_core.toyfaces import judge as J
from editgan_core.train_gan import TrainConfig, Trainer, export


def test_downsampling_conv_matches_reference():
    torch.manual_seed(0)
    layer = Conv2dLayer(4, 5, 3, down=2, bias=False, act="linear")
    x = torch.randn(2, 4, 8, 8)
    f = torch.tensor([1.0, 3.0, 3.0, 1.0])
    f2 = (torch.outer(f, f) / 64)[None, None].repeat(4, 1, 1, 1)
    ref = F.conv2d(F.conv2d(F.pad(x, [2, 2, 2, 2]), f2, groups=4), layer.weight * layer.weight_gain, stride=2)
    torch.testing.assert_close(layer(x), ref, rtol=1e-5, atol=1e-5)
    skip = Conv2dLayer(4, 5, 1, down=2, bias=False, act="linear")
    ref = F.conv2d(F.conv2d(F.pad(x, [1, 1, 1, 1]), f2, groups=4)[:, :, ::2, ::2], skip.weight * skip.weight_gain)
    torch.testing.assert_close(skip(x), ref, rtol=1e-5, atol=1e-5)


def test_discriminator_shapes_and_grad():
    D = Discriminator(DiscriminatorConfig(img_resolution=32, channel_base=256, channel_max=32))
    x = torch.randn(4, 3, 32, 32, requires_grad=True)
    out, feats = D(x, return_features=True)
    assert out.shape == (4, 1) and [f.shape[-1] for f in feats] == [16, 8, 4]
    out.sum().backward()
    assert x.grad.abs().sum() > 0


def tiny_trainer(tmp_path: Path) -> Trainer:
    data = np.stack([render_seed(s, 16)[0] for s in range(8)])
    cfg = TrainConfig(res=16, z_dim=16, channel_base=128, channel_max=16, mapping_layers=2, batch=4, r1_interval=2)
    return Trainer(cfg, tmp_path, data, torch.device("cpu"))


def test_training_steps_resume_exactly_and_export(tmp_path):
    tr = tiny_trainer(tmp_path)
    for _ in range(3):
        rec = tr.train_step()
    assert np.isfinite([rec["loss_G"], rec["loss_D"]]).all()
    assert not torch.equal(tr.G_ema.mapping.w_avg, torch.zeros_like(tr.G_ema.mapping.w_avg))
    tr.save()
    a = tr.train_step()
    tr2 = tiny_trainer(tmp_path)
    tr2.load(tmp_path / "ckpt.pt")
    b = tr2.train_step()
    assert a == b  # same data, same noise, same weights: the resumed run continues identically
    export(tr2, tmp_path / "export", {})
    loaded = load_generator(tmp_path / "export")
    assert loaded.config.img_resolution == 16
    assert (tmp_path / "export" / "discriminator.safetensors").exists()
    z = torch.randn(2, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded.G(z), tr2.G_ema(z))


def test_validity_check_and_frechet():
    for s in range(3):
        ok, why = J.is_valid_face(render_seed(20_000_000 + s, 64)[1])
        assert ok, why
    blank = np.zeros((64, 64), np.uint8)
    ok, why = J.is_valid_face(blank)
    assert not ok and "no nose" in why
    one_eye = render_seed(20_000_001, 64)[1].copy()
    one_eye[:, :32][np.isin(one_eye[:, :32], [CLASS_INDEX["eye_whites"], CLASS_INDEX["irises"]])] = CLASS_INDEX["skin"]
    assert "1 eyes" in J.is_valid_face(one_eye)[1]
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 8))
    assert abs(J.frechet_distance(a, a)) < 1e-6
    assert J.frechet_distance(a, a + 1.0) == pytest.approx(8.0, rel=0.05)


def test_judge_trains_and_round_trips(tmp_path):
    logs = []
    model = J.train(res=32, n_train=64, steps=30, batch=8, width=8, workers=1, log=logs.append)
    assert len(logs) >= 1
    path = tmp_path / "judge.safetensors"
    J.save_judge(model, path, {"miou": 0.5}, half=False)
    again = J.load_judge(path)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], again(x)[0])
    J.save_judge(model, tmp_path / "half.safetensors")   # shipped form: float16 weights
    assert (tmp_path / "half.safetensors").stat().st_size < 0.6 * path.stat().st_size
    with torch.no_grad():
        agree = (J.load_judge(tmp_path / "half.safetensors")(x)[0].argmax(1) == model(x)[0].argmax(1)).float().mean()
    assert agree > 0.98
    metrics = J.evaluate(again, n=16, workers=1)
    assert 0 <= metrics["miou"] <= 1 and set(metrics["iou"]) >= {"skin", "hair", "irises"}
    assert metrics["valid_face_rate_renders"] > 0.8
