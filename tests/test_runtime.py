"""The thread policy (editgan_core/runtime.py): fixed and auto settings, the load monitor, interactive priority."""

import threading
import time

import pytest
import torch

from editgan_core import runtime
from editgan_core.errors import EditGANError


@pytest.fixture
def restore():
    before = (torch.get_num_threads(), runtime._policy, runtime._monitor)
    runtime._interactive.update(active=0, until=0.0)        # no slider move of an earlier test still held
    runtime._long_work.update(last=-1e9, step=0.0)          # nor a long loop
    yield
    torch.set_num_threads(before[0])
    runtime._policy, runtime._monitor = before[1], before[2]
    runtime._local.__dict__.clear()


class _Free:
    """A stand-in monitor: the machine leaves ``n`` cores free."""

    def __init__(self, n):
        self.n = n

    def free(self):
        return self.n


def test_fixed_threads_and_bad_values(restore, monkeypatch):
    p = runtime.configure_threads(1)
    assert p.mode == "fixed" and torch.get_num_threads() == 1 and "1 threads" in p.describe()
    monkeypatch.setenv(runtime.THREADS_ENV, "2")
    assert runtime.configure_threads().threads == 2 and torch.get_num_threads() == 2
    for bad in ("many", "-1", "0.5"):
        with pytest.raises(EditGANError, match="EDITGAN_THREADS"):
            runtime.configure_threads(bad)
    runtime.adapt_threads()                    # fixed: the loops change nothing
    assert torch.get_num_threads() == 2


def test_auto_follows_the_free_cores_and_yields_a_core_to_interactive_work(restore, monkeypatch):
    """A long loop and a slider move in one process split the free cores (one thread each: a team of two beside
    the other's thread would stall at its barriers); alone, each takes every free core."""
    monkeypatch.setattr(runtime, "INTERACTIVE_HOLD", 0.2)
    monkeypatch.setattr(runtime, "LONG_WORK_GAP", 0.2)
    runtime._policy = runtime.ThreadPolicy("auto", 2, 2)
    runtime._monitor = _Free(2)
    runtime.adapt_threads()
    assert torch.get_num_threads() == 2
    runtime._monitor.n = 1                      # another process took a core
    runtime.adapt_threads()
    assert torch.get_num_threads() == 1
    runtime._monitor.n = 2
    runtime.adapt_threads()
    assert torch.get_num_threads() == 2
    # A slider move in another thread: this (long) loop drops to one thread while it runs and shortly after.
    inside, release, seen = threading.Event(), threading.Event(), {}

    def slider(key="slider"):
        with runtime.interactive():
            runtime.adapt_threads()             # the long loop ran just now: the slider takes the other core
            seen[key] = torch.get_num_threads()
            inside.set()
            release.wait(5)

    t = threading.Thread(target=slider)
    t.start()
    assert inside.wait(5)
    runtime.adapt_threads()
    assert torch.get_num_threads() == 1 and seen["slider"] == 1
    release.set()
    t.join()
    runtime.adapt_threads()
    assert torch.get_num_threads() == 1         # within the hold time
    time.sleep(0.3)
    runtime.adapt_threads()
    assert torch.get_num_threads() == 2
    assert runtime._policy.steps == {2: 3, 1: 4}
    assert "1 thread x4" in runtime._policy.describe()
    time.sleep(0.6)                             # no long loop any more (1.5 of its 0.3-s steps): every core
    release.clear()
    release.set()
    t = threading.Thread(target=slider, args=("alone",))
    t.start()
    t.join()
    assert seen["alone"] == 2


def test_the_load_monitor_sees_another_busy_process(restore):
    """The real monitor: a busy child process shows up as cores used by others."""
    import subprocess
    import sys

    if not runtime.os.path.exists("/proc/stat"):
        pytest.skip("needs /proc/stat")
    m = runtime._LoadMonitor(cores=2, period=0.1)
    m.start()
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        deadline = time.time() + 5
        while m.others < 0.6 and time.time() < deadline:
            time.sleep(0.1)
        assert m.others >= 0.6, m.others        # one busy core (shared machines may add more)
        assert m.free() <= 1
    finally:
        busy.kill()
        busy.wait()
