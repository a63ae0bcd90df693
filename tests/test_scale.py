"""The batch engine and `editgan dataset` (editgan_core/scale/): 2 ranks under torchrun (gloo, CPU) against one
process, a rank killed mid-job and the job rerun, datasets.load_dataset on the output, bad items recorded."""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from editgan_core.errors import EditGANError
from editgan_core.scale import engine

ROOT = Path(__file__).resolve().parent.parent
datasets = pytest.importorskip("datasets", reason="editgan dataset needs the datasets package (requirements-dev)")
datasets.disable_progress_bars()


def job(out: Path, *extra: str, ranks: int = 0, wait: bool = True, restarts: int = 0):
    """`editgan dataset --seeds 0-63 --chunk 1` into ``out``: under torchrun with ``ranks`` processes, else plain."""
    args = ["-m", "editgan_core", "dataset", "--seeds", "0-63", "--chunk", "1", "--out", str(out), *extra]
    cmd = [sys.executable] + (["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks),
                               "--max-restarts", str(restarts)] if ranks else []) + args
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    if not wait:
        return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    out_ = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out_.returncode == 0, out_.stderr[-3000:]
    return out_


def rows(folder: Path) -> dict:
    ds = datasets.load_dataset(str(folder), split="train")
    seeds = ds["seed"]
    assert len(seeds) == len(set(seeds)), "a seed was written twice"
    return {r["seed"]: (np.asarray(r["image"]), np.asarray(r["mask"])) for r in ds}


def same(a: dict, b: dict) -> None:
    """The same rows: every seed, the same mask, the same picture. Pictures may differ by one level at a few pixels:
    float32 CPU kernels round differently from one process to the next (docs/results.md, issue #25)."""
    assert sorted(a) == sorted(b)
    for s in a:
        assert np.array_equal(a[s][1], b[s][1]), f"seed {s}: the masks differ"
        assert np.abs(a[s][0].astype(int) - b[s][0]).max() <= 1, f"seed {s}: the images differ"


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "ds"
    job(out)
    return out


def test_two_ranks_write_each_item_once_and_match_one_process(single, tmp_path):
    out = tmp_path / "ds"
    done = job(out, ranks=2)
    assert "64 items: 64 made now, 0 done before, 0 failed" in done.stderr and "on 2 rank(s)" in done.stderr
    cores = len(os.sched_getaffinity(0))
    for rank in (0, 1):                          # each rank its share of the cores: no oversubscription
        assert f"rank {rank}/2 ({max(1, cores // 2)} threads)" in done.stderr
    shards = sorted((out / "data").glob("*.parquet"))
    assert len(shards) == 64 and not list((out / "data").glob("*.tmp*"))
    got = rows(out)
    assert sorted(got) == list(range(64))
    same(got, rows(single))
    card = (out / "README.md").read_text()
    assert "task_categories:" in card and "Seeds: 0 to 63" in card and "| 9 | mouth |" in card


def test_the_masks_are_the_branchs_segmentation_of_the_seeds(single):
    from editgan_core.loaders.assets import Bundle
    from editgan_core.models.generator import generate
    from editgan_core.models.segbranch import segment

    b = Bundle.load("toyfaces")
    got = rows(single)
    seeds = [0, 17, 42, 63]
    masks = segment(b.G, b.branch, generate(b.G, seeds, truncation_psi=0.7).ws)    # as `editgan segment` does
    for s, m in zip(seeds, masks):
        assert np.array_equal(got[s][1], m)


def worker_pids(parent: int) -> list:
    """The torchrun workers of a launcher: its python children running the dataset command."""
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text().split()
                if int(stat[3]) == parent:
                    found.append(int(p.name))
            except (OSError, IndexError, ValueError):
                pass
    return found


