"""Hostile and broken files and inputs (issue #22): every file kind the project reads, corrupted at random, gives
the project's error or a clean load, never another exception; NaN, overwrites, bounds, references and downloads
each have the behaviour the issue asks for."""

import json
import os
import random
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_generator
from editgan_core.errors import CheckpointError, DivergedError, EditGANError

ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------------------------------------
# One valid file of each kind, and ways to break it.


@pytest.fixture(scope="module")
def kinds(tmp_path_factory):
    """kind -> (path of a valid file, its loader)."""
    from editgan_core.loaders.checkpoints import load_generator, save_native
    from editgan_core.pipeline.embed import Encoder, EncoderConfig, load_encoder, load_tuning, save_encoder, save_tuning
    from editgan_core.storage.identity import generator_identity
    from editgan_core.storage.latents import load_latent, save_latent
    from editgan_core.models.segbranch import BranchConfig, SegBranch, load_branch, save_branch
    from editgan_core.storage.vectors import EditVector, load_vector, save_vector

    d = tmp_path_factory.mktemp("kinds")
    G = make_generator()
    ident = generator_identity(G, "tiny", "0" * 64)
    vec = EditVector(name="grin", delta=torch.randn(G.num_ws, G.w_dim) * 0.1, generator=ident, classes=["a", "b"])
    branch = SegBranch(BranchConfig(G.feature_channels(), G.feature_resolutions(), G.img_resolution, ["a", "b"],
                                    [(0, 0, 0), (255, 0, 0)], members=2, generator=ident))
    enc = Encoder(EncoderConfig(G.img_resolution, G.num_ws, G.w_dim, width=8, max_width=16))

    class Tuned:                     # what save_tuning needs of a pivotal tuning
        delta = {k: torch.zeros_like(v) for k, v in G.synthesis.named_parameters()}
        psnr_before, psnr, seconds, steps, base = 10.0, 12.0, 1.0, 5, G

    native = save_native(G, d / "gen")
    paths = {
        "vector": (save_vector(vec, d / "vec"), lambda p: load_vector(p, expect_generator=ident)),
        "latent": (save_latent(d / "w.latent.safetensors", torch.randn(1, G.num_ws, G.w_dim), ident),
                   lambda p: load_latent(p, expect_generator=ident)),
        "branch": (save_branch(branch, d / "branch.safetensors"), lambda p: load_branch(p, expect_generator=ident)),
        "encoder": (save_encoder(enc, d / "encoder.safetensors", ident),
                    lambda p: load_encoder(p, expect_generator=ident)),
        "tuning": (save_tuning(d / "t.tuning.safetensors", Tuned(), ident),
                   lambda p: load_tuning(p, G, expect_generator=ident)),
        "generator": (native if native.suffix == ".safetensors" else native / "model.safetensors", load_generator),
    }
    for kind, (path, load) in paths.items():
        load(path)                   # each valid file loads
    return paths


def _read(path):
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})


def _write(path, tensors, md):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=md)


MISTYPED = [None, 0, -1, 1.5, float("nan"), "", "x" * 5000, [], [1, "a"], {}, {"a": 1}, True, [float("inf"), 1]]


