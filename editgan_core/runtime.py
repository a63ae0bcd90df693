"""Process-level settings for fast CPU inference. Called by entry points (CLI, app, benchmarks), never on import."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, Optional, Union

import torch

from .errors import EditGANError

_tuned = False


def libc() -> Optional[ctypes.CDLL]:
    """The C library (glibc on Linux), or None where it cannot be loaded."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def tune_allocator() -> bool:
    """Keep freed memory in the process instead of returning it to the OS (glibc only).

    A StyleGAN forward pass allocates and frees activations of up to ~100 MB per layer. By default glibc
    serves such blocks with mmap and unmaps them on free, so every layer pays page faults to touch fresh,
    zeroed memory -- measured here at 10-50% of the CPU time of a forward pass. Raising the mmap and trim
    thresholds lets the allocator reuse the memory. Returns True if the setting was applied.
    """
    global _tuned
    if _tuned:
        return True
    c = libc()
    if c is None:
        return False
    try:
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = c.mallopt(m_mmap_threshold, 1 << 30) == 1 and c.mallopt(m_trim_threshold, (1 << 31) - 1) == 1
    except AttributeError:
        return False
    _tuned = ok
    return ok


# ----------------------------------------------------------------------------------------------------------
# Threads. torch runs each operator on a team of OpenMP threads that meet at a barrier when it ends. When other
# processes keep the cores busy, a team as wide as the machine waits at every barrier for members that the
# scheduler has parked: measured (issue #14), a 100-step embed went from 2.9 s to 161 s beside two 2-thread
# processes, and to 8.6 s with one thread. The policy: as many threads as there are cores the rest of the machine
# leaves free, re-read while the work runs.

THREADS_ENV = "EDITGAN_THREADS"     # "auto" (the default) or a fixed number of torch intra-op threads


@dataclass
class ThreadPolicy:
    mode: str                       # "auto" or "fixed"
    threads: int                    # fixed: the number; auto: the most it will use (the cores)
    cores: int
    steps: Dict[int, int] = field(default_factory=dict)     # auto: steps run with each thread count

    def describe(self) -> str:
        if self.mode == "fixed":
            return f"{self.threads} threads (fixed)"
        used = ", ".join(f"{n} thread{'s' if n > 1 else ''} x{k}" for n, k in sorted(self.steps.items()))
        return f"auto over {self.cores} cores: {used or 'no steps yet'}"


class _LoadMonitor(threading.Thread):
    """Samples the machine's busy CPU time (/proc/stat) minus this process's own every ``period`` seconds: the
    cores other processes use. ``free()``: cores left, rounded, at least 1."""

    def __init__(self, cores: int, period: float = 0.2):
        super().__init__(name="editgan-load-monitor", daemon=True)
        self.cores, self.period = cores, period
        self.others = 0.0
        self._hz = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        return sum(v) - v[3] - v[4], time.process_time(), time.monotonic()

    def free(self) -> int:
        return max(1, min(self.cores, int(self.cores - self.others + 0.5)))

    def run(self) -> None:
        prev = self._sample()
        while True:
            time.sleep(self.period)
            cur = self._sample()
            wall = cur[2] - prev[2]
            if wall > 0:
                others = max(0.0, ((cur[0] - prev[0]) / self._hz - (cur[1] - prev[1])) / wall)
                self.others = 0.5 * self.others + 0.5 * others      # smoothed over ~0.5 s
            prev = cur


_policy: Optional[ThreadPolicy] = None
_monitor: Optional[_LoadMonitor] = None
_local = threading.local()


def configure_threads(threads: Union[int, str, None] = None) -> ThreadPolicy:
    """Set the process's thread policy (entry points call it once): ``threads`` an int (fixed), "auto", or None
    for ``$EDITGAN_THREADS`` (default "auto"). Auto needs /proc/stat (Linux); elsewhere it is torch's default."""
    global _policy, _monitor

    value = str(threads if threads is not None else os.environ.get(THREADS_ENV, "auto")).strip().lower()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if value in ("", "0", "auto"):
        if not os.path.exists("/proc/stat"):
            _policy = ThreadPolicy("fixed", torch.get_num_threads(), cores)
            return _policy
        if _monitor is None:
            _monitor = _LoadMonitor(cores)
            _monitor.start()
        _policy = ThreadPolicy("auto", cores, cores)
    else:
        try:
            n = int(value)
        except ValueError:
            raise EditGANError(f"{THREADS_ENV} (or --threads) must be 'auto' or a number of threads, got {value!r}")
        if n < 1:
            raise EditGANError(f"{THREADS_ENV} (or --threads) must be at least 1, got {n}")
        n = min(n, cores)            # more threads than cores only slow torch down (and 100000 crashes it)
        _policy = ThreadPolicy("fixed", n, cores)
        torch.set_num_threads(n)
    return _policy


_interactive = {"active": 0, "until": 0.0}
_interactive_lock = threading.Lock()
INTERACTIVE_HOLD = 0.5      # seconds after an interactive call during which long work keeps a core free


@contextlib.contextmanager
def interactive():
    """Marks work a person is waiting for (a slider move, a preview). Under the auto policy, while such work runs
    in this process (and for INTERACTIVE_HOLD seconds after), the long loops of other threads (an edit, an
    embedding, branch training) run on one core fewer, so the interactive call is not queued behind them."""
    _local.interactive = True
    with _interactive_lock:
        _interactive["active"] += 1
    try:
        yield
    finally:
        _local.interactive = False
        with _interactive_lock:
            _interactive["active"] -= 1
            _interactive["until"] = time.monotonic() + INTERACTIVE_HOLD


_long_work = {"last": -1e9, "step": 0.0}
LONG_WORK_GAP = 0.25        # seconds since a long loop's last step (or 1.5 of its steps) that it counts as running
LONG_WORK_STEP_CAP = 2.0    # the longest step that stretches that time


def _long_work_running(now: float) -> bool:
    return now - _long_work["last"] < max(LONG_WORK_GAP, 1.5 * _long_work["step"])


def _someone_waiting() -> bool:
    return _interactive["active"] > 0 or time.monotonic() < _interactive["until"]


def adapt_threads() -> None:
    """Called by the pipeline's loops before each step: under the auto policy, this thread's torch threads follow
    the cores other processes leave free, one fewer while :func:`interactive` work runs in another thread; and
    interactive work (a slider move) beside a running loop takes one fewer too, so each has its own core (a team
    of two beside the loop's thread would stall at its barriers; measured: 8 slider users beside an edit 183 ->
    156-160 ms, docs/results.md). Free when no policy is set (library use): nothing changes."""
    if _monitor is None or _policy is None or _policy.mode != "auto":
        return
    want = _monitor.free()
    now = time.monotonic()
    if not getattr(_local, "interactive", False):
        # The loop's step time (capped: a gap between two loops is not a step) sets how long it counts as running.
        _long_work["step"] = min(now - _long_work["last"], LONG_WORK_STEP_CAP)
        _long_work["last"] = now
        if want > 1 and _someone_waiting():
            want -= 1
    elif want > 1 and _long_work_running(now):
        want -= 1
    _policy.steps[want] = _policy.steps.get(want, 0) + 1
    if getattr(_local, "threads", None) != want:
        torch.set_num_threads(want)
        _local.threads = want
