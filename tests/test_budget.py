"""Memory as a budget: long actions are shrunk or refused before they start, with a message, never killed."""

import dataclasses

import pytest
import torch

from conftest import RGB_CLASSES, colour_branch, make_generator
from editgan_core import budget
from editgan_core.pipeline.editing import edit_from_mask, refine
from editgan_core.pipeline.embed import embed, pivotal_tune
from editgan_core.errors import EditGANError
from editgan_core.pipeline.fewshot import FeatureStore, train_branch
from editgan_core.models.segbranch import segment


@pytest.fixture(scope="module")
def setup():
    G = make_generator(img_resolution=64, channel_base=512, channel_max=32)
    branch, ws_train, masks = colour_branch(G, n=4, steps=40)
    ws = G.mapping_ws(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(2)))
    return G, branch, ws, ws_train, masks


def _free(monkeypatch, nbytes):
    monkeypatch.setattr(budget, "available_bytes", lambda: int(nbytes))


def _small_work(monkeypatch, smallest=16):
    monkeypatch.setattr(budget, "BUDGET", dataclasses.replace(budget.BUDGET, smallest_work=smallest))


def test_sizes_parse_and_the_limit_variable_caps_what_is_free(monkeypatch):
    assert budget.parse_size("16G") == 16 << 30 and budget.parse_size("1500M") == 1500 << 20
    assert budget.parse_size("2.5GiB") == int(2.5 * (1 << 30)) and budget.parse_size("4096") == 4096
    with pytest.raises(EditGANError, match="not a size"):
        budget.parse_size("lots")
    monkeypatch.setattr(budget, "held_free_bytes", lambda: 0)
    free = budget.available_bytes()
    assert 0 < free < 1 << 50
    used = budget.rss_bytes()
    monkeypatch.setenv(budget.LIMIT_ENV, f"{(used >> 20) + 512}M")     # a Space 512 MB larger than this process
    assert budget.available_bytes() < free
    assert budget.available_bytes() <= (512 + 64) << 20
    monkeypatch.setenv(budget.LIMIT_ENV, f"{(used >> 20) // 2}M")      # already over it: nothing is free
    assert budget.available_bytes() == 0


def test_estimates_follow_the_model_and_the_working_resolution():
    G = make_generator(img_resolution=64, channel_base=512, channel_max=32)
    assert budget.feature_bytes(G) == 4 * sum(c * r * r for c, r in zip(G.feature_channels(), G.feature_resolutions()))
    assert budget.feature_bytes(G, 32) + budget.feature_bytes(G, above=32) == budget.feature_bytes(G)
    assert budget.edit_bytes(G, 32) < budget.edit_bytes(G, 64) < budget.edit_bytes(G, 64, batch=4)
    overhead = budget.BUDGET.overhead
    assert budget.embed_bytes(G, 8) - overhead == 8 * (budget.embed_bytes(G, 1) - overhead)


def test_an_exact_edit_that_does_not_fit_moves_to_a_working_resolution_and_says_so(setup, monkeypatch):
    G, branch, ws, _, _ = setup
    _small_work(monkeypatch)
    _free(monkeypatch, budget.edit_bytes(G, 32) / budget.BUDGET.usable + 1)     # 32 px fits, 64 does not
    old = segment(G, branch, ws)[0]
    new = old.copy()
    new[20:30, 20:30] = (old[25, 25] + 1) % 3
    res = edit_from_mask(G, branch, ws, new, steps=3, work_resolution=0)
    assert res.vector.extra["work_resolution"] == 32
    assert res.notes and "optimised at 32 px" in res.notes[0] and "free" in res.notes[0]
    k = G.ws_read_up_to(32)
    assert torch.count_nonzero(res.delta[k:]) == 0


def test_an_edit_that_fits_nowhere_is_refused_before_any_work(setup, monkeypatch):
    G, branch, ws, _, _ = setup
    _small_work(monkeypatch)
    _free(monkeypatch, 1000)
    old = segment(G, branch, ws)[0]
    new = old.copy()
    new[20:30, 20:30] = (old[25, 25] + 1) % 3
    calls = []
    with pytest.raises(budget.MemoryBudgetError, match="needs at least .* GB of memory"):
        edit_from_mask(G, branch, ws, new, steps=3, progress=lambda *a: calls.append(a))
    assert not calls


def test_refinement_takes_fewer_images_per_pass_when_memory_is_short(setup, monkeypatch):
    G, branch, ws, ws_train, _ = setup
    seen = []
    from editgan_core.pipeline import editing
    real = editing.optimise_region

    def spy(G_, branch_, w, *a, **kw):
        seen.append((len(w), kw["work_resolution"]))
        return real(G_, branch_, w, *a, **kw)

    monkeypatch.setattr(editing, "optimise_region", spy)
    _small_work(monkeypatch, smallest=64)
    _free(monkeypatch, budget.edit_bytes(G, 64, 2) / budget.BUDGET.usable + 1)
    edited = ws_train + 0.3
    out = refine(G, branch, ws_train, edited, [0, 1], steps=2, batch=4, work_resolution=0)
    assert out.shape == ws_train.shape
    assert seen == [(2, 64), (2, 64)]


def test_embedding_too_many_images_at_once_is_refused(setup, monkeypatch):
    G, *_ = setup
    _free(monkeypatch, budget.embed_bytes(G, 2) / budget.BUDGET.usable + 1)
    images = torch.zeros(4, 3, 64, 64)
    with pytest.raises(budget.MemoryBudgetError, match="embedding 4 image"):
        embed(G, images, steps=1)
    assert embed(G, images[:2], steps=1).ws.shape[0] == 2


def test_pivotal_tuning_is_refused_when_its_copy_and_passes_do_not_fit(setup, monkeypatch):
    G, _, ws, _, _ = setup
    with torch.no_grad():
        img = G.synthesis(ws)
    _free(monkeypatch, budget.embed_bytes(G, 1))
    with pytest.raises(budget.MemoryBudgetError, match="pivotal tuning"):
        pivotal_tune(G, ws, img, steps=1)
    _free(monkeypatch, 1 << 40)
    assert pivotal_tune(G, ws, img, steps=1) is not None


def test_training_refuses_when_the_feature_store_would_not_fit_on_disk(setup, monkeypatch, tmp_path):
    G, _, _, ws_train, masks = setup
    need = FeatureStore.bytes_for(G, len(ws_train))
    real = budget.shutil.disk_usage

    def small_disk(path):
        return real(path)._replace(free=need // 2)

    monkeypatch.setattr(budget.shutil, "disk_usage", small_disk)
    with pytest.raises(budget.MemoryBudgetError, match="scratch files"):
        train_branch(G, ws_train, masks, *RGB_CLASSES, max_steps=2,
                     scratch=tmp_path)
    assert not list(tmp_path.iterdir())       # nothing was written


def test_training_refuses_when_memory_is_short(setup, monkeypatch):
    G, _, _, ws_train, masks = setup
    _free(monkeypatch, 1000)
    with pytest.raises(budget.MemoryBudgetError, match="training the branch"):
        train_branch(G, ws_train, masks, *RGB_CLASSES, max_steps=2)
