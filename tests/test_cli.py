"""The command line: generate matches NVIDIA's seed convention; info/convert/list; clear errors."""

import json
import subprocess
import sys

import fake_nvidia
import numpy as np
import pytest
import torch
from conftest import ROOT, make_generator
from PIL import Image

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


def test_embed_train_branch_segment_pipeline(tmp_path, capsys):
    """Folder of image/mask pairs -> branch; image -> latent + reconstruction; latent -> palette mask."""
    from editgan_core.toyfaces.palette import PALETTE

    G = make_generator()
    model = save_native(G, tmp_path / "model")
    folder = tmp_path / "annotated"
    folder.mkdir()
    with torch.no_grad():
        imgs = G.synthesis(G.mapping_ws(torch.randn(4, 16, generator=torch.Generator().manual_seed(1))))
    for i, img in enumerate(imgs):
        arr = images_to_uint8(img[None])[0].numpy()
        Image.fromarray(arr).resize((48, 40)).save(folder / f"face{i}.png")       # not square: cropped
        labels = img.argmax(0).numpy().astype(np.uint8)                            # classes 0..2
        mask = Image.fromarray(PALETTE[labels]).resize((48, 40), Image.NEAREST)
        mask.save(folder / f"face{i}_mask.png")
    (folder / "lonely.png").write_bytes((folder / "face0.png").read_bytes())      # no mask: skipped, said
    branch = tmp_path / "branch.safetensors"
    rc = main(["train-branch", str(folder), "--model", str(model), "--out", str(branch), "--steps", "3",
               "--max-steps", "30", "--encoder", "none"])
    err = capsys.readouterr().err
    assert rc == 0 and branch.is_file()
    assert "lonely.png: no mask" in err
    rc = main(["embed", str(folder / "face1.png"), "--model", str(model), "--out", str(tmp_path / "emb"),
               "--steps", "5"])
    out = capsys.readouterr()
    assert rc == 0 and "center-cropped 48x40 to 40x40" in out.err
    latent = tmp_path / "emb" / "face1.latent.safetensors"
    assert latent.is_file() and (tmp_path / "emb" / "face1_recon.png").is_file()
    rc = main(["segment", str(latent), "--model", str(model), "--branch", str(branch),
               "--out", str(tmp_path / "mask.png")])
    assert rc == 0
    mask = np.asarray(Image.open(tmp_path / "mask.png"))
    assert mask.shape == (32, 32, 3)
    assert {tuple(c) for c in mask.reshape(-1, 3)} <= {tuple(c) for c in PALETTE.tolist()}
    # a latent of another model is refused with a clear message
    other = save_native(make_generator(seed=3, channel_max=16), tmp_path / "other")
    rc = main(["segment", str(latent), "--model", str(other), "--out", str(tmp_path / "m2.png"),
               "--branch", str(branch)])
    assert rc == 2 and "does not fit" in capsys.readouterr().err


def test_edit_then_apply_over_a_folder(tmp_path, capsys):
    from editgan_core.latents import save_latent
    from editgan_core.masks import encode_mask
    from editgan_core.segbranch import BranchConfig, SegBranch, save_branch

    G = make_generator()
    model = save_native(G, tmp_path / "model")
    from editgan_core.assets import model_identity
    from editgan_core.hub import load_model

    ident = model_identity(load_model(str(model)))
    palette = [(0, 0, 0), (255, 0, 0), (0, 0, 255)]
    torch.manual_seed(0)
    branch = SegBranch(BranchConfig(G.feature_channels(), G.feature_resolutions(), 32, ["bg", "a", "b"], palette,
                                    members=2, hidden=(8, 4), generator=ident)).eval()
    save_branch(branch, model / "branch.safetensors")
    lat = tmp_path / "lat"
    for i in range(3):
        save_latent(lat / f"img{i}.latent.safetensors",
                    G.mapping_ws(torch.randn(1, 16, generator=torch.Generator().manual_seed(i))), ident)
    with torch.no_grad():
        _, feats = G.synthesis(G.mapping_ws(torch.randn(1, 16, generator=torch.Generator().manual_seed(0))),
                               return_features=True)
    labels = branch.predict(feats)[0].numpy()
    labels[10:20, 10:20] = 2
    Image.fromarray(encode_mask(labels, palette)).save(tmp_path / "edited.png")
    rc = main(["edit", str(lat / "img0.latent.safetensors"), str(tmp_path / "edited.png"), "--model", str(model),
               "--name", "blue box", "--steps", "5", "--out", str(tmp_path / "vectors")])
    assert rc == 0, capsys.readouterr().err
    vec = tmp_path / "vectors" / "blue box.safetensors"
    assert vec.is_file() and (tmp_path / "vectors" / "blue box_edited.png").is_file()
    rc = main(["apply", f"{vec}:2", "--inputs", str(lat), "--model", str(model), "--out", str(tmp_path / "applied")])
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "applied").iterdir()) == ["img0.png", "img1.png", "img2.png"]
    other = save_native(make_generator(seed=4, channel_max=16), tmp_path / "other")
    rc = main(["apply", str(vec), "--inputs", str(lat), "--model", str(other), "--out", str(tmp_path / "x")])
    assert rc == 2 and "belongs to another model" in capsys.readouterr().err
