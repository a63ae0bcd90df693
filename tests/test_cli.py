"""The command line: generate matches NVIDIA's seed convention; info/convert/list; clear errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import fake_nvidia
from conftest import ROOT, make_generator
from editgan_core import images_to_uint8
from editgan_core.checkpoints import save_native
from editgan_core.cli import main, parse_seeds


def test_parse_seeds():
    assert parse_seeds("0-3,7, 10-11") == [0, 1, 2, 3, 7, 10, 11]
    for bad in ("", "a", "5-2", "1-x"):
        with pytest.raises(Exception):
            parse_seeds(bad)


def test_generate_matches_nvidia_seed_convention(tmp_path, capsys):
    G = make_generator()
    model = save_native(G, tmp_path / "model")
    rc = main(["generate", "--model", str(model), "--seeds", "0-2,9", "--truncation", "0.7",
               "--out", str(tmp_path / "out")])
    assert rc == 0
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["seed0000.png", "seed0001.png", "seed0002.png", "seed0009.png"]
    z = torch.from_numpy(np.random.RandomState(9).randn(1, 16)).float()
    with torch.no_grad():
        expected = images_to_uint8(G(z, truncation_psi=0.7, noise_mode="const"))[0].numpy()
    got = np.asarray(Image.open(tmp_path / "out" / "seed0009.png"))
    assert np.array_equal(got, expected)
    # deterministic: same again
    main(["generate", "--model", str(model), "--seeds", "9", "--truncation", "0.7", "--out", str(tmp_path / "b")])
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b" / "seed0009.png")), expected)


def test_conditional_needs_class(tmp_path, capsys):
    G = make_generator(c_dim=3)
    fake_nvidia.save_snapshot(G, tmp_path / "cond.pkl")
    with pytest.raises(SystemExit, match="--class"):
        main(["generate", "--model", str(tmp_path / "cond.pkl"), "--seeds", "1", "--out", str(tmp_path / "o")])
    assert main(["generate", "--model", str(tmp_path / "cond.pkl"), "--seeds", "1", "--class", "2",
                 "--out", str(tmp_path / "o")]) == 0


def test_info_convert_list(tmp_path, capsys):
    G = make_generator()
    fake_nvidia.save_snapshot(G, tmp_path / "snap.pkl")
    assert main(["info", str(tmp_path / "snap.pkl"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "nvidia-pkl" and info["num_ws"] == 8 and info["resolution"] == 32
    assert info["parameters"] == sum(p.numel() for p in G.parameters())
    assert main(["convert", str(tmp_path / "snap.pkl"), str(tmp_path / "conv")]) == 0
    assert (tmp_path / "conv" / "model.safetensors").exists()
    assert main(["info", str(tmp_path / "conv")]) == 0
    assert "format      native" in capsys.readouterr().out
    assert main(["list"]) == 0
    assert "ffhq-1024" in capsys.readouterr().out


def test_errors_exit_2_with_message(tmp_path, capsys):
    assert main(["info", "no-such-model"]) == 2
    assert "unknown model" in capsys.readouterr().err
    (tmp_path / "bad.pkl").write_bytes(b"\x80\x04garbage")
    assert main(["info", str(tmp_path / "bad.pkl")]) == 2
    assert "error:" in capsys.readouterr().err


def test_module_entry_point(tmp_path):
    out = subprocess.run([sys.executable, "-m", "editgan_core", "list"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "toyfaces" in out.stdout


def test_core_does_not_import_gradio():
    code = "import sys, editgan_core, editgan_core.cli, editgan_core.hub; print('gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
