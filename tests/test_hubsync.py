"""Pushing a vector library to a Hub dataset repo and pulling it back, against the local stand-in Hub."""

import pytest
import torch

from conftest import make_generator
from editgan_core.errors import EditGANError
from editgan_core.storage.identity import generator_identity
from editgan_core.storage.vectors import EditVector
from fakes.fake_hub import FakeHub


def _vec(G, name, ident):
    delta = torch.randn(G.num_ws, G.w_dim, generator=torch.Generator().manual_seed(len(name)))
    return EditVector(name=name, delta=delta, generator=ident, classes=["skin"])


def test_push_then_pull_round_trips_and_skips_other_models(monkeypatch, tmp_path):
    from demo.hubsync import pull_library, push_library

    G, other = make_generator(0), make_generator(1, img_resolution=16)
    mine, theirs = generator_identity(G, "tiny", sha256="1" * 64), generator_identity(other, "other", sha256="2" * 64)
    with FakeHub() as hub:
        monkeypatch.setattr("tempfile.tempdir", str(tmp_path))       # a fresh download cache
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        hub.require_token = "secret"
        with pytest.raises(EditGANError, match="could not push"):
            push_library([_vec(G, "smile", mine)], "me/vectors", "wrong")
        msg = push_library([_vec(G, "smile", mine), _vec(G, "eyes", mine), _vec(other, "alien", theirs)],
                           "me/vectors", "secret")
        assert "pushed 3 vectors" in msg
        assert {p for r, p in hub.files if r == "me/vectors"} >= {"smile.safetensors", "eyes.json", "alien.safetensors"}
        vecs, msg = pull_library("me/vectors", None, mine)
        assert sorted(v.name for v in vecs) == ["eyes", "smile"]
        assert "skipped 1" in msg and "another model" in msg
        orig = {v.name: v for v in [_vec(G, "smile", mine)]}
        assert torch.equal(next(v for v in vecs if v.name == "smile").delta, orig["smile"].delta)
        with pytest.raises(EditGANError, match="could not pull"):
            pull_library("me/missing", None, mine)
    with pytest.raises(EditGANError, match="user/name"):
        push_library([_vec(G, "x", mine)], "no-slash", None)
