"""The command line: each command gives what the pipeline function it wraps gives (content, not only files), every
error exits 2 with a message that names the file, a failed command leaves no empty folder, vectors by bare name,
`apply --inputs DIR` skips the project's own side files, --threads, defaults from settings."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT, make_generator
from fakes import fake_nvidia
from PIL import Image

from editgan_core import images_to_uint8
from editgan_core.commands import build_parser, main
from editgan_core.commands.common import parse_seeds
from editgan_core.commands.edits import collect_inputs
from editgan_core.loaders.checkpoints import save_native
from editgan_core.loaders.hub import load_model
from editgan_core.models.generator import generate
from editgan_core.models.segbranch import BranchConfig, SegBranch, load_branch, save_branch, segment
from editgan_core.storage.identity import model_identity
from editgan_core.storage.latents import load_latent, save_latent
from editgan_core.storage.masks import encode_mask
from editgan_core.storage.vectors import EditVector, load_vector, save_vector

PALETTE3 = [(0, 0, 0), (255, 0, 0), (0, 0, 255)]


def png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def synth_u8(G, ws) -> np.ndarray:
    with torch.no_grad():
        return images_to_uint8(G.synthesis(ws.float()))[0].numpy()


def ws_of(G, seed: int) -> torch.Tensor:
    return G.mapping_ws(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(seed)))


@pytest.fixture
def home(tmp_path, monkeypatch):
    """The user's vector library goes to a temp folder."""
    monkeypatch.setenv("EDITGAN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def editable(tmp_path):
    """A tiny native model with a random 3-class branch beside it: (G, model folder, identity, branch)."""
    G = make_generator()
    model = save_native(G, tmp_path / "model")
    ident = model_identity(load_model(str(model)))
    torch.manual_seed(0)
    branch = SegBranch(BranchConfig(G.feature_channels(), G.feature_resolutions(), 32, ["bg", "a", "b"], PALETTE3,
                                    members=2, hidden=(8, 4), generator=ident)).eval()
    save_branch(branch, model / "branch.safetensors")
    return G, model, ident, branch


def a_vector(G, ident, name: str, seed: int = 7) -> EditVector:
    delta = 0.5 * torch.randn(G.num_ws, G.w_dim, generator=torch.Generator().manual_seed(seed))
    return EditVector(name=name, delta=delta, generator=ident, classes=["a"])


# ----------------------------------------------------------------------------------------------------------
# generate, info, convert, list


def test_parse_seeds():
    assert parse_seeds("0-3,7, 10-11") == [0, 1, 2, 3, 7, 10, 11]
    for bad in ("", "a", "5-2", "1-x", str(2 ** 32)):
        with pytest.raises(Exception):
            parse_seeds(bad)


def test_generate_writes_what_generate_gives_with_nvidia_seeds(tmp_path, capsys):
    G = make_generator()
    model = save_native(G, tmp_path / "model")
    assert main(["generate", "--model", str(model), "--seeds", "0-2,9", "--truncation", "0.7",
                 "--out", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "seed0000.png", "seed0001.png", "seed0002.png", "seed0009.png"]
    for seed in (0, 1, 2, 9):
        assert np.array_equal(png(tmp_path / "out" / f"seed{seed:04d}.png"),
                              generate(G, [seed], truncation_psi=0.7).uint8()[0].numpy())
    # ... which is NVIDIA's generate.py: z from RandomState(seed), const noise
    z = torch.from_numpy(np.random.RandomState(9).randn(1, 16)).float()
    with torch.no_grad():
        nvidia = images_to_uint8(G(z, truncation_psi=0.7, noise_mode="const"))[0].numpy()
    assert np.array_equal(png(tmp_path / "out" / "seed0009.png"), nvidia)
    # no --truncation: generate()'s default (no truncation), not the app's psi
    assert main(["generate", "--model", str(model), "--seeds", "3", "--out", str(tmp_path / "b")]) == 0
    assert np.array_equal(png(tmp_path / "b" / "seed0003.png"), generate(G, [3]).uint8()[0].numpy())
    assert not np.array_equal(png(tmp_path / "b" / "seed0003.png"),
                              generate(G, [3], truncation_psi=0.7).uint8()[0].numpy())


def test_conditional_needs_class_exit_2_and_no_folder(tmp_path, capsys):
    G = make_generator(c_dim=3)
    fake_nvidia.save_snapshot(G, tmp_path / "cond.pkl")
    out = tmp_path / "o" / "deeper"
    assert main(["generate", "--model", str(tmp_path / "cond.pkl"), "--seeds", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--class" in err and "cond.pkl" in err
    assert not (tmp_path / "o").exists()
    assert main(["generate", "--model", str(tmp_path / "cond.pkl"), "--seeds", "1", "--class", "5",
                 "--out", str(out)]) == 2
    assert "0 to 2" in capsys.readouterr().err and not (tmp_path / "o").exists()
    assert main(["generate", "--model", str(tmp_path / "cond.pkl"), "--seeds", "1", "--class", "2",
                 "--out", str(out)]) == 0
    G2 = load_model(str(tmp_path / "cond.pkl")).G
    assert np.array_equal(png(out / "seed0001.png"), generate(G2, [1], class_idx=2).uint8()[0].numpy())


def test_info_convert_list(tmp_path, capsys):
    G = make_generator()
    fake_nvidia.save_snapshot(G, tmp_path / "snap.pkl")
    assert main(["info", str(tmp_path / "snap.pkl"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "nvidia-pkl" and info["num_ws"] == 8 and info["resolution"] == 32
    assert info["parameters"] == sum(p.numel() for p in G.parameters())
    assert main(["convert", str(tmp_path / "snap.pkl"), str(tmp_path / "conv")]) == 0
    G2 = load_model(str(tmp_path / "conv")).G           # the converted model renders the same pictures
    assert torch.equal(generate(G2, [4, 5]).images, generate(G, [4, 5]).images)
    assert main(["info", str(tmp_path / "conv")]) == 0
    assert "format      native" in capsys.readouterr().out
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "ffhq-1024" in out and "hf://hysts/StyleGAN2/models/stylegan2-ffhq-1024x1024.pkl" in out
    assert str(ROOT / "checkpoints" / "toyfaces") in out     # where the built-in model really is


def test_errors_exit_2_with_message(tmp_path, capsys):
    assert main(["info", "no-such-model"]) == 2
    assert "unknown model" in capsys.readouterr().err
    (tmp_path / "bad.pkl").write_bytes(b"\x80\x04garbage")
    assert main(["info", str(tmp_path / "bad.pkl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "bad.pkl" in err
    assert main(["convert", str(tmp_path / "bad.pkl"), str(tmp_path / "conv" / "x")]) == 2
    assert "bad.pkl" in capsys.readouterr().err and not (tmp_path / "conv").exists()
    with pytest.raises(SystemExit) as e:     # argparse's own errors exit 2 as well
        main(["generate", "--seeds", "5-2"])
    assert e.value.code == 2


def test_module_entry_point_and_version(tmp_path):
    out = subprocess.run([sys.executable, "-m", "editgan_core", "list"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "toyfaces" in out.stdout
    out = subprocess.run([sys.executable, "-m", "editgan_core", "--version"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    import editgan_core

    assert out.returncode == 0 and editgan_core.__version__ in out.stdout
    out = subprocess.run([sys.executable, "-m", "editgan_core", "info", str(tmp_path / "nothing.pkl")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.startswith("error:") and "nothing.pkl" in out.stderr


def test_core_does_not_import_gradio():
    code = "import sys, editgan_core, editgan_core.commands, editgan_core.loaders.hub; print('gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


# ----------------------------------------------------------------------------------------------------------
# --threads, defaults


HEAVY = ("generate", "embed", "segment", "train-branch", "edit", "apply")


def _subparsers():
    p = build_parser()
    action = next(a for a in p._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


def test_threads_on_every_heavy_command(tmp_path, capsys):
    subs = _subparsers()
    for name in HEAVY:
        opts = {o for a in subs[name]._actions for o in a.option_strings}
        assert {"--threads", "--device", "--model"} <= opts, name
    G = make_generator()
    model = save_native(G, tmp_path / "model")
    before = torch.get_num_threads()
    try:
        assert main(["generate", "--model", str(model), "--seeds", "1", "--threads", "1",
                     "--out", str(tmp_path / "o")]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(SystemExit) as e:
        main(["generate", "--threads", "0"])
    assert e.value.code == 2


def test_defaults_and_choices_come_from_settings():
    from editgan_core.settings import BRANCH, EDIT, EMBED, REFINE

    subs = _subparsers()

    def default(cmd, dest):
        return next(a for a in subs[cmd]._actions if a.dest == dest)

    assert default("embed", "steps").default == EMBED.steps
    assert default("segment", "steps").default == EMBED.steps
    assert default("apply", "steps").default == EMBED.steps
    assert default("edit", "steps").default == EDIT.steps
    assert default("train-branch", "steps").default == BRANCH.embed_steps
    assert default("train-branch", "max_steps").default == BRANCH.max_steps
    assert tuple(default("apply", "refine").choices) == tuple(REFINE.choices)
    assert default("apply", "refine").default == REFINE.choices[0]


# ----------------------------------------------------------------------------------------------------------
# embed, train-branch, segment


def test_embed_train_branch_segment_pipeline(tmp_path, capsys):
    """Folder of image/mask pairs -> branch; image -> latent + what the model saw + reconstruction; latent -> mask."""
    from editgan_core.storage.imageio import prepare_image
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
    branch_path = tmp_path / "branch.safetensors"
    rc = main(["train-branch", str(folder), "--model", str(model), "--out", str(branch_path), "--steps", "3",
               "--max-steps", "30", "--encoder", "none"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "lonely.png: no mask" in err
    branch = load_branch(branch_path, expect_generator=model_identity(load_model(str(model))))
    assert branch.cfg.num_classes == len(PALETTE)
    assert branch.cfg.generator["sha256"] == load_model(str(model)).sha256

    rc = main(["embed", str(folder / "face1.png"), "--model", str(model), "--out", str(tmp_path / "emb"),
               "--steps", "5"])
    out = capsys.readouterr()
    assert rc == 0 and "center-cropped 48x40 to 40x40" in out.err
    latent = tmp_path / "emb" / "face1.latent.safetensors"
    ws, meta = load_latent(latent)
    assert meta["source"] == "face1.png" and meta["steps"] == 5
    assert np.array_equal(png(tmp_path / "emb" / "face1_recon.png"), synth_u8(G, ws))     # recon = G(latent)
    assert np.array_equal(png(tmp_path / "emb" / "face1_input.png"), prepare_image(folder / "face1.png", 32).array)

    rc = main(["segment", str(latent), "--model", str(model), "--branch", str(branch_path),
               "--out", str(tmp_path / "mask.png")])
    assert rc == 0
    assert np.array_equal(png(tmp_path / "mask.png"), encode_mask(segment(G, branch, ws)[0], branch.cfg.palette))

    # a branch of another model is refused, naming the file; no mask and no folder are left
    other = save_native(make_generator(seed=3, channel_max=16), tmp_path / "other")
    rc = main(["segment", str(latent), "--model", str(other), "--out", str(tmp_path / "m2" / "mask.png"),
               "--branch", str(branch_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "branch.safetensors belongs to another model" in err
    assert not (tmp_path / "m2").exists()


def test_segment_default_output_and_missing_branch(tmp_path, capsys, monkeypatch, editable):
    G, model, ident, branch = editable
    ws = ws_of(G, 2)
    save_latent(tmp_path / "lat" / "pic.latent.safetensors", ws, ident)
    monkeypatch.chdir(tmp_path)
    assert main(["segment", "lat/pic.latent.safetensors", "--model", str(model)]) == 0
    assert np.array_equal(png(tmp_path / "pic_mask.png"), encode_mask(segment(G, branch, ws)[0], PALETTE3))
    other = load_model(str(save_native(make_generator(seed=3, channel_max=16), tmp_path / "other")))
    save_latent(tmp_path / "lat" / "foreign.latent.safetensors", ws, model_identity(other))
    assert main(["segment", "lat/foreign.latent.safetensors", "--model", str(model), "--out", "y/m.png"]) == 2
    err = capsys.readouterr().err
    assert "foreign.latent.safetensors belongs to another model" in err and not (tmp_path / "y").exists()
    bare = save_native(G, tmp_path / "bare")              # same weights, no branch beside it
    assert main(["segment", "lat/pic.latent.safetensors", "--model", str(bare), "--out", "x/m.png"]) == 2
    err = capsys.readouterr().err
    assert "no segmentation branch" in err and "--branch" in err and not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------------------------------------
# edit, apply


def test_edit_writes_the_vector_of_the_edit_then_apply_replays_it(tmp_path, capsys, home, editable):
    G, model, ident, branch = editable
    lat = tmp_path / "lat"
    for i in range(3):
        save_latent(lat / f"img{i}.latent.safetensors", ws_of(G, i), ident)
    labels = segment(G, branch, ws_of(G, 0))[0]
    old = labels.copy()
    labels[10:20, 10:20] = 2
    Image.fromarray(encode_mask(labels, PALETTE3)).save(tmp_path / "edited.png")
    rc = main(["edit", str(lat / "img0.latent.safetensors"), str(tmp_path / "edited.png"), "--model", str(model),
               "--name", "blue box", "--steps", "5", "--out", str(tmp_path / "vectors")])
    assert rc == 0, capsys.readouterr().err
    vec_path = tmp_path / "vectors" / "blue_box.safetensors"           # no spaces in file names
    vec = load_vector(vec_path, expect_generator=ident)
    assert vec.name == "blue box" and vec.generator["sha256"] == ident["sha256"]
    assert json.loads((tmp_path / "vectors" / "blue_box.json").read_text())["name"] == "blue box"
    ws0 = load_latent(lat / "img0.latent.safetensors")[0]
    edited = png(tmp_path / "vectors" / "blue_box_edited.png")
    assert np.array_equal(edited, synth_u8(G, ws0 + vec.delta))        # the delta applied = the edited image
    assert np.array_equal(vec.thumb_before, synth_u8(G, ws0))
    assert not np.array_equal(edited, vec.thumb_before)
    assert np.array_equal(png(tmp_path / "vectors" / "blue_box_edited_mask.png"),
                          encode_mask(segment(G, branch, ws0 + vec.delta)[0], PALETTE3))
    # the quality readout: what the result's own segmentation reached of the painted box
    q = json.loads((tmp_path / "vectors" / "blue_box_quality.json").read_text())
    result = segment(G, branch, ws0 + vec.delta)[0]
    painted = old != labels
    assert q["reached"] == pytest.approx((result[painted] == 2).mean(), abs=1e-4)
    assert 0 <= q["region_iou"] <= 1 and (q["psnr_outside_db"] is None or q["psnr_outside_db"] > 0)
    assert vec.extra["quality"] == {k: q[k] for k in ("reached", "region_iou", "psnr_outside_db")}
    assert "quality: reached" in capsys.readouterr().out

    rc = main(["apply", f"{vec_path}:2", "--inputs", str(lat), "--model", str(model), "--out", str(tmp_path / "ap")])
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "ap").iterdir()) == [".job.json", "img0.png", "img1.png", "img2.png"]
    for i in range(3):
        ws = load_latent(lat / f"img{i}.latent.safetensors")[0]
        assert np.array_equal(png(tmp_path / "ap" / f"img{i}.png"), synth_u8(G, ws + 2 * vec.delta))

    # without --out the vector goes to the model's library, where apply finds it by its bare name
    rc = main(["edit", str(lat / "img0.latent.safetensors"), str(tmp_path / "edited.png"), "--model", str(model),
               "--name", "blue box", "--steps", "5"])
    out = capsys.readouterr().out
    assert rc == 0 and "apply it by name" in out
    lib = next((home / "vectors").iterdir())
    assert (lib / "blue_box.safetensors").is_file()
    for ref in ("blue box:-1.5", "blue_box:-1.5"):
        assert main(["apply", ref, "--inputs", str(lat / "img1.latent.safetensors"), "--model", str(model),
                     "--out", str(tmp_path / "byname")]) == 0
        ws = load_latent(lat / "img1.latent.safetensors")[0]
        lib_vec = load_vector(lib / "blue_box.safetensors")
        assert np.array_equal(png(tmp_path / "byname" / "img1.png"), synth_u8(G, ws - 1.5 * lib_vec.delta))

    # a vector of another model is refused, naming it
    other = save_native(make_generator(seed=4, channel_max=16), tmp_path / "other")
    rc = main(["apply", str(vec_path), "--inputs", str(lat), "--model", str(other), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and "belongs to another model" in err and "blue box" in err
    assert not (tmp_path / "x").exists()


def test_wrong_mask_size_exits_2_names_the_file_and_leaves_no_folder(tmp_path, capsys, editable):
    G, model, ident, branch = editable
    save_latent(tmp_path / "a.latent.safetensors", ws_of(G, 0), ident)
    Image.new("RGB", (40, 40)).save(tmp_path / "small_mask.png")
    out = tmp_path / "new" / "vectors"
    rc = main(["edit", str(tmp_path / "a.latent.safetensors"), str(tmp_path / "small_mask.png"), "--model",
               str(model), "--name", "x", "--steps", "2", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error:") and str(tmp_path / "small_mask.png") in err and "40x40" in err and "32x32" in err
    assert not (tmp_path / "new").exists()
    # an unchanged mask, a missing mask, a bad name: exit 2, the file named, nothing written
    Image.fromarray(encode_mask(segment(G, branch, ws_of(G, 0))[0], PALETTE3)).save(tmp_path / "same.png")
    for mask, name, says in (("same.png", "x", "unchanged"), ("missing.png", "x", "missing.png"),
                             ("same.png", "bad/name", "bad/name")):
        rc = main(["edit", str(tmp_path / "a.latent.safetensors"), str(tmp_path / mask), "--model", str(model),
                   "--name", name, "--steps", "2", "--out", str(out)])
        err = capsys.readouterr().err
        assert rc == 2 and says in err, err
        assert not (tmp_path / "new").exists()


def test_bare_vector_names_find_starter_vectors_and_library(tmp_path, capsys, home, editable):
    G, model, ident, branch = editable
    save_vector(a_vector(G, ident, "bigger eyes", seed=1), model / "vectors")      # a starter vector of the model
    from editgan_core.storage.vectors import library_dir

    save_vector(a_vector(G, ident, "smile", seed=2), library_dir(ident))            # one the user saved
    ws = ws_of(G, 3)
    save_latent(tmp_path / "in" / "face.latent.safetensors", ws, ident)
    eyes = load_vector(model / "vectors" / "bigger_eyes.safetensors")
    smile = load_vector(library_dir(ident) / "smile.safetensors")
    for refs in (["bigger eyes:1", "smile:0.5"], ["bigger_eyes:1", "smile:0.5"], ["BIGGER EYES", "smile:.5"]):
        rc = main(["apply", *refs, "--inputs", str(tmp_path / "in"), "--model", str(model), "--out",
                   str(tmp_path / "out")])
        assert rc == 0, capsys.readouterr().err
        assert np.array_equal(png(tmp_path / "out" / "face.png"), synth_u8(G, ws + (eyes.delta + 0.5 * smile.delta)))
    rc = main(["apply", "frown:1", "--inputs", str(tmp_path / "in"), "--model", str(model),
               "--out", str(tmp_path / "nothing")])
    err = capsys.readouterr().err
    assert rc == 2 and "'frown'" in err
    assert "bigger eyes" in err and "smile" in err and str(model / "vectors") in err      # says what exists
    assert not (tmp_path / "nothing").exists()
    rc = main(["apply", "smile:99", "--inputs", str(tmp_path / "in"), "--model", str(model), "--out",
               str(tmp_path / "nothing")])
    assert rc == 2 and "out of range" in capsys.readouterr().err
    rc = main(["apply", str(tmp_path / "no" / "such.safetensors"), "--inputs", str(tmp_path / "in"), "--model",
               str(model), "--out", str(tmp_path / "nothing")])
    assert rc == 2 and "such.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()


def test_builtin_starter_vectors_by_bare_name(tmp_path, capsys, home):
    """The built-in model's starter vectors are found by the names the README uses."""
    m = load_model("toyfaces")
    ident = model_identity(m)
    save_latent(tmp_path / "f.latent.safetensors", generate(m.G, [5], truncation_psi=0.7).ws, ident)
    assert main(["apply", "smile:1.5", "bigger eyes:1", "--inputs", str(tmp_path / "f.latent.safetensors"),
                 "--out", str(tmp_path / "o")]) == 0
    smile = load_vector(ROOT / "checkpoints" / "toyfaces" / "vectors" / "smile.safetensors")
    eyes = load_vector(ROOT / "checkpoints" / "toyfaces" / "vectors" / "bigger_eyes.safetensors")
    ws = load_latent(tmp_path / "f.latent.safetensors")[0]
    assert np.array_equal(png(tmp_path / "o" / "f.png"), synth_u8(m.G, ws + (1.5 * smile.delta + eyes.delta)))


def test_apply_on_a_folder_skips_side_files(tmp_path, capsys, editable):
    """embed's latent + _input/_recon PNGs are one image; masks, edited images and vectors are not inputs."""
    G, model, ident, branch = editable
    d = tmp_path / "in"
    ws = ws_of(G, 5)
    save_latent(d / "face.latent.safetensors", ws, ident)
    Image.fromarray(synth_u8(G, ws)).save(d / "face_recon.png")
    Image.fromarray(synth_u8(G, ws)).save(d / "face_input.png")
    Image.fromarray(synth_u8(G, ws)).save(d / "face.png")                      # the photo it was embedded from
    Image.fromarray(encode_mask(segment(G, branch, ws)[0], PALETTE3)).save(d / "face_mask.png")
    Image.fromarray(synth_u8(G, ws)).save(d / "smile_edited.png")
    Image.fromarray(encode_mask(segment(G, branch, ws)[0], PALETTE3)).save(d / "smile_edited_mask.png")
    vec = a_vector(G, ident, "smile")
    save_vector(vec, d)                                                          # smile.safetensors + smile.json
    (d / ".face.png.tmp").write_bytes(b"")                                       # hidden: ignored
    latents, images, skipped = collect_inputs(d)
    assert [n for n, _ in latents] == ["face"] and images == []
    assert len(skipped) == 7
    rc = main(["apply", str(d / "smile.safetensors"), "--inputs", str(d), "--model", str(model),
               "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 0, err
    outputs = [p.name for p in (tmp_path / "out").iterdir() if p.name != ".job.json"]   # (the job's parameters)
    assert outputs == ["face.png"]                                               # exactly one output
    assert np.array_equal(png(tmp_path / "out" / "face.png"), synth_u8(G, ws + vec.delta))
    assert "face_input.png" in err and "face_recon.png" in err                   # says what it skipped
    # a plain photo beside them is embedded and gets its own output
    Image.fromarray(synth_u8(G, ws_of(G, 6))).save(d / "other.png")
    rc = main(["apply", str(d / "smile.safetensors"), "--inputs", str(d), "--model", str(model), "--steps", "1",
               "--encoder", "none", "--out", str(tmp_path / "out2")])
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == [".job.json", "face.png", "other.png", "other_crop.png"]
    # embed outputs without their latent: the input is the image, the reconstruction is skipped
    (d / "face.latent.safetensors").unlink()
    (d / "face.png").unlink()
    latents, images, skipped = collect_inputs(d)
    assert latents == [] and sorted(n for n, _ in images) == ["face", "other"]
    assert dict((n, p.name) for n, p in images)["face"] == "face_input.png"


def test_failures_leave_no_empty_folder(tmp_path, capsys, monkeypatch, editable):
    G, model, ident, branch = editable
    Image.fromarray(synth_u8(G, ws_of(G, 1))).save(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    # nothing written before the failure: no folder
    rc = main(["embed", str(tmp_path / "broken.png"), "--model", str(model), "--out", str(tmp_path / "e1" / "x"),
               "--steps", "1"])
    assert rc == 2 and "broken.png" in capsys.readouterr().err and not (tmp_path / "e1").exists()
    # a file written before the failure stays (the folder is not empty), the error names the bad file
    rc = main(["embed", str(tmp_path / "good.png"), str(tmp_path / "broken.png"), "--model", str(model),
               "--out", str(tmp_path / "e2"), "--steps", "1"])
    assert rc == 2 and "broken.png" in capsys.readouterr().err
    assert (tmp_path / "e2" / "good.latent.safetensors").is_file()
    # the folder was made, then the first write failed (disk full): the command removes the folder it made
    import PIL.Image

    def full(self, fp, *a, **k):
        raise OSError(28, "No space left on device", str(fp))

    monkeypatch.setattr(PIL.Image.Image, "save", full)
    rc = main(["generate", "--model", str(model), "--seeds", "1", "--out", str(tmp_path / "g" / "h")])
    err = capsys.readouterr().err
    assert rc == 2 and "No space left on device" in err and "seed0001.png" in err
    assert not (tmp_path / "g").exists()


# ----------------------------------------------------------------------------------------------------------
# label (a segmentation model labels samples or photos) -> train-branch


@pytest.fixture(scope="module")
def face_parser(tmp_path_factory):
    from fakes.standins import make_segformer

    return make_segformer(tmp_path_factory.mktemp("parser") / "face-parser")


def test_label_then_train_branch_round_trip(tmp_path, capsys, face_parser):
    from editgan_core.loaders.labelers import load_labeler
    from editgan_core.pipeline.labeling import ClassMap, label_images
    from editgan_core.storage.masks import decode_mask

    G = make_generator()
    model = save_native(G, tmp_path / "model")
    subs = _subparsers()
    assert {"--threads", "--device", "--model", "--labeler", "--map", "--inputs"} <= \
        {o for a in subs["label"]._actions for o in a.option_strings}
    table = {"background": "background", "skin": "skin", "l_eye": "eye", "r_eye": "eye", "hair": "hair",
             "nose": "nose"}
    (tmp_path / "map.json").write_text(json.dumps(table))
    out = tmp_path / "labelled"
    rc = main(["label", "--model", str(model), "--labeler", str(face_parser), "--n", "5", "--map",
               str(tmp_path / "map.json"), "--out", str(out), "--threads", "1"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "labels not in" in err and "go to background" in err and "u_lip" in err     # the unmapped ones, said
    names = ["background", "skin", "eye", "hair", "nose"]
    classes = json.loads((out / "classes.json").read_text())
    assert [c["name"] for c in classes] == names and len({tuple(c["color"]) for c in classes}) == 5
    assert ClassMap.from_json(out / "class_map.json").table == table
    palette = [tuple(c["color"]) for c in classes]
    lab = load_labeler(str(face_parser))
    for seed in range(5):
        img = png(out / f"seed{seed:04d}.png")
        assert np.array_equal(img, generate(G, [seed], truncation_psi=0.7).uint8()[0].numpy())   # NVIDIA seeds
        m = Image.open(out / f"seed{seed:04d}_mask.png")
        assert m.mode == "P"
        got, msg = decode_mask(np.asarray(m.convert("RGB")), palette)
        assert msg == "" and np.array_equal(got, label_images(lab, img[None], ClassMap(table), names)[0])
    first = (out / "seed0000_mask.png").read_bytes()
    assert main(["label", "--model", str(model), "--labeler", str(face_parser), "--seeds", "0", "--map",
                 str(tmp_path / "map.json"), "--out", str(out)]) == 0                   # deterministic
    assert (out / "seed0000_mask.png").read_bytes() == first
    capsys.readouterr()

    # train-branch reads the pairs and classes.json: the branch's classes are the map's
    rc = main(["train-branch", str(out), "--model", str(model), "--out", str(tmp_path / "b.safetensors"),
               "--steps", "2", "--max-steps", "10", "--encoder", "none"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "classes from" in err and "classes.json" in err
    branch = load_branch(tmp_path / "b.safetensors")
    assert list(branch.cfg.class_names) == names and [tuple(c) for c in branch.cfg.palette] == palette
    # --map gives the same table
    rc = main(["train-branch", str(out), "--model", str(model), "--map", str(tmp_path / "map.json"), "--out",
               str(tmp_path / "b2.safetensors"), "--steps", "2", "--max-steps", "10", "--encoder", "none"])
    assert rc == 0
    assert list(load_branch(tmp_path / "b2.safetensors").cfg.class_names) == names
    # a map that does not match the folder's masks is refused
    (tmp_path / "other.json").write_text(json.dumps({"hair": "hair"}))
    rc = main(["train-branch", str(out), "--model", str(model), "--map", str(tmp_path / "other.json"), "--out",
               str(tmp_path / "b3.safetensors"), "--encoder", "none"])
    err = capsys.readouterr().err
    assert rc == 2 and "classes.json lists the classes" in err and "other.json" in err
    assert not (tmp_path / "b3.safetensors").exists()


def test_label_photos_and_the_default_map(tmp_path, capsys, face_parser):
    G = make_generator()
    model = save_native(G, tmp_path / "model")
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        Image.fromarray((np.random.RandomState(i).rand(40, 48, 3) * 255).astype(np.uint8)).save(photos / f"p{i}.png")
    Image.new("RGB", (48, 40)).save(photos / "p0_mask.png")           # a side file: not a photo to label
    rc = main(["label", "--model", str(model), "--labeler", str(face_parser), "--inputs", str(photos), "--out",
               str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "center-cropped 48x40 to 40x40" in err
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["class_map.json", "classes.json", "p0.png", "p0_mask.png", "p1.png", "p1_mask.png"]
    assert png(tmp_path / "out" / "p0.png").shape == (32, 32, 3)
    names = [c["name"] for c in json.loads((tmp_path / "out" / "classes.json").read_text())]
    assert names[0] == "background" and "eye" in names and "lips" in names and "l_eye" not in names


def test_label_bad_inputs_exit_2_name_the_file_and_leave_nothing(tmp_path, capsys, monkeypatch, face_parser):
    import dataclasses

    from editgan_core.loaders.registry import PARSERS, REGISTRY, ModelSpec

    G = make_generator()
    model = save_native(G, tmp_path / "model")

    def run(*extra, out="o"):
        rc = main(["label", "--model", str(model), "--n", "1", "--out", str(tmp_path / out), *extra])
        return rc, capsys.readouterr().err

    # a labeler that is not a segmentation model: the generator's own folder
    rc, err = run("--labeler", str(model))
    assert rc == 2 and str(model) in err and "not a semantic-segmentation model" in err
    assert not (tmp_path / "o").exists()
    # a map naming labels the labeler does not have
    (tmp_path / "map.json").write_text(json.dumps({"left_eye": "eye", "hair": "hair"}))
    rc, err = run("--labeler", str(face_parser), "--map", str(tmp_path / "map.json"))
    assert rc == 2 and "map.json" in err and "does not have: left_eye" in err and not (tmp_path / "o").exists()
    (tmp_path / "broken.json").write_text("{")
    rc, err = run("--labeler", str(face_parser), "--map", str(tmp_path / "broken.json"))
    assert rc == 2 and "broken.json: not valid JSON" in err and not (tmp_path / "o").exists()
    # an image the labeler cannot read: named, nothing written
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(photos / "a.png")
    (photos / "b.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    rc = main(["label", "--model", str(model), "--labeler", str(face_parser), "--inputs", str(photos), "--out",
               str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "b.png" in err and "not a readable image" in err and not (tmp_path / "o").exists()
    rc = main(["label", "--model", str(model), "--labeler", str(face_parser), "--inputs", str(tmp_path / "none"),
               "--out", str(tmp_path / "o")])
    assert rc == 2 and "no such file or folder" in capsys.readouterr().err
    (photos / "b.png").unlink()
    before = (photos / "a.png").read_bytes()
    rc = main(["label", "--model", str(model), "--labeler", str(face_parser), "--inputs", str(photos), "--out",
               str(photos)])
    assert rc == 2 and "would replace them" in capsys.readouterr().err
    assert (photos / "a.png").read_bytes() == before and sorted(p.name for p in photos.iterdir()) == ["a.png"]
    # no network and nothing cached
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    rc, err = run("--labeler", "hf://org/absent-parser")
    assert rc == 2 and "org/absent-parser" in err and "not in the local cache" in err
    monkeypatch.delenv("HF_ENDPOINT")
    # no parser fits an unknown model; contradictory options
    rc, err = run()
    assert rc == 2 and "no parser in the registry fits" in err and "--labeler" in err
    rc, err = run("--labeler", str(face_parser), "--seeds", "0-3")
    assert rc == 2 and "--n 1 and --seeds (4 seeds) disagree" in err
    # a parser for another domain works, with a note
    monkeypatch.setitem(REGISTRY, "tiny-cars", ModelSpec("tiny-cars", "native", 32, "test", local_dir=str(model),
                                                         domain="cars"))
    monkeypatch.setitem(PARSERS, "tiny-face-parser", dataclasses.replace(
        PARSERS["face-parsing"], name="tiny-face-parser", repo_id=None, local_dir=str(face_parser)))
    rc = main(["label", "--model", "tiny-cars", "--labeler", "tiny-face-parser", "--n", "1", "--out",
               str(tmp_path / "cars")])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "parses faces but tiny-cars draws cars" in err and (tmp_path / "cars" / "seed0000_mask.png").is_file()
    rc = main(["label", "--model", "tiny-cars", "--n", "1", "--out", str(tmp_path / "cars2")])
    assert rc == 2 and "no parser in the registry fits tiny-cars (cars)" in capsys.readouterr().err
    # the folder already holds masks of another class table: refused, nothing overwritten
    before = (tmp_path / "cars" / "seed0000_mask.png").read_bytes()
    (tmp_path / "small.json").write_text(json.dumps({"hair": "hair"}))
    rc = main(["label", "--model", "tiny-cars", "--labeler", "tiny-face-parser", "--n", "1", "--map",
               str(tmp_path / "small.json"), "--out", str(tmp_path / "cars")])
    assert rc == 2 and "holds masks of other classes" in capsys.readouterr().err
    assert (tmp_path / "cars" / "seed0000_mask.png").read_bytes() == before


def test_list_shows_the_parsers(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "face-parsing" in out and "hf://jonathandinu/face-parsing" in out and "toyfaces-parser" in out


def test_photo_inputs_come_back_at_the_photos_size(tmp_path, capsys, editable):
    """embed records the photo; apply on the photo (or on its latent) and edit of its latent write NAME.png at the
    photo's size, the model-size crop beside it, and outside the (grown) region where the parts changed every pixel
    is the photo's own."""
    from editgan_core.pipeline.photo import Crop, region_alpha
    from editgan_core.storage.masks import grow

    G, model, ident, branch = editable
    R = G.img_resolution
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (90, 140, 3), dtype=np.uint8)       # 140 x 90, not the model's size
    Image.fromarray(photo).save(tmp_path / "me.png")
    vec = a_vector(G, ident, "smile")
    save_vector(vec, tmp_path / "vecs")
    rc = main(["apply", str(tmp_path / "vecs" / "smile.safetensors"), "--inputs", str(tmp_path / "me.png"),
               "--model", str(model), "--steps", "2", "--encoder", "none", "--out", str(tmp_path / "ap")])
    assert rc == 0, capsys.readouterr().err
    out, crop_img = png(tmp_path / "ap" / "me.png"), png(tmp_path / "ap" / "me_crop.png")
    assert out.shape == photo.shape and crop_img.shape == (R, R, 3)
    box = Crop.from_box((25, 0, 115, 90))                           # the centre square of 140 x 90
    changed = np.any(out != photo, axis=2)
    assert changed.any() and not changed[:, :20].any() and not changed[:, 120:].any()
    # embed -> its latent remembers the photo; edit of that latent hands back the photo's size
    rc = main(["embed", str(tmp_path / "me.png"), "--model", str(model), "--steps", "2", "--encoder", "none",
               "--out", str(tmp_path / "emb")])
    assert rc == 0
    meta = load_latent(tmp_path / "emb" / "me.latent.safetensors")[1]
    assert Crop.from_dict(meta["crop"]) == box and meta["photo_size"] == [140, 90]
    ws0 = load_latent(tmp_path / "emb" / "me.latent.safetensors")[0]
    labels = segment(G, branch, ws0)[0]
    painted = labels.copy()
    painted[8:16, 8:16] = 2
    Image.fromarray(encode_mask(painted, PALETTE3)).save(tmp_path / "edited.png")
    rc = main(["edit", str(tmp_path / "emb" / "me.latent.safetensors"), str(tmp_path / "edited.png"),
               "--model", str(model), "--name", "patch", "--steps", "3", "--out", str(tmp_path / "ed")])
    assert rc == 0, capsys.readouterr().err
    q = json.loads((tmp_path / "ed" / "patch_quality.json").read_text())
    assert q["embedding_psnr_db"] == pytest.approx(meta["psnr"], abs=0.01)           # the embedding's fidelity
    assert q["photo_psnr_outside_db"] is None                                         # outside: bit-identical
    big, small = png(tmp_path / "ed" / "patch_edited.png"), png(tmp_path / "ed" / "patch_edited_crop.png")
    assert big.shape == photo.shape and small.shape == (R, R, 3)
    assert q["photo_changed_share"] == pytest.approx(np.any(big != photo, axis=2).mean())   # what the file shows
    vec2 = load_vector(tmp_path / "ed" / "patch.safetensors")
    after = segment(G, branch, ws0 + vec2.delta)[0]
    from editgan_core.settings import EDIT
    edited = np.isin(labels, [1, 2]) | np.isin(after, [1, 2])                    # the edit's parts: a, b
    assert vec2.classes == ["a", "b"]
    region = grow(edited, EDIT.margin)
    allowed = grow(region_alpha(region, box, (140, 90)) > 0, 1)
    assert np.array_equal(big[~allowed], photo[~allowed])
    # the photo moved away: the model-size image only, and a note
    (tmp_path / "me.png").rename(tmp_path / "gone.png")
    rc = main(["apply", str(tmp_path / "vecs" / "smile.safetensors"), "--inputs",
               str(tmp_path / "emb" / "me.latent.safetensors"), "--model", str(model), "--out", str(tmp_path / "ap2")])
    assert rc == 0 and "gone or changed" in capsys.readouterr().err
    assert png(tmp_path / "ap2" / "me.png").shape == (R, R, 3)


def test_embed_tune_writes_the_photos_tuning_and_apply_renders_with_it(tmp_path, capsys, editable):
    from editgan_core.pipeline.embed import load_tuning

    G, model, ident, branch = editable
    Image.fromarray(synth_u8(make_generator(seed=9), ws_of(make_generator(seed=9), 1))).save(tmp_path / "me.png")
    rc = main(["embed", str(tmp_path / "me.png"), "--model", str(model), "--steps", "5", "--encoder", "none",
               "--tune", "10", "--out", str(tmp_path / "emb")])
    err = capsys.readouterr().err
    assert rc == 0 and "pivotal tuning" in err
    lat = tmp_path / "emb" / "me.latent.safetensors"
    ws, meta = load_latent(lat)
    assert meta["tuning"] == "me.tuning.safetensors"
    tuned = load_tuning(tmp_path / "emb" / "me.tuning.safetensors", G, expect_generator=ident)[0]
    vec = a_vector(G, ident, "smile")
    save_vector(vec, tmp_path / "vecs")
    rc = main(["apply", str(tmp_path / "vecs" / "smile.safetensors"), "--inputs", str(lat), "--model", str(model),
               "--out", str(tmp_path / "ap")])
    assert rc == 0
    with torch.no_grad():
        want = images_to_uint8(tuned.synthesis(ws + vec.delta))[0].numpy()
    assert np.array_equal(png(tmp_path / "ap" / "me_crop.png"), want)
    assert not np.array_equal(want, synth_u8(G, ws + vec.delta))        # the tuned generator, not the model's
    (tmp_path / "emb" / "me.tuning.safetensors").unlink()
    rc = main(["apply", str(tmp_path / "vecs" / "smile.safetensors"), "--inputs", str(lat), "--model", str(model),
               "--out", str(tmp_path / "ap2")])
    assert rc == 0 and "tuning me.tuning.safetensors is missing" in capsys.readouterr().err
    assert np.array_equal(png(tmp_path / "ap2" / "me_crop.png"), synth_u8(G, ws + vec.delta))
