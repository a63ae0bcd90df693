"""Loaders: every supported format gives the same images as the native one; bad files get clear errors."""

import argparse
import json
import pickle

import pytest
import torch

from fakes import fake_nvidia
from fakes import fake_tf
from fakes import ref_rosinality
from conftest import make_generator
from editgan_core.loaders.checkpoints import (CONFIG_NAME, WEIGHTS_NAME, convert, load_generator, save_native)
from editgan_core.errors import CheckpointError


def same_images(G1, G2, *, c_dim=0, psi=0.7):
    z = torch.randn(3, G1.z_dim, generator=torch.Generator().manual_seed(5))
    c = torch.eye(c_dim)[:3] if c_dim else None
    with torch.no_grad():
        a = G1(z, c, truncation_psi=psi)
        b = G2(z, c, truncation_psi=psi)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    return a


@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("overrides", [{}, {"c_dim": 3}, {"architecture": "orig"}, {"architecture": "resnet"},
                                       {"conv_clamp": None, "num_fp16_res": 2}, {"mapping_layers": 4}])
def test_nvidia_pickle_equals_native(tmp_path, flat, overrides):
    G = make_generator(**overrides)
    fake_nvidia.save_snapshot(G, tmp_path / "snap.pkl", flat_kwargs=flat)
    loaded = load_generator(tmp_path / "snap.pkl")
    assert loaded.format == "nvidia-pkl"
    assert loaded.config == G.cfg
    save_native(loaded.G, tmp_path / "native")
    native = load_generator(tmp_path / "native")
    assert native.format == "native"
    same_images(G, loaded.G, c_dim=G.cfg.c_dim)
    same_images(loaded.G, native.G, c_dim=G.cfg.c_dim)
    # the native copy is bit-exact
    for k, v in loaded.G.state_dict().items():
        assert torch.equal(v, native.G.state_dict()[k]), k


def test_nvidia_pickle_uses_g_ema_and_key(tmp_path):
    G_ema, G_train = make_generator(seed=1), make_generator(seed=2)
    fake_nvidia.save_snapshot(G_ema, tmp_path / "snap.pkl", G_train=G_train)
    same_images(load_generator(tmp_path / "snap.pkl").G, G_ema)
    same_images(load_generator(tmp_path / "snap.pkl", key="G").G, G_train)
    fake_nvidia.save_snapshot(G_ema, tmp_path / "no_ema.pkl", include_ema=False)
    with pytest.raises(CheckpointError, match="no G_ema.*key='G'"):
        load_generator(tmp_path / "no_ema.pkl")
    with pytest.raises(CheckpointError, match="no network 'D2'"):
        load_generator(tmp_path / "snap.pkl", key="D2")


def test_rosinality_matches_reference_and_nvidia_layout(tmp_path):
    sd = ref_rosinality.random_state_dict(32, 16, 3, 2, seed=3)
    latent_avg = torch.randn(16)
    torch.save({"g_ema": sd, "latent_avg": latent_avg}, tmp_path / "conv.pt")
    loaded = load_generator(tmp_path / "conv.pt")
    assert loaded.format == "rosinality-pt"
    cfg = loaded.config
    assert (cfg.img_resolution, cfg.w_dim, cfg.mapping_layers, cfg.conv_clamp) == (32, 16, 3, None)
    z = torch.randn(2, 16)
    with torch.no_grad():
        ref = ref_rosinality.images(sd, z)
        ours = loaded.G(z)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    torch.testing.assert_close(loaded.G.w_avg, latent_avg)
    # mapped into the NVIDIA layout (a real NVIDIA-style pickle) it gives the same image
    fake_nvidia.save_snapshot(loaded.G, tmp_path / "as_nvidia.pkl")
    same_images(loaded.G, load_generator(tmp_path / "as_nvidia.pkl").G)


def test_rosinality_train_format(tmp_path):
    sd = ref_rosinality.random_state_dict(16, 16, 2, 2, seed=4)
    ckpt = {"g": sd, "d": {"convs.0.0.weight": torch.zeros(1)}, "g_ema": sd, "g_optim": {}, "d_optim": {},
            "args": argparse.Namespace(size=16, lr=0.002, channel_multiplier=2), "ada_aug_p": 0.0}
    torch.save(ckpt, tmp_path / "train.pt")
    loaded = load_generator(tmp_path / "train.pt")
    assert loaded.format == "rosinality-pt"
    assert any("w_avg estimated" in n for n in loaded.notes)
    z = torch.randn(2, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded.G.synthesis(loaded.G.mapping_ws(z)),
                                   ref_rosinality.images(sd, z), rtol=1e-4, atol=1e-3)
    # the estimate is deterministic
    assert torch.equal(load_generator(tmp_path / "train.pt").G.w_avg, loaded.G.w_avg)