def _corruptions(path, rng):
    """(label, bytes-or-callable) of broken versions of ``path``: truncations, flipped bytes, each descriptor
    field dropped or mistyped, NaN, infinite, missing and misshapen tensors, a foreign descriptor."""
    raw = Path(path).read_bytes()
    out = [(f"truncated to {n}", raw[:n]) for n in (0, 7, 8, 100, len(raw) // 2, len(raw) - 1)]
    for _ in range(12):
        b = bytearray(raw)
        for i in rng.sample(range(len(b)), 3):
            b[i] ^= rng.randrange(1, 256)
        out.append(("3 bytes flipped", bytes(b)))
    tensors, md = _read(path)
    key = "editgan" if "editgan" in md else next(iter(md), "editgan")
    meta = json.loads(md.get(key, "{}"))

    def variant(meta2=None, tensors2=None, raw_md=None):
        def make(dst):
            _write(dst, tensors if tensors2 is None else tensors2,
                   raw_md if raw_md is not None else {**md, key: json.dumps(meta2 if meta2 is not None else meta)})
        return make
    for field in list(meta):
        if field in ("format", "format_version"):
            continue
        out.append((f"no {field}", variant({k: v for k, v in meta.items() if k != field})))
        for bad in rng.sample(MISTYPED, 4):
            out.append((f"{field} = {str(bad)[:20]}", variant({**meta, field: bad})))
        if isinstance(meta[field], dict):
            for sub in list(meta[field])[:6]:
                out.append((f"{field}.{sub} = None", variant({**meta, field: {**meta[field], sub: None}})))
                out.append((f"{field}.{sub} = 'x'", variant({**meta, field: {**meta[field], sub: "x"}})))
    out.append(("descriptor not JSON", variant(raw_md={**md, key: "{not json"})))
    out.append(("descriptor a list", variant(raw_md={**md, key: "[1, 2]"})))
    out.append(("no descriptor", variant(raw_md={})))
    floats = [k for k, v in tensors.items() if v.is_floating_point() and v.numel()]
    for k in rng.sample(floats, min(3, len(floats))):
        nan = dict(tensors)
        nan[k] = tensors[k].clone()
        nan[k].view(-1)[0] = float("nan")
        out.append((f"NaN in {k}", variant(tensors2=nan)))
        inf = dict(tensors)
        inf[k] = tensors[k].clone()
        inf[k].view(-1)[-1] = float("inf")
        out.append((f"inf in {k}", variant(tensors2=inf)))
        out.append((f"{k} misshapen", variant(tensors2={**tensors, k: torch.zeros(3, 5, 7)})))
        out.append((f"{k} missing", variant(tensors2={n: v for n, v in tensors.items() if n != k} or
                                             {"other": torch.zeros(1)})))
        out.append((f"{k} as int", variant(tensors2={**tensors, k: tensors[k].to(torch.int64)})))
    return out


@pytest.mark.parametrize("kind", ["vector", "latent", "branch", "encoder", "tuning", "generator"])
def test_every_broken_file_gives_the_projects_error_or_loads(kinds, kind, tmp_path):
    path, load = kinds[kind]
    rng = random.Random(hash(kind) % 1000)
    tried = refused = 0
    for label, bad in _corruptions(path, rng):
        dst = tmp_path / Path(path).name
        if dst.exists():
            dst.unlink()
        if callable(bad):
            bad(dst)
        else:
            dst.write_bytes(bad)
        if kind == "generator":      # a native generator is a folder: config.json beside the weights
            cfg = Path(path).parent / "config.json"
            if cfg.exists():
                (tmp_path / "config.json").write_bytes(cfg.read_bytes())
        tried += 1
        try:
            load(dst)
        except EditGANError as e:
            refused += 1
            assert str(e) and len(str(e)) < 600, (label, str(e)[:300])
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"{kind}, {label}: {type(e).__name__}: {str(e)[:300]}")
    assert tried >= 40 and refused >= tried // 2


def test_nan_and_empty_identities_are_refused(kinds, tmp_path):
    from editgan_core.storage.latents import load_latent
    from editgan_core.storage.vectors import load_vector

    path, _ = kinds["vector"]
    tensors, md = _read(path)
    meta = json.loads(md["editgan"])
    _write(tmp_path / "v.safetensors", tensors, {"editgan": json.dumps({**meta, "generator": {}})})
    with pytest.raises(CheckpointError, match="'generator' field must be the identity"):
        load_vector(tmp_path / "v.safetensors", expect_generator=meta["generator"])
    np.save(tmp_path / "w.npy", np.full((1, 6, 32), np.nan, np.float32))
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_latent(tmp_path / "w.npy")
    _write(tmp_path / "v2.safetensors", tensors, {"editgan": json.dumps({**meta, "scale_range": [1, "a"]})})
    with pytest.raises(CheckpointError, match="v2.safetensors: its 'scale_range' field must be two finite numbers"):
        load_vector(tmp_path / "v2.safetensors")


def test_a_diverging_optimisation_stops_and_keeps_nothing():
    from editgan_core.pipeline.editing import edit_from_mask
    from editgan_core.pipeline.embed import embed

    G = make_generator()
    ws = torch.randn(1, G.num_ws, G.w_dim)
    ws[0, 0, 0] = float("nan")        # (files never hold one: this stands for values that blow up mid-way)
    with pytest.raises(DivergedError, match="diverged at step 0"):
        embed(G, torch.zeros(1, 3, G.img_resolution, G.img_resolution), steps=3, w_init=ws)

    class Branch:                    # any branch: the loss is not finite before it matters
        from editgan_core.models.segbranch import BranchConfig, SegBranch
        b = SegBranch(BranchConfig(G.feature_channels(), G.feature_resolutions(), G.img_resolution, ["a", "b"],
                                   [(0, 0, 0), (255, 0, 0)], members=1))
    mask = np.zeros((G.img_resolution,) * 2, np.uint8)
    new = mask.copy()
    new[4:10, 4:10] = 1
    with pytest.raises(DivergedError):
        edit_from_mask(G, Branch.b, ws, new, old_mask=mask, steps=3)


def test_check_number_refuses_what_is_not_a_finite_number_in_range():
    from editgan_core.settings import check_number

    assert check_number("psi", "0.5") == 0.5 and check_number("n", "3", integer=True) == 3
    for bad, said in [("nan", "finite"), ("inf", "finite"), ("abc", "must be a number"), (None, "must be a number"),
                      ("1e999", "finite"), ("x" * 10_000, "must be a number"), (7, "out of range"),
                      ("2.5", "whole number")]:
        with pytest.raises(EditGANError, match=said) as e:
            check_number("n", bad, 0, 5, integer=said == "whole number")
        assert len(str(e.value)) < 120


def run(argv) -> int:
    """The CLI's exit code, whether argparse or the command gives it."""
    from editgan_core.commands import main

    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code)


