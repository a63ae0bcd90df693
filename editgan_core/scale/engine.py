"""The batch engine: one deterministic work list shared by the processes of a ``torchrun`` job -- or run by one
process without torchrun, the same code.

Each process (rank) takes every W-th item of the list (static sharding: items cost about the same). Every item's
output is written atomically under a name derived from the item (``Item.key``), so a rerun, or torchrun's elastic
restart (``--max-restarts``), skips what is done: no item is lost and none is written twice. A bad item (an
unreadable photo, no face) is recorded with its reason under ``.failures/`` and does not stop the job (a rerun tries it
again); the job ends
with one summary (items, failures and why, seconds per item) and ``failures.jsonl``.

torch.distributed is initialised from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``):
gloo on CPU, nccl on GPUs. Each rank uses its share of the machine's cores (cores / local ranks) unless the user
set ``--threads``, so 2 ranks on 2 cores do not oversubscribe.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from tqdm import tqdm

from ..errors import EditGANError
from ..runtime import configure_threads
from ..storage import files

JOB_FILE = ".job.json"               # the parameters of the job a folder belongs to (claim)
FAILURES = ".failures"                # one {key, reason} file per failed item, merged into failures.jsonl


@dataclass(frozen=True)
class Item:
    key: str                          # unique, safe as a file name: names the item's output
    value: object                     # what the job's process() takes


def named_items(named) -> List[Item]:
    """Items from (name, value) pairs in order, each named after its input; a name already taken (a latent and an
    unrelated image of the same name) gets '_' appended until it is free."""
    items, used = [], set()
    for name, value in named:
        while name in used:
            name += "_"
        used.add(name)
        items.append(Item(name, value))
    return items


@dataclass
class Ranks:
    rank: int = 0
    world: int = 1
    local_world: int = 1
    distributed: bool = False


@dataclass
class Summary:
    items: int                                   # in the whole job
    done_before: int                             # found done when this run started
    done_now: int                                # made by this run
    failures: List[Tuple[str, str]] = field(default_factory=list)   # (key, reason), the whole job's
    seconds: float = 0.0                         # wall time of this run
    item_seconds: float = 0.0                    # the ranks' working seconds per item made, averaged
    ranks: int = 1

    def text(self) -> str:
        lines = [f"{self.items} items: {self.done_now} made now, {self.done_before} done before, "
                 f"{len(self.failures)} failed; {self.seconds:.1f} s on {self.ranks} rank(s)"
                 + (f", {self.item_seconds:.3f} s per item per rank" if self.done_now else "")]
        lines += [f"  failed: {k}: {why}" for k, why in self.failures[:20]]
        if len(self.failures) > 20:
            lines.append(f"  ... and {len(self.failures) - 20} more (failures.jsonl)")
        return "\n".join(lines)


def ranks() -> Ranks:
    """This process's place in the job: torchrun's environment, initialising torch.distributed once; without
    torchrun, one process."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Ranks()
    if not dist.is_initialized():
        if torch.cuda.is_available():          # one GPU per local rank
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        # Keys per restart: after an elastic restart (torchrun --max-restarts) the new group must not read the
        # addresses the killed group left in the store (gloo then fails to connect, at random).
        store, rank, world = next(dist.rendezvous("env://"))
        store = dist.PrefixStore(f"editgan/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", store=store, rank=rank,
                                world_size=world)
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_WORLD_SIZE", world)), True)