def test_tensorflow_pickle(tmp_path):
    G = make_generator(conv_clamp=None, w_avg_beta=0.995)
    fake_tf.save_tf_pickle(G, tmp_path / "tf.pkl")
    loaded = load_generator(tmp_path / "tf.pkl")
    assert loaded.format == "tf-pkl"
    assert loaded.config.channel_base == G.cfg.channel_base
    same_images(G, loaded.G)
    fake_tf.save_tf_pickle(G, tmp_path / "weird.pkl", some_future_option=3)
    with pytest.raises(CheckpointError, match="unknown settings"):
        load_generator(tmp_path / "weird.pkl")


def test_nvidia_state_dict_pt(tmp_path):
    G = make_generator(conv_clamp=None)
    torch.save(G.state_dict(), tmp_path / "sd.pt")
    loaded = load_generator(tmp_path / "sd.pt")
    assert loaded.format == "nvidia-state"
    same_images(G, loaded.G)


def test_converter_and_lone_safetensors(tmp_path):
    G = make_generator()
    fake_nvidia.save_snapshot(G, tmp_path / "snap.pkl")
    out = convert(tmp_path / "snap.pkl", tmp_path / "conv")
    meta = json.loads((out / CONFIG_NAME).read_text())
    assert meta["source"]["format"] == "nvidia-pkl" and len(meta["source"]["sha256"]) == 64
    (out / CONFIG_NAME).unlink()  # the config also lives in the safetensors metadata
    alone = tmp_path / "alone.safetensors"
    (out / WEIGHTS_NAME).rename(alone)
    same_images(G, load_generator(alone).G)


# -- bad input ---------------------------------------------------------------------------------------

def test_truncated_files(tmp_path):
    G = make_generator()
    fake_nvidia.save_snapshot(G, tmp_path / "snap.pkl")
    data = (tmp_path / "snap.pkl").read_bytes()
    (tmp_path / "cut.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_generator(tmp_path / "cut.pkl")
    torch.save({"g_ema": ref_rosinality.random_state_dict(16, 16, 2, 2)}, tmp_path / "r.pt")
    data = (tmp_path / "r.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_generator(tmp_path / "cut.pt")
    save_native(G, tmp_path / "nat")
    data = (tmp_path / "nat" / WEIGHTS_NAME).read_bytes()
    (tmp_path / "nat" / WEIGHTS_NAME).write_bytes(data[: len(data) - 64])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_generator(tmp_path / "nat")
    (tmp_path / "empty.pkl").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_generator(tmp_path / "empty.pkl")


def test_wrong_kind_of_file(tmp_path):
    (tmp_path / "photo.pkl").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    with pytest.raises(CheckpointError, match="PNG image"):
        load_generator(tmp_path / "photo.pkl")
    (tmp_path / "model.onnx").write_bytes(b"whatever")
    with pytest.raises(CheckpointError, match="unsupported file type '.onnx'"):
        load_generator(tmp_path / "model.onnx")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_generator(tmp_path / "missing.pkl")
    (tmp_path / "page.pt").write_text("<html>404</html>")
    with pytest.raises(CheckpointError, match="HTML"):
        load_generator(tmp_path / "page.pt")


def test_other_architectures_are_refused(tmp_path):
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(10, 512)}, tmp_path / "resnet.pt")
    with pytest.raises(CheckpointError, match="not a StyleGAN2 generator"):
        load_generator(tmp_path / "resnet.pt")
    # a StyleGAN3 generator: synthesis has an 'input' module
    with fake_nvidia.fake_modules():
        g3 = fake_nvidia.Net("Generator", modules={
            "synthesis": fake_nvidia.Net("SynthesisNetwork", modules={"input": fake_nvidia.Net("SynthesisInput")}),
            "mapping": fake_nvidia.Net("MappingNetwork")})
        with open(tmp_path / "sg3.pkl", "wb") as f:
            pickle.dump({"G_ema": g3}, f)
    with pytest.raises(CheckpointError, match="StyleGAN3"):
        load_generator(tmp_path / "sg3.pkl")
    with fake_nvidia.fake_modules():
        with open(tmp_path / "opts.pkl", "wb") as f:
            pickle.dump({"run_dir": "x", "kimg": 10}, f)
    with pytest.raises(CheckpointError, match="holds no networks"):
        load_generator(tmp_path / "opts.pkl")


def test_bad_native_config(tmp_path):
    G = make_generator()
    out = save_native(G, tmp_path / "nat")
    meta = json.loads((out / CONFIG_NAME).read_text())
    # the lone-file metadata wins, so test through a bare state dict plus a broken config.json
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in G.state_dict().items()}, str(out / WEIGHTS_NAME))
    meta["generator"]["img_resolution"] = 48
    (out / CONFIG_NAME).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="power of two"):
        load_generator(out)
    meta["generator"]["img_resolution"] = 32
    meta["format_version"] = 99
    (out / CONFIG_NAME).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="newer than this"):
        load_generator(out)
    meta["format_version"] = 1
    meta["generator"]["img_resolution"] = 64
    (out / CONFIG_NAME).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="missing"):
        load_generator(out)
