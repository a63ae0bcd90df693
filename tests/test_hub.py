"""Model resolution: registry names, local paths and hf:// references, against a local stand-in Hub."""

import hashlib

import pytest
import torch

from fakes import fake_nvidia
from conftest import make_generator
from editgan_core.loaders import hub
from editgan_core.loaders.checkpoints import CONFIG_NAME, WEIGHTS_NAME, save_native
from editgan_core.errors import HashMismatchError, ModelNotFoundError
from editgan_core.loaders.registry import REGISTRY, ModelSpec
from fakes.fake_hub import FakeHub


@pytest.fixture
def snapshot_bytes(tmp_path):
    fake_nvidia.save_snapshot(make_generator(), tmp_path / "snap.pkl")
    return (tmp_path / "snap.pkl").read_bytes()


def test_download_then_offline_from_cache(tmp_path, snapshot_bytes):
    cache = str(tmp_path / "cache")
    with FakeHub() as fh:
        fh.add("org/gans", "models/tiny.pkl", snapshot_bytes)
        loaded = hub.load_model("hf://org/gans/models/tiny.pkl", cache_dir=cache, endpoint=fh.endpoint)
        assert loaded.format == "nvidia-pkl"
        assert fh.requests >= 1
    # server gone: served from the cache with no request
    r = hub.resolve("hf://org/gans/models/tiny.pkl", cache_dir=cache, endpoint=fh.endpoint, local_files_only=True)
    assert r.path.read_bytes() == snapshot_bytes
    assert "models--org--gans" in str(r.path)


def test_pinned_revision(tmp_path, snapshot_bytes):
    with FakeHub() as fh:
        fh.add("org/gans", "g.pkl", snapshot_bytes)
        r = hub.resolve(f"hf://org/gans/g.pkl@{fh.commit}", cache_dir=str(tmp_path), endpoint=fh.endpoint)
        assert fh.commit in str(r.path)
        with pytest.raises(ModelNotFoundError, match="revision"):
            hub.resolve("hf://org/gans/g.pkl@" + "b" * 40, cache_dir=str(tmp_path), endpoint=fh.endpoint)
        before = fh.requests
        again = hub.resolve(f"hf://org/gans/g.pkl@{fh.commit}", cache_dir=str(tmp_path), endpoint=fh.endpoint)
        assert again.path == r.path and fh.requests == before  # a pinned commit is served from the cache


def test_offline_and_nothing_cached_names_file_and_repo(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"models/x\.pkl.*org/gans"):
        hub.resolve("hf://org/gans/models/x.pkl", cache_dir=str(tmp_path), local_files_only=True)
    # an unreachable endpoint behaves the same (closed port on loopback)
    with pytest.raises(ModelNotFoundError, match=r"x\.pkl.*org/gans"):
        hub.resolve("hf://org/gans/models/x.pkl", cache_dir=str(tmp_path), endpoint="http://127.0.0.1:9")


def test_missing_file_and_repo(tmp_path, snapshot_bytes):
    with FakeHub() as fh:
        fh.add("org/gans", "g.pkl", snapshot_bytes)
        with pytest.raises(ModelNotFoundError, match="not found"):
            hub.resolve("hf://org/gans/nope.pkl", cache_dir=str(tmp_path), endpoint=fh.endpoint)
        with pytest.raises(ModelNotFoundError, match="not found"):
            hub.resolve("hf://org/other/g.pkl", cache_dir=str(tmp_path), endpoint=fh.endpoint)


def test_registry_hash_verified(tmp_path, snapshot_bytes, monkeypatch):
    good = hashlib.sha256(snapshot_bytes).hexdigest()
    with FakeHub() as fh:
        fh.add("org/gans", "g.pkl", snapshot_bytes)
        monkeypatch.setitem(REGISTRY, "t-good", ModelSpec("t-good", "nvidia-pkl", 32, "t", repo_id="org/gans",
                                                          filename="g.pkl", sha256=good))
        monkeypatch.setitem(REGISTRY, "t-bad", ModelSpec("t-bad", "nvidia-pkl", 32, "t", repo_id="org/gans",
                                                         filename="g.pkl", sha256="0" * 64))
        loaded = hub.load_model("t-good", cache_dir=str(tmp_path), endpoint=fh.endpoint)
        assert loaded.sha256 == good
        with pytest.raises(HashMismatchError, match="does not match"):
            hub.resolve("t-bad", cache_dir=str(tmp_path), endpoint=fh.endpoint)
    # the cached file is verified again on later (offline) loads
    with pytest.raises(HashMismatchError):
        hub.resolve("t-bad", cache_dir=str(tmp_path), local_files_only=True)


def test_native_folder_on_the_hub(tmp_path):
    G = make_generator()
    out = save_native(G, tmp_path / "nat")
    with FakeHub() as fh:
        fh.add("org/native", f"sub/{WEIGHTS_NAME}", (out / WEIGHTS_NAME).read_bytes())
        fh.add("org/native", f"sub/{CONFIG_NAME}", (out / CONFIG_NAME).read_bytes())
        fh.add("org/root", WEIGHTS_NAME, (out / WEIGHTS_NAME).read_bytes())
        a = hub.load_model("hf://org/native/sub/", cache_dir=str(tmp_path / "c"), endpoint=fh.endpoint)
        b = hub.load_model("hf://org/root", cache_dir=str(tmp_path / "c"), endpoint=fh.endpoint)
    z = torch.randn(1, 16)
    with torch.no_grad():
        torch.testing.assert_close(a.G(z), G(z))
        torch.testing.assert_close(b.G(z), G(z))


def test_local_paths_and_unknown_names(tmp_path):
    out = save_native(make_generator(), tmp_path / "nat")
    assert hub.resolve(str(out)).path == out
    with pytest.raises(ModelNotFoundError, match="unknown model 'no-such-model'.*ffhq-1024"):
        hub.resolve("no-such-model")
    with pytest.raises(ModelNotFoundError, match="malformed"):
        hub.resolve("hf://just-a-name")


def test_registry_entries_are_well_formed():
    assert "toyfaces" in REGISTRY
    for name, spec in REGISTRY.items():
        assert spec.name == name
        assert spec.format in ("native", "nvidia-pkl", "rosinality-pt", "tf-pkl")
        assert spec.resolution & (spec.resolution - 1) == 0
        assert spec.local_dir or (spec.repo_id and spec.filename)
        assert spec.sha256 is None or len(spec.sha256) == 64
        assert spec.revision is None or len(spec.revision) == 40
