"""The bf16 fast path for what is interactive: slider previews, the preview grid.

The float32 generator already runs at the CPU's float32 peak (docs/results.md, issue #2), so the next factor can
only come from lower precision. ``fast_synthesis(G, ws)`` renders with a bfloat16 copy of the synthesis network
(made once per generator, half the size of the float32 one) on CPUs whose instruction set has bf16 dot
products (AVX512-BF16 or AMX) and on CUDA devices that support bf16; it returns float32 images and the float32
path everywhere else. What must be exact -- CLI ``generate``, exports, the parity with official outputs, every
optimisation -- never comes through here.

Switch: ``EDITGAN_BF16=0`` (or ``python app.py --no-bf16``) turns it off for the process, ``EDITGAN_BF16=1``
forces it on even without bf16 instructions (slower there; tests use it); unset, it is automatic. ``enabled()``
says whether it is on for a device. Speed and the image difference to float32 (PSNR) at 64, 256 and 512 px:
``python bench/precision.py`` (docs/results.md).
"""

from __future__ import annotations

import copy
import functools
import os
import threading
import weakref

import torch

from ..errors import InputError

BF16_ENV = "EDITGAN_BF16"          # "0": float32 everywhere; "1": bf16 everywhere; unset: where the hardware has it

_copies: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _mode_from_env() -> str:
    value = os.environ.get(BF16_ENV, "").strip().lower()
    return "off" if value in ("0", "off", "false", "no") else "on" if value in ("1", "on", "true", "yes") else "auto"


_switch = {"mode": _mode_from_env()}


@functools.lru_cache(maxsize=None)
def cpu_has_bf16() -> bool:
    """True when this CPU has bf16 dot-product instructions (Linux: /proc/cpuinfo flags)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool({"avx512_bf16", "amx_bf16"} & flags)
    except OSError:
        pass
    return False


def set_mode(mode: str) -> None:
    """The fast path for the whole process: "auto" (where the hardware has bf16), "off" (the app's --no-bf16) or
    "on" (everywhere)."""
    if mode not in ("auto", "on", "off"):
        raise InputError(f"bf16 mode must be auto, on or off, not {mode!r}")
    _switch["mode"] = mode


def enabled(device: torch.device) -> bool:
    """Whether ``fast_synthesis`` uses bf16 on ``device``."""
    if _switch["mode"] != "auto":
        return _switch["mode"] == "on"
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_bf16()


def bf16_synthesis(G):
    """The bf16 copy of G.synthesis (made once, kept while G lives)."""
    with _lock:
        return _bf16_copy(G)


def _bf16_copy(G):
    """bf16_synthesis, with _lock held."""
    net = _copies.get(G)
    if net is None:
        net = copy.deepcopy(G.synthesis).to(torch.bfloat16).eval().requires_grad_(False)
        _copies[G] = net
    return net


MAX_BATCH = 16       # most latents one shared pass renders


class _SharedPasses:
    """Renders the latents of concurrent callers (users' slider moves, served by different threads) in shared
    passes: a caller that finds no pass running renders at once, alone (no added wait); callers that arrive while
    one runs are rendered together in the next pass, by one of them. One pass at batch 8 costs ~2.5 times a
    pass at batch 1 on the 64-px model (docs/results.md, issue #14), so eight users cost a third of their
    separate passes. Results are the same as separate passes up to bf16 rounding of the batched kernels."""

    def __init__(self, render):
        self.render = render
        self.cond = threading.Condition()
        self.waiting: list = []
        self.busy = False
        self.batches: dict = {}          # batch size -> passes run (read by tests and the bench)

    def __call__(self, ws: torch.Tensor) -> torch.Tensor:
        job = {"ws": ws}
        with self.cond:
            self.waiting.append(job)
            while self.busy and "out" not in job:
                self.cond.wait()
            if "out" in job:
                return _result(job)
            # This caller renders its own latents and the earliest others' (jobs hold tensors: found by identity).
            del self.waiting[next(i for i, j in enumerate(self.waiting) if j is job)]
            jobs, n = [job], len(ws)
            while self.waiting and n + len(self.waiting[0]["ws"]) <= MAX_BATCH:
                jobs.append(self.waiting.pop(0))
                n += len(jobs[-1]["ws"])
            self.busy = True
        try:
            out = self.render(torch.cat([j["ws"] for j in jobs]) if len(jobs) > 1 else jobs[0]["ws"])
            for j, part in zip(jobs, out.split([len(j["ws"]) for j in jobs])):
                j["out"] = part
        except BaseException as e:           # every caller of this pass gets the error
            for j in jobs:
                j["out"] = e
        finally:
            with self.cond:
                self.busy = False
                self.batches[len(jobs)] = self.batches.get(len(jobs), 0) + 1
                self.cond.notify_all()
        return _result(job)


def _result(job):
    if isinstance(job["out"], BaseException):
        raise job["out"]
    return job["out"]


_shared: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def shared_passes(G) -> _SharedPasses:
    """G's pass sharer for the bf16 path (made once, kept while G lives)."""
    with _lock:
        sp = _shared.get(G)
        if sp is None:
            # Activation scaling (not per-sample weights) also at batch 1: in bf16 it is the faster form.
            net = _bf16_copy(G)
            sp = _shared[G] = _SharedPasses(lambda ws: net(ws, fused=False))
        return sp


def fast_synthesis(G, ws: torch.Tensor) -> torch.Tensor:
    """Images [N, C, R, R] (float32) of W+ ``ws``: bf16 where :func:`enabled`, else exactly ``G.synthesis``.
    Concurrent calls for the same G share passes (:class:`_SharedPasses`).

    The bf16 copy is made on first use and kept while G lives; a generator whose weights change afterwards
    (pivotal tuning) must call :func:`forget` first."""
    dev = G.w_avg.device
    with torch.no_grad():
        if not enabled(dev):
            return G.synthesis(ws.to(dev))
        return shared_passes(G)(ws.to(dev, torch.bfloat16)).float()


def forget(G) -> None:
    """Drop G's bf16 copy (after its weights changed)."""
    with _lock:
        _copies.pop(G, None)
        _shared.pop(G, None)