def test_cli_bounds_overwrites_and_references(tmp_path, capsys):
    main = run
    rc = main(["generate", "--truncation", "nan", "--seeds", "0", "--out", str(tmp_path / "g")])
    assert rc == 2 and "finite" in capsys.readouterr().err and not (tmp_path / "g").exists()
    rc = main(["generate", "--seeds", "0-99999999999", "--out", str(tmp_path / "g")])
    assert rc == 2 and "at most 10000 seeds" in capsys.readouterr().err
    rc = main(["generate", "--seeds", "0", "--threads", "100000", "--out", str(tmp_path / "g")])
    err = capsys.readouterr().err
    assert rc == 0 and "cores; using" in err and (tmp_path / "g").is_dir()
    for ref, said in [("hf://a/b/../c.pkl", "may not hold '..'"), ("hf://../x/y.pkl", "malformed Hub reference"),
                      ("m" * 5000, "5000 characters")]:
        rc = main(["generate", "--seeds", "0", "--model", ref, "--out", str(tmp_path / "h")])
        err = capsys.readouterr().err
        assert rc != 0 and said in err and "Traceback" not in err and len(err) < 600


def test_cli_edit_never_overwrites_in_silence_and_reserves_starter_names(tmp_path, capsys):
    from PIL import Image

    from editgan_core.commands import main
    from editgan_core.toyfaces.palette import PALETTE

    assert main(["embed", str(ROOT / "checkpoints" / "toyfaces" / "reference_seed0_psi0.7.png"), "--steps", "2",
                 "--out", str(tmp_path / "emb")]) == 0
    latent = tmp_path / "emb" / "reference_seed0_psi0.7.latent.safetensors"
    assert main(["segment", str(latent), "--out", str(tmp_path / "m.png")]) == 0
    labels = np.asarray(Image.open(tmp_path / "m.png").convert("RGB"))
    painted = labels.copy()
    painted[40:44, 20:44] = PALETTE[9]
    Image.fromarray(painted).save(tmp_path / "m2.png")
    capsys.readouterr()
    args = [str(latent), str(tmp_path / "m2.png"), "--steps", "2", "--out", str(tmp_path / "lib")]
    assert main(["edit", *args, "--name", "grin"]) == 0
    first = (tmp_path / "lib" / "grin.safetensors").read_bytes()
    rc = main(["edit", *args, "--name", "grin"])
    assert rc == 2 and "already in" in capsys.readouterr().err
    assert (tmp_path / "lib" / "grin.safetensors").read_bytes() == first
    assert main(["edit", *args, "--name", "grin", "--overwrite"]) == 0
    rc = main(["edit", *args, "--name", "Smile"])
    assert rc == 2 and "starter vectors" in capsys.readouterr().err and not (tmp_path / "lib" / "Smile.safetensors").exists()


def test_the_app_keeps_working_with_a_bad_library_file_and_never_shadows_a_vector(tmp_path, monkeypatch):
    """A broken vector in the user library is listed as skipped and everything else works for a fresh user; a
    vector saved or uploaded under a taken name comes in as "name (2)"."""
    import sys

    sys.path.insert(0, str(ROOT))
    monkeypatch.setenv("EDITGAN_HOME", str(tmp_path / "home"))
    from demo.model import Studio
    from demo.session import Session
    from editgan_core.storage.vectors import save_vector

    studio = Studio()
    s = Session(studio)
    s.set_model("toyfaces")
    lib = studio.library("toyfaces")
    lib.mkdir(parents=True, exist_ok=True)
    good = s.vectors["smile"]
    path = save_vector(good, lib)        # "smile" in the library: shadowed by the starter unless renamed
    tensors, md = _read(path)
    meta = json.loads(md["editgan"])
    del meta["name"]
    _write(lib / "broken.safetensors", tensors, {"editgan": json.dumps(meta)})
    path.unlink()
    fresh = Session(Studio())
    fresh.set_model("toyfaces")          # loads, with the broken file skipped and said
    assert any("broken.safetensors" in p and "'name'" in p for p in fresh.assets.problems)
    assert fresh.sample(3, 0.7).image.shape == (64, 64, 3)
    fresh.edit(_wider_mouth(fresh), steps=3)
    vec, saved, note = fresh.save_vector("smile")
    assert vec.name == "smile (2)" and "taken" in note and saved.exists()
    assert fresh.vectors["smile"] is not vec
    vec2, _, note2 = fresh.save_vector("smile")
    assert vec2.name == "smile (3)"
    up = fresh.add_vector_file(saved)    # the same file uploaded: its name is taken too
    assert up.name == "smile (2) (2)"


