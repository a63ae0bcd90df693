"""Kits (editgan_core/storage/kits.py): a generator made editable at once -- made from the built-in model and from a
256-px stand-in on the stand-in Hub, pushed, opened again in a fresh process offline from the cache, edited with
no labelling or training; refused where they do not belong; damaged manifests refused with a message."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from editgan_core.commands import main
from editgan_core.errors import CheckpointError, EditGANError
from editgan_core.loaders.assets import Bundle
from editgan_core.storage.kits import KIT_FILE, read_manifest
from fakes import standins
from fakes.fake_hub import FakeHub

ROOT = Path(__file__).resolve().parent.parent


def test_a_kit_of_the_built_in_model_opens_anywhere_a_model_does(tmp_path, capsys):
    kit = tmp_path / "kit"
    assert main(["kit", "--out", str(kit), "--no-library", "--license", "mit"]) == 0
    manifest = read_manifest(kit)
    assert manifest["generator"]["included"] is True            # a local model: its weights travel in the kit
    assert {"branch.safetensors", "encoder.safetensors", "model.safetensors", "vectors/smile.safetensors"} \
        <= set(manifest["files"])
    card = (kit / "README.md").read_text()
    assert card.startswith("---\nlicense: mit\n") and "Held-out mIoU: 0.769, trained from 16 labelled images" in card
    assert "| smile |" in card and "(thumbs/smile.png)" in card and (kit / "thumbs" / "smile.png").is_file()
    b = Bundle.load(str(kit))                                      # the studio's and the benches' way in
    assert b.branch is not None and b.encoder is not None and "smile" in [v.name for v in b.vectors]
    assert b.classes[0][:3] == ["background", "skin", "hair"]
    # The CLI takes the folder as --model: a vector by name on a sample, no labelling, no training.
    assert main(["generate", "--model", str(kit), "--seeds", "3", "--out", str(tmp_path / "g")]) == 0
    assert main(["apply", "smile:1.5", "--model", str(kit), "--inputs", str(tmp_path / "g"),
                 "--out", str(tmp_path / "a")]) == 0
    before = np.asarray(__import__("PIL.Image").Image.open(tmp_path / "g" / "seed0003.png"))
    after = np.asarray(__import__("PIL.Image").Image.open(tmp_path / "a" / "seed0003.png"))
    assert before.shape == after.shape and np.abs(after.astype(int) - before).max() > 20
    # Written again over itself (an earlier kit), but never over another folder's files.
    assert main(["kit", "--out", str(kit), "--no-library"]) == 0
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    assert main(["kit", "--out", str(tmp_path / "mine"), "--no-library"]) == 2
    assert "is not a kit folder" in capsys.readouterr().err and (tmp_path / "mine" / "notes.txt").exists()


@pytest.mark.parametrize("damage", ["not json", '{"format": "editgan-studio/kit", "format_version": 9}',
                                    "files-escape", "missing-file"])
def test_a_damaged_or_hostile_kit_is_refused_with_a_message(tmp_path, damage):
    kit = tmp_path / "kit"
    assert main(["kit", "--out", str(kit), "--no-library"]) == 0
    m = json.loads((kit / KIT_FILE).read_text())
    if damage == "files-escape":
        m["files"].append("../../etc/passwd")
        text = json.dumps(m)
    elif damage == "missing-file":
        (kit / "vectors" / "smile.safetensors").unlink()
        text = json.dumps(m)
    else:
        text = damage
    (kit / KIT_FILE).write_text(text)
    with pytest.raises(EditGANError) as e:
        Bundle.load(str(kit))
    assert str(kit) in str(e.value) or "kit" in str(e.value)
    assert isinstance(e.value, CheckpointError)


OPEN_OFFLINE = textwrap.dedent("""
    import json, sys
    import numpy as np
    from demo.model import Studio
    from demo.session import Session

    s = Session(Studio())
    s.set_model(sys.argv[1])
    step = s.sample(1, 0.7)
    labels = s.labels_of(step).copy()
    labels[100:140, 100:160] = 1                          # a block of class 1 painted
    res = s.edit(labels, steps=3)
    edited = s.current.image.copy()
    s.set_scales({"brighter": 1.5})
    print(json.dumps({"vectors": s.vector_names(), "classes": s.class_table()[0],
                      "edit_changed": float(np.abs(edited.astype(int) - step.image).mean()),
                      "slide_changed": float(np.abs(s.current.image.astype(int) - edited).mean())}))
