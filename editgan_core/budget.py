"""Memory as a budget: what the process may still use, what a long action will need, and the one check.

A free CPU Space has 2 cores and 16 GB; a process that goes past its limit is killed by the kernel, with every
user's session in it. So before a long action starts, its peak is estimated from the model's own sizes and
compared with the memory free now; an action that would not fit is shrunk where a smaller form exists (an exact
full-size mask edit moves to the working resolution, refinement takes fewer images per pass) or refused with a
message that says what it needs, what is free and what to do -- before any work, so nothing the user had is lost.

Free memory is the smallest of: the container's limit minus its usage (cgroup v2 or v1), the machine's
MemAvailable, and ``$EDITGAN_MEMORY_LIMIT`` (e.g. ``16G``: a Space's size, for a machine larger than the Space)
minus this process's resident size; to each, the memory this process has freed but still holds (glibc's free
blocks, ``mallinfo2``) is added back, since the next action reuses it. The estimates count feature and activation
bytes (:func:`feature_bytes`) times factors measured at full size (``BUDGET`` in settings; bench/edit_step.py and
bench/branch_training.py report the peaks they are checked against, docs/results.md).
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Optional, Tuple

from .errors import EditGANError, MemoryBudgetError
from .runtime import libc
from .settings import BUDGET

LIMIT_ENV = "EDITGAN_MEMORY_LIMIT"
GiB = 1 << 30


def _read(path: str) -> Optional[str]:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def parse_size(text: str) -> int:
    """'16G', '1500M', '2.5GiB', '123456' (bytes) -> bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)(i?[bB])?\s*", str(text))
    if not m:
        raise EditGANError(f"${LIMIT_ENV}: {text!r} is not a size (e.g. 16G, 1500M)")
    return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " "))


def rss_bytes() -> int:
    status = _read("/proc/self/status") or ""
    m = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(m.group(1)) * 1024 if m else 0


def held_free_bytes() -> int:
    """Memory this process freed but keeps for reuse (glibc's free blocks; 0 where unknown)."""
    c = libc()
    if c is None:
        return 0

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                   "fsmblks", "uordblks", "fordblks", "keepcost")]

    try:
        c.mallinfo2.restype = MallInfo2
        return int(c.mallinfo2().fordblks)
    except AttributeError:      # glibc before 2.33, or another C library
        return 0


def available_bytes() -> int:
    """What this process may still allocate without being killed (see the module docstring)."""
    candidates = []
    meminfo = _read("/proc/meminfo") or ""
    m = re.search(r"MemAvailable:\s+(\d+) kB", meminfo)
    if m:
        candidates.append(int(m.group(1)) * 1024)
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit, usage = _read(limit_file), _read(usage_file)
        if limit and usage and limit.isdigit() and usage.isdigit() and int(limit) < (1 << 60):
            candidates.append(int(limit) - int(usage))
            break
    if os.environ.get(LIMIT_ENV):
        candidates.append(parse_size(os.environ[LIMIT_ENV]) - rss_bytes())
    if not candidates:
        return 1 << 62        # nothing to go by (not Linux): no limit is enforced
    return max(0, min(candidates)) + held_free_bytes()


# ----------------------------------------------------------------------------------------------------------
# Estimates: bytes an action needs beyond what is already loaded.


def feature_bytes(G, up_to: Optional[int] = None, *, above: int = 0) -> int:
    """float32 bytes of one image's synthesis features at resolutions in (above, up_to]."""
    top = up_to or G.img_resolution
    return 4 * sum(c * r * r for c, r in zip(G.feature_channels(), G.feature_resolutions()) if above < r <= top)


def edit_bytes(G, work: int, batch: int = 1) -> int:
    """Peak of a mask edit or refinement optimising ``batch`` images with the synthesis stopped at ``work``: the
    pass with gradients up to ``work``, the finer levels' features kept in float16, and the no-gradient full
    passes before and after (their features)."""
    R = G.img_resolution
    grad = BUDGET.grad_factor * feature_bytes(G, work)
    fixed = feature_bytes(G, above=work) // 2 if work < R else 0
    return int(BUDGET.overhead + batch * (grad + fixed + BUDGET.forward_factor * feature_bytes(G)))


def embed_bytes(G, batch: int = 1) -> int:
    """Peak of embedding ``batch`` images (a pass with gradients at full size)."""
    return int(BUDGET.overhead + batch * BUDGET.embed_factor * feature_bytes(G))


def training_bytes(G, members: int, hidden: Tuple[int, int]) -> int:
    """Peak of branch training, beyond the model: one image's features while the store is written, or one chunk
    of the dense evaluation (its first-layer activations and their copies), whichever is larger. It does not grow
    with the number of labelled images."""
    write = BUDGET.forward_factor * feature_bytes(G)
    evaluate = BUDGET.eval_factor * BUDGET.eval_chunk * members * hidden[0] * 4
    return int(BUDGET.overhead + max(write, evaluate))


# ----------------------------------------------------------------------------------------------------------
# The checks.


def _gb(n: int) -> str:
    return f"{n / GiB:.1f} GB"


def fits(need: int, free: Optional[int] = None) -> bool:
    return need <= BUDGET.usable * (available_bytes() if free is None else free)


def require(need: int, what: str, advice: str) -> None:
    """Refuse ``what`` before it starts when ``need`` bytes are not free."""
    free = available_bytes()
    if not fits(need, free):
        raise MemoryBudgetError(f"{what} would need about {_gb(need)} of memory and {_gb(free)} is free: {advice}")


def plan_edit(G, work: int, batch: int = 1) -> Tuple[int, int, str]:
    """The working resolution and batch an edit can afford -> (work, batch, note: "" when nothing was shrunk).
    What was asked is kept when it fits; otherwise the working resolution halves (down to
    ``BUDGET.smallest_work``), then the batch. Refused when one image at the smallest does not fit."""
    from .pipeline.editing import work_resolution_for  # here: the editing module imports this one

    free = available_bytes()
    asked = (work, batch)
    options = [work] + [r for r in sorted(G.cfg.block_resolutions, reverse=True)
                        if BUDGET.smallest_work <= r < work and work_resolution_for(G, r) == r]
    for b in _halvings(batch):
        for w in options:
            if fits(edit_bytes(G, w, b), free):
                note = "" if (w, b) == asked else (
                    f"memory: {_gb(edit_bytes(G, *asked))} needed for {asked[0]} px x {asked[1]}, {_gb(free)} free; "
                    f"optimised at {w} px, {b} image(s) per pass")
                return w, b, note
    raise MemoryBudgetError(f"an edit of this {G.img_resolution}-px model needs at least "
                            f"{_gb(edit_bytes(G, options[-1], 1))} of memory and {_gb(free)} is free: close other "
                            f"work (or another user's edit may be running) and try again")


def _halvings(n: int):
    while n >= 1:
        yield n
        n //= 2


def require_disk(need: int, folder: Optional[os.PathLike], what: str) -> None:
    """Refuse ``what`` when its scratch files would not fit in ``folder`` (default: the temp folder)."""
    where = Path(folder or tempfile.gettempdir())
    free = shutil.disk_usage(where).free
    if need > BUDGET.usable * free:
        raise MemoryBudgetError(f"{what} writes about {_gb(need)} of scratch files to {where} and {_gb(free)} is "
                                f"free there: free some disk, or use fewer labelled images")