def share_threads(r: Ranks, threads: Optional[str]) -> None:
    """Threads per rank: the user's ``--threads``, else this machine's cores shared by its ranks."""
    if threads is not None or r.local_world <= 1:
        configure_threads(threads)
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    configure_threads(max(1, cores // r.local_world))


def run(items: Sequence[Item], process: Callable[[Item], None], is_done: Callable[[Item], bool], out: Path, *,
        desc: str = "items", threads: Optional[str] = None) -> Summary:
    """Run ``process`` on this rank's share of ``items`` that ``is_done`` does not find done (items that failed in
    an earlier run are tried again). ``process`` writes its item's output atomically; an EditGANError it raises is
    the item's failure, recorded with its reason. -> the job's summary (every rank returns it)."""
    r = ranks()
    share_threads(r, threads)
    out = Path(out)
    keys = [it.key for it in items]
    if len(set(keys)) != len(keys):
        raise EditGANError("the work list names an output twice: item keys must be unique")
    mine = list(items[r.rank::r.world])
    failed_dir = out / FAILURES
    todo = [it for it in mine if not is_done(it)]         # items that failed before are tried again
    before = len(mine) - len(todo)
    bar = tqdm(total=len(mine), initial=before, position=r.rank,
               desc=f"{desc}, rank {r.rank}/{r.world} ({torch.get_num_threads()} threads)",
               file=sys.stderr, dynamic_ncols=True, mininterval=1.0)
    total = tqdm(total=len(items), desc=f"{desc}, the job", position=r.world, file=sys.stderr,
                 dynamic_ncols=True, mininterval=1.0) if r.rank == 0 and r.world > 1 else None
    t0, work, made, last = time.perf_counter(), 0.0, 0, 0.0
    for it in todo:
        t = time.perf_counter()
        try:
            process(it)
            made += 1
            (failed_dir / f"{it.key}.json").unlink(missing_ok=True)
        except EditGANError as e:
            files.write_json(failed_dir / f"{it.key}.json", {"key": it.key, "reason": str(e)})
        work += time.perf_counter() - t
        bar.update(1)
        if total is not None and time.perf_counter() - last > 2.0:     # the job's progress, as the disk shows it
            last = time.perf_counter()
            total.n = sum(1 for i in items if is_done(i))
            total.refresh()
    bar.close()
    mine_stats = [before, made, work]
    stats = [mine_stats]
    if r.distributed:
        stats = [None] * r.world
        dist.all_gather_object(stats, mine_stats)
    if total is not None:
        total.n = sum(1 for i in items if is_done(i))
        total.close()
    records = [json.loads(p.read_text()) for p in failed_dir.glob("*.json")] if failed_dir.is_dir() else []
    failures = sorted((rec["key"], rec["reason"]) for rec in records)
    if r.rank == 0 and not failures:
        (out / "failures.jsonl").unlink(missing_ok=True)          # an earlier run's, all since made
    made_all = sum(s[1] for s in stats)
    summary = Summary(len(items), sum(s[0] for s in stats), made_all, failures, time.perf_counter() - t0,
                      sum(s[2] for s in stats) / made_all if made_all else 0.0, r.world)
    if r.rank == 0 and failures:
        files.write_text(out / "failures.jsonl", "".join(json.dumps({"key": k, "reason": why}) + "\n"
                                                         for k, why in failures))
    return summary


def claim(out: Path, spec: dict) -> None:
    """Mark ``out`` as the folder of the job ``spec`` (its parameters): a rerun of the same job resumes there; any
    other job is refused before anything is written (every rank reads the same file, so all refuse alike)."""
    out = Path(out)
    path = out / JOB_FILE
    if path.is_file():
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            found = None
        if found != json.loads(json.dumps(spec)):
            raise EditGANError(f"{out} holds the outputs of another job (its .job.json differs: other model, seeds, "
                               f"vectors or settings); choose a new folder, or rerun that job to complete it")
    elif out.exists() and any(out.iterdir()):
        raise EditGANError(f"{out} is not empty and holds no job: choose a new or empty folder")
    barrier()
    if ranks().rank == 0 and not path.is_file():
        files.write_json(path, spec)
    barrier()


def barrier() -> None:
    """Wait for every rank (nothing without torchrun)."""
    if dist.is_initialized():
        dist.barrier()


def finish() -> None:
    """End this process's part in the job."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