def test_a_rank_killed_mid_job_then_the_job_rerun_completes_it_exactly_once(single, tmp_path):
    out = tmp_path / "ds"
    launcher = job(out, ranks=2, wait=False)
    data = out / "data"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(data.glob("*.parquet")) if data.is_dir() else []) < 6:
        time.sleep(0.05)
    victims = worker_pids(launcher.pid)
    try:
        assert victims, "no torchrun worker found"
        os.kill(victims[-1], signal.SIGKILL)           # one rank dies mid-job; torchrun stops the other
        launcher.wait(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(launcher.pid, signal.SIGKILL)
    assert launcher.returncode != 0
    before = {p.name: p.stat().st_mtime_ns for p in data.glob("*.parquet")}
    assert 6 <= len(before) < 64                       # the job was cut short
    rerun = job(out, ranks=2)
    assert f"{64 - len(before)} made now, {len(before)} done before, 0 failed" in rerun.stderr
    after = {p.name: p.stat().st_mtime_ns for p in data.glob("*.parquet")}
    assert len(after) == 64 and all(after[n] == t for n, t in before.items())     # nothing written twice
    same(rows(out), rows(single))


def test_a_finished_dataset_is_pushed_to_a_hub_dataset_repo(tmp_path, monkeypatch):
    from editgan_core.commands import main
    from fakes.fake_hub import FakeHub

    with FakeHub() as fh:
        monkeypatch.setenv("HF_ENDPOINT", fh.endpoint)
        assert main(["dataset", "--count", "8", "--chunk", "4", "--out", str(tmp_path / "ds"),
                     "--push", "user/faces"]) == 0
    pushed = sorted(p for r, p in fh.files if r == "user/faces")
    assert pushed == ["README.md", "data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"]
    assert b"task_categories" in fh.files[("user/faces", "README.md")]


def test_torchruns_elastic_restart_after_a_killed_rank_completes_the_job(single, tmp_path):
    """`torchrun --max-restarts 1`: a rank killed mid-job, the group restarted by torchrun, the job complete."""
    out = tmp_path / "ds"
    launcher = job(out, ranks=2, wait=False, restarts=1)
    data = out / "data"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(data.glob("*.parquet")) if data.is_dir() else []) < 6:
        time.sleep(0.05)
    try:
        os.kill(worker_pids(launcher.pid)[-1], signal.SIGKILL)
        _, err = launcher.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(launcher.pid, signal.SIGKILL)          # nothing left behind if the job hangs
    assert launcher.returncode == 0, err[-3000:]
    made, before = map(int, re.findall(r"(\d+) made now, (\d+) done before, 0 failed", err)[-1])
    assert before > 0 and made + before == 64            # the restarted group resumed, it did not start over
    same(rows(out), rows(single))


def test_another_job_in_the_same_folder_is_refused(single):
    out = subprocess.run([sys.executable, "-m", "editgan_core", "dataset", "--seeds", "0-63", "--chunk", "1",
                          "--truncation", "0.5", "--out", str(single)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2 and "holds the outputs of another job" in out.stderr


def test_a_bad_item_is_recorded_with_its_reason_and_the_job_goes_on(tmp_path):
    items = [engine.Item(f"item{i}", i) for i in range(6)]
    made = []

    broken = {3}

    def process(it):
        if it.value in broken:
            raise EditGANError("photo item3.png is not a readable image")
        (tmp_path / f"{it.key}.out").write_text("x")
        made.append(it.key)

    done = lambda it: (tmp_path / f"{it.key}.out").is_file()       # noqa: E731
    summary = engine.run(items, process, done, tmp_path, desc="test")
    assert made == ["item0", "item1", "item2", "item4", "item5"]
    assert summary.failures == [("item3", "photo item3.png is not a readable image")]
    lines = [json.loads(x) for x in (tmp_path / "failures.jsonl").read_text().splitlines()]
    assert lines == [{"key": "item3", "reason": "photo item3.png is not a readable image"}]
    again = engine.run(items, process, done, tmp_path, desc="test")     # a rerun tries the failed item only
    assert again.done_now == 0 and again.done_before == 5 and again.failures == summary.failures
    broken.clear()                                                        # the photo was fixed: the next rerun
    fixed = engine.run(items, process, done, tmp_path, desc="test")
    assert fixed.done_now == 1 and made[-1] == "item3" and fixed.failures == []
    assert not (tmp_path / "failures.jsonl").exists()
    with pytest.raises(EditGANError, match="twice"):
        engine.run(items + items[:1], process, done, tmp_path)


def test_apply_under_torchrun_over_photos_and_over_a_dataset(single, tmp_path):
    """Batch apply on the same engine: photos (one of them broken: recorded with its reason, the job goes on),
    handed back at each photo's size; then the rows of a datasets folder as inputs."""
    from PIL import Image

    from editgan_core.toyfaces import render_seed

    photos = tmp_path / "photos"
    photos.mkdir()
    for s in range(5):
        Image.fromarray(np.pad(render_seed(100 + s, 128)[0], ((0, 0), (16, 16), (0, 0)), mode="edge")).save(
            photos / f"p{s}.png")
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    out = subprocess.run(torchrun + ["-m", "editgan_core", "apply", "smile:1.5", "--inputs", str(photos),
                                     "--out", str(tmp_path / "smiling"), "--steps", "5"],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "6 items: 5 made now, 0 done before, 1 failed" in out.stderr
    for s in range(5):
        assert Image.open(tmp_path / "smiling" / f"p{s}.png").size == (160, 128)          # the photo's own size
    failed = [json.loads(x) for x in (tmp_path / "smiling" / "failures.jsonl").read_text().splitlines()]
    assert [f["key"] for f in failed] == ["broken"] and "broken.png" in failed[0]["reason"]
    first = sorted(single.glob("data/*.parquet"))[:6]
    few = tmp_path / "few"
    (few / "data").mkdir(parents=True)
    for p in first:
        (few / "data" / p.name).write_bytes(p.read_bytes())
    out = subprocess.run(torchrun + ["-m", "editgan_core", "apply", "smile:1.5", "--inputs", str(few),
                                     "--out", str(tmp_path / "rows"), "--steps", "5"],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "rows").glob("seed*.png") if "_crop" not in p.name) == \
        [f"seed{s:07d}.png" for s in range(6)]