def _wider_mouth(s):
    lab = s.labels_of().copy()
    rows, cols = np.nonzero(np.isin(lab, [8, 9]))
    lab[int(rows.mean()):int(rows.mean()) + 2, cols.min() - 2:cols.max() + 3] = 9
    return lab


def test_download_folders_go_with_the_session_and_old_ones_at_start_up(tmp_path, monkeypatch):
    import sys

    sys.path.insert(0, str(ROOT))
    from demo.session import Session
    from demo.ui import common, history

    monkeypatch.setattr(common, "OUT", tmp_path)
    s = Session(common.STUDIO)
    s.set_model("toyfaces")
    s.sample(1, 0.7)
    files = history.on_export(s)["history.files"]
    assert files and all(Path(f).exists() for f in files)
    s.forget()
    assert not any(Path(f).exists() for f in files) and not s.download_dirs
    old, new = tmp_path / "old-1", tmp_path / "new-1"
    old.mkdir(), new.mkdir()
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    common.clean_downloads()
    assert not old.exists() and new.exists()


def test_a_zip_bomb_is_refused_before_it_is_read(tmp_path):
    import zipfile

    from editgan_core.loaders.checkpoints import load_generator

    with zipfile.ZipFile(tmp_path / "bomb.pt", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("archive/data/0", b"\0" * (64 * 2 ** 20))
    assert (tmp_path / "bomb.pt").stat().st_size < 2 ** 20
    with pytest.raises(CheckpointError, match="would unpack to 64 MiB.*zip bomb"):
        load_generator(tmp_path / "bomb.pt")


def test_user_strings_are_clipped_in_messages():
    from editgan_core.storage.vectors import check_name

    with pytest.raises(EditGANError) as e:
        check_name("x" * 10_000_000)
    assert len(str(e.value)) < 200 and "10000002 characters" in str(e.value)


def test_the_cli_and_the_studio_load_a_model_alike_and_embed_with_the_same_distance(tmp_path, monkeypatch):
    """Issue #23's disagreement, fixed through assets.Bundle: a native model with a discriminator beside it embeds
    with the discriminator's features in the CLI and in the studio alike (the studio used the fallback always)."""
    import sys

    sys.path.insert(0, str(ROOT))
    from demo.model import Studio
    from editgan_core.loaders.assets import Bundle
    from editgan_core.loaders.checkpoints import save_native
    from editgan_core.commands.common import distance_for as _distance_for
    from editgan_core.models.discriminator import Discriminator, DiscriminatorConfig
    from editgan_core.loaders.hub import load_model
    from editgan_core.models.perceptual import DiscriminatorDistance, FallbackDistance
    from editgan_core.training.engine import export_discriminator

    monkeypatch.setenv("EDITGAN_HOME", str(tmp_path / "home"))
    G = make_generator()
    folder = save_native(G, tmp_path / "model")
    folder = folder if folder.is_dir() else folder.parent
    export_discriminator(Discriminator(DiscriminatorConfig(img_resolution=G.img_resolution, channel_base=256,
                                                           channel_max=32)), folder)
    cli = _distance_for(load_model(str(folder)), "auto")
    studio = Studio(torch.device("cpu")).assets(str(folder)).distance
    assert type(cli) is type(studio) is DiscriminatorDistance
    b = Bundle.load(str(folder))
    assert b.encoder is None and b.branch is None and b.cut == "box" and b.vectors == []
    assert "this model has no encoder" in b.notes and "this model has no segmentation branch" in b.notes
    toy = Bundle.load("toyfaces")
    assert toy.encoder is not None and toy.branch is not None and isinstance(toy.distance, FallbackDistance)
    assert {"smile", "bigger eyes", "longer hair", "open mouth", "wider nose"} <= {v.name for v in toy.vectors}