""")


def test_a_kit_pushed_to_the_hub_opens_offline_in_a_fresh_process_and_edits_at_once(tmp_path, monkeypatch):
    from editgan_core.loaders.hub import load_model
    from editgan_core.models.segbranch import save_branch
    from editgan_core.pipeline.fewshot import train_branch
    from editgan_core.storage.identity import model_identity
    from editgan_core.storage.vectors import EditVector, save_vector

    cache = os.environ["HF_HUB_CACHE"]      # the tests' own cache (conftest.py), read by huggingface_hub at import
    pkl = standins.official_pickle(256, tmp_path / "g256.pkl")
    with FakeHub() as fh:
        fh.add("org/gen256", "g256.pkl", pkl.read_bytes())
        monkeypatch.setenv("HF_ENDPOINT", fh.endpoint)
        ref = "hf://org/gen256/g256.pkl"
        loaded = load_model(ref)
        G, ident = loaded.G, model_identity(loaded)
        # A branch trained on 3 images of the stand-in (bright vs dark pixels: two classes), and one vector.
        ws = G.mapping_ws(torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(0)), truncation_psi=0.7)
        with torch.no_grad():
            imgs = G.synthesis(ws)
        bright = imgs.mean(1)
        masks = (bright > bright.flatten(1).median(1).values[:, None, None]).numpy().astype(np.uint8)
        branch, rep = train_branch(G, ws, masks, ["dark", "bright"], [(0, 0, 0), (255, 255, 255)],
                                   generator_id=ident, max_steps=20, eval_every=10)
        bfile = save_branch(branch, tmp_path / "branch.safetensors",
                            extra={"training": {"images": 3, "val_miou": rep.val_miou}})
        vec = EditVector("brighter", 0.5 * torch.randn(G.num_ws, G.w_dim), ident, ["bright"])
        vfile = save_vector(vec, tmp_path / "vecs")
        kit = tmp_path / "kit"
        assert main(["kit", "--model", ref, "--branch", str(bfile), "--vectors", str(vfile), "--no-library",
                     "--out", str(kit), "--push", "user/kit"]) == 0
        manifest = read_manifest(kit)
        gen = manifest["generator"]
        assert gen["ref"] == f"{ref}@{fh.commit}" and gen["sha256"] == loaded.sha256    # referenced, pinned
        assert "g256.pkl" not in manifest["files"] and ("user/kit", "g256.pkl") not in fh.files  # not re-uploaded
        assert ("user/kit", "branch.safetensors") in fh.files and ("user/kit", "README.md") in fh.files
        assert "hf://user/kit" in fh.files[("user/kit", "README.md")].decode()
        # Opened once online (the cache fills with the kit's files and the referenced generator) ...
        b = Bundle.load("hf://user/kit")
        assert b.branch is not None and [v.name for v in b.vectors][:1] == ["brighter"]
        # ... the kit's vector is refused on another generator, with a message that says so.
        other = Bundle.load("toyfaces")
        from editgan_core.storage.vectors import load_vector

        with pytest.raises(EditGANError, match="belongs to another model"):
            load_vector(Path(b.loaded.kit) / "vectors" / "brighter.safetensors", expect_generator=other.identity)
    # ... then in a fresh process with the Hub gone and offline mode on: the edit and the slider work at once.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_CACHE": cache,
           "PYTHONPATH": str(ROOT), "EDITGAN_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", OPEN_OFFLINE, "hf://user/kit"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["vectors"][:1] == ["brighter"] and got["classes"] == ["dark", "bright"]
    assert got["edit_changed"] > 0.5 and got["slide_changed"] > 0.5


SPACE_SESSION = textwrap.dedent("""
    import numpy as np
    from demo.session import Session
    from demo.ui import common, history, vectors

    s = Session(common.STUDIO)
    s.set_model("toyfaces")
    step = s.sample(5, 0.7)
    labels = s.labels_of(step).copy()
    rows, cols = np.nonzero(np.isin(labels, [8, 9]))
    labels[int(rows.mean()):int(rows.mean()) + 2, cols.min() - 2:cols.max() + 3] = 9
    s.edit(labels, steps=5)
    s.save_vector("wide")
    history.on_export(s)
    out = vectors.on_publish_kit(s, "", "", "mit", progress=lambda *a, **k: None)
    print(out["vectors.kit_file"])
""")


def test_on_a_space_nothing_is_written_outside_temporary_and_cache_folders(tmp_path):
    """A Space session (SPACE_ID set) that samples, edits, saves a vector, exports and publishes a kit writes
    only under the temporary folder: not in HOME, not in the working tree."""
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir(), tmp.mkdir()
    before = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=ROOT, capture_output=True,
                            text=True).stdout
    env = {k: v for k, v in os.environ.items() if k not in ("EDITGAN_HOME", "HF_HOME")}
    env.update(SPACE_ID="user/space", HOME=str(home), TMPDIR=str(tmp), PYTHONPATH=str(ROOT),
               HF_HUB_CACHE=str(tmp / "hf"), MPLCONFIGDIR=str(tmp / "mpl"), GRADIO_ANALYTICS_ENABLED="False",
               PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run([sys.executable, "-c", SPACE_SESSION], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert Path(out.stdout.strip().splitlines()[-1]).is_relative_to(tmp)       # the kit's zip: a temporary file
    assert [p for p in home.rglob("*")] == []                                  # nothing in HOME (no library)
    after = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=ROOT, capture_output=True,
                           text=True).stdout
    assert after == before                                                     # nothing in the working tree
