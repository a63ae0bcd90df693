"""Discriminator, GAN training (resume, export) and the ToyFaces judge, all on tiny settings."""

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from editgan_core.loaders.checkpoints import load_generator
from editgan_core.models.discriminator import Conv2dLayer, Discriminator, DiscriminatorConfig
from editgan_core.errors import CheckpointError
from editgan_core.models.perceptual import load_discriminator
from editgan_core.toyfaces import CLASS_INDEX, render_seed
from editgan_core.toyfaces import judge as J
from editgan_core.training.gan import TrainConfig, Trainer, export


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
    rng_before = torch.get_rng_state()
    tr = tiny_trainer(tmp_path)
    assert torch.equal(torch.get_rng_state(), rng_before)   # seeded weights, the global RNG left alone
    for _ in range(3):
        rec = tr.train_step()
    assert np.isfinite([rec["loss_G"], rec["loss_D"]]).all()
    assert not torch.equal(tr.G_ema.mapping.w_avg, torch.zeros_like(tr.G_ema.mapping.w_avg))
    path = tr.save()
    assert path == tmp_path / "ckpt.safetensors"
    a = tr.train_step()
    tr2 = tiny_trainer(tmp_path)
    tr2.load(path)
    b = tr2.train_step()
    assert a == b  # same data, same noise, same weights: the resumed run continues identically
    # the optimiser's state comes back entry for entry, in its order
    for p, q in zip(tr.opt_D.state_dict()["state"].values(), tr2.opt_D.state_dict()["state"].values()):
        assert list(p) == list(q) and all(torch.equal(p[k], q[k]) for k in p)
    export(tr2, tmp_path / "export", {})
    loaded = load_generator(tmp_path / "export")
    assert loaded.config.img_resolution == 16
    assert loaded.meta["training"]["steps"] == 4 and loaded.meta["source"]["by"] == "editgan_core.training.gan"
    D = load_discriminator(tmp_path / "export" / "discriminator.safetensors")
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(D(x), tr2.D(x))
    z = torch.randn(2, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded.G(z), tr2.G_ema(z))


def test_a_checkpoint_of_an_earlier_version_resumes_and_trainers_are_told_apart(tmp_path):
    """Run folders of earlier versions hold ckpt.pt (torch.save); it resumes exactly, read with weights_only."""
    from editgan_core.toyfaces import distill as Dst

    tr = tiny_trainer(tmp_path)
    tr.train_step()
    old = {"version": 1, "train_config": asdict(tr.cfg), "step": tr.step, "G": tr.G.state_dict(),
           "D": tr.D.state_dict(), "G_ema": tr.G_ema.state_dict(), "opt_G": tr.opt_G.state_dict(),
           "opt_D": tr.opt_D.state_dict(), "rng": tr.rng.bit_generator.state, "gen": tr.gen.get_state(),
           "log": [{"step": 1}]}
    torch.save(old, tmp_path / "ckpt.pt")
    a = tr.train_step()
    tr2 = tiny_trainer(tmp_path)
    tr2.load(tmp_path)                      # a run folder: ckpt.safetensors, else ckpt.pt
    assert tr2.step == 1 and tr2.log == [{"step": 1}]
    assert tr2.train_step() == a
    # a distillation checkpoint is not a GAN checkpoint
    cfg = Dst.DistillConfig(res=16, z_dim=32, channel_base=64, channel_max=16, batch=4, data_size=8, val_size=2)
    d = Dst.Distiller(cfg, torch.randn(10, 32), np.zeros((10, 16, 16, 3), np.uint8))
    d.save(tmp_path / "distill")
    with pytest.raises(CheckpointError, match="editgan_core.toyfaces.distill, not of editgan_core.training.gan"):
        tiny_trainer(tmp_path).load(tmp_path / "distill" / "ckpt.safetensors")


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


def test_judge_learns_and_round_trips(tmp_path):
    from editgan_core.toyfaces.dataset import SEEDS, render_set

    logs = []
    rng_before = torch.get_rng_state()
    model = J.train(res=32, n_train=128, steps=200, batch=8, width=8, lr=5e-3, workers=1, log=logs.append,
                    log_every=25)
    assert torch.equal(torch.get_rng_state(), rng_before)    # seeded with a forked RNG, not the global one
    # It learned: the segmentation loss fell to well under half ...
    losses = [json.loads(line)["loss_seg"] for line in logs if line.startswith("{")]
    assert len(losses) == 8 and losses[-1] < 0.5 * losses[0], losses
    # ... and on held-out renders (evaluation seeds, never trained on) it segments far better than an untrained
    # judge and than the best constant answer (every pixel the most frequent class).
    metrics = J.evaluate(model, n=32, workers=1)
    torch.manual_seed(0)
    untrained = J.evaluate(J.Judge(J.JudgeConfig(res=32, width=8)).eval(), n=32, workers=1)
    masks = render_set(range(SEEDS["eval"], SEEDS["eval"] + 32), 32, workers=1)[1]
    majority = np.full_like(masks, np.bincount(masks.ravel()).argmax())
    chance_miou = float(np.nanmean(J.iou_from_confusion(J.confusion(majority, masks))))
    assert metrics["miou"] > 0.4 and metrics["miou"] > 5 * chance_miou and untrained["miou"] < 0.1, \
        (metrics["miou"], chance_miou, untrained["miou"])
    assert metrics["pixel_accuracy"] > 0.85 > untrained["pixel_accuracy"]
    assert metrics["iou"]["skin"] > 0.7 and metrics["iou"]["hair"] > 0.5, metrics["iou"]
    assert metrics["valid_face_rate_renders"] > 0.8
    # Round trip: float32 exactly, float16 (the shipped form) to the same labels.
    path = tmp_path / "judge.safetensors"
    J.save_judge(model, path, {"miou": metrics["miou"]}, half=False)
    again = J.load_judge(path)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], again(x)[0])
    J.save_judge(model, tmp_path / "half.safetensors")
    assert (tmp_path / "half.safetensors").stat().st_size < 0.6 * path.stat().st_size
    with torch.no_grad():
        agree = (J.load_judge(tmp_path / "half.safetensors")(x)[0].argmax(1) == model(x)[0].argmax(1)).float().mean()
    assert agree > 0.98
    # Another kind of file is refused by name; the shipped judge (older metadata key) still loads.
    D = Discriminator(DiscriminatorConfig(img_resolution=16, channel_base=128, channel_max=16))
    from editgan_core.training.engine import export_discriminator
    export_discriminator(D, tmp_path)
    with pytest.raises(CheckpointError, match="discriminator.safetensors is not a ToyFaces judge: it is a discrim"):
        J.load_judge(tmp_path / "discriminator.safetensors")
    shipped = J.load_judge(Path(__file__).resolve().parents[1] / "checkpoints" / "toyfaces" / "judge.safetensors")
    assert shipped.cfg.res == 64
