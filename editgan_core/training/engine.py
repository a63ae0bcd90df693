"""The training engine shared by the GAN trainer (:mod:`editgan_core.training.gan`) and the renderer distiller
(:mod:`editgan_core.toyfaces.distill`): EMA of the generator, checkpoints, exact resume, export, progress.

A trainer subclasses :class:`TrainingLoop`, names the attributes that make up its state in ``state_attrs`` and
writes its own ``train_step`` (losses, data); everything else is here::

    loop.train_step()                          -> one progress record (dict)
    loop.run(out, kimg=..., minutes=..., snap_every=...)   # the time/step loop: progress, checkpoints, snapshots
    loop.save(out)                             -> out/ckpt.safetensors (atomic)
    loop.load(path) / loop.resume(path)        # exact: weights, optimisers, step, RNG streams, log
    loop.export_generator(dst, training={...}) # G_ema in the native format (checkpoints.save_native)
    export_discriminator(D, dst)               # dst/discriminator.safetensors
    ema_update(G_ema, G, beta)

A checkpoint is one safetensors file (format ``editgan-studio/training-state``): the tensors are the modules'
weights, the optimisers' state tensors and the torch generators' states; the JSON descriptor holds the config, the
step, the optimisers' param_groups and scalar state, the numpy RNG states and the log. Nothing in it is unpickled,
so a downloaded checkpoint cannot run code. Checkpoints written before (``ckpt.pt``, ``torch.save``) are still
read, with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError, EditGANError, UnsafePickleError
from ..loaders.checkpoints import save_native
from ..storage import files

CHECKPOINT_NAME = "ckpt.safetensors"
LEGACY_CHECKPOINT_NAME = "ckpt.pt"    # torch.save checkpoints of earlier versions (read only)
# In a legacy checkpoint the config's key said which trainer wrote it.
_LEGACY_CONFIG_KEYS = {"train_config": "editgan_core.training.gan", "distill_config": "editgan_core.toyfaces.distill"}

Record = Dict[str, Any]


def ema_update(ema: nn.Module, model: nn.Module, beta: float, *, buffers: bool = True) -> None:
    """ema <- beta * ema + (1 - beta) * model, parameter by parameter; ``buffers`` copies the buffers as they are."""
    with torch.no_grad():
        for p_ema, p in zip(ema.parameters(), model.parameters()):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        if buffers:
            for b_ema, b in zip(ema.buffers(), model.buffers()):
                b_ema.copy_(b)


def print_record(rec: Record) -> None:
    """The default progress callback: one JSON line per record."""
    print(json.dumps(rec), flush=True)


# ------------------------------------------------------------------------------------------------
# Checkpoint files.


@dataclass
class Checkpoint:
    """What a training checkpoint holds, whichever format it was read from."""

    path: Path
    trainer: str                                   # module that wrote it, e.g. "editgan_core.training.gan"
    config: Dict[str, Any]
    step: int
    log: List[Record] = field(default_factory=list)
    modules: Dict[str, Dict[str, torch.Tensor]] = field(default_factory=dict)    # name -> state dict
    optimizers: Dict[str, Dict[str, Any]] = field(default_factory=dict)          # name -> optimiser state dict
    generators: Dict[str, torch.Tensor] = field(default_factory=dict)            # name -> torch.Generator state
    rngs: Dict[str, Dict[str, Any]] = field(default_factory=dict)                # name -> numpy bit_generator state


def checkpoint_path(run_dir: Path) -> Path:
    """The checkpoint of a run folder: ``ckpt.safetensors``, else an earlier version's ``ckpt.pt``, else (for a
    new run) where ``ckpt.safetensors`` will be."""
    run_dir = Path(run_dir)
    new, old = run_dir / CHECKPOINT_NAME, run_dir / LEGACY_CHECKPOINT_NAME
    return old if (old.is_file() and not new.is_file()) else new


def _split_optimizer(name: str, sd: Dict[str, Any], tensors: Dict[str, torch.Tensor]) -> Dict[str, Any]:
    """An optimiser's state dict -> its JSON part; its tensors go into ``tensors`` as optim/<name>/<idx>/<key>."""
    scalars: Dict[str, Dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim/{name}/{idx}/{k}"] = v
            else:
                scalars.setdefault(str(idx), {})[k] = v
    order = [[idx, list(st)] for idx, st in sd["state"].items()]   # a list: the JSON is written with sorted keys
    return {"param_groups": sd["param_groups"], "scalars": scalars, "order": order}


def _join_optimizer(name: str, desc: Dict[str, Any], tensors: Dict[str, torch.Tensor]) -> Dict[str, Any]:
    """The inverse of :func:`_split_optimizer` (same entries in the same order)."""
    found: Dict[str, Dict[str, Any]] = {i: dict(v) for i, v in desc.get("scalars", {}).items()}
    prefix = f"optim/{name}/"
    for key, v in tensors.items():
        if key.startswith(prefix):
            idx, k = key[len(prefix):].split("/", 1)
            found.setdefault(idx, {})[k] = v
    order = desc.get("order") or [[int(i), sorted(found[i])] for i in sorted(found, key=int)]
    state = {int(i): {k: found[str(i)][k] for k in keys} for i, keys in order}
    # JSON gives lists where torch's optimisers keep tuples (betas).
    groups = [{k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in g.items()}
              for g in desc["param_groups"]]
    return {"state": state, "param_groups": groups}


def _read_legacy(path: Path) -> Checkpoint:
    """A ``torch.save`` checkpoint of an earlier version, read without running anything from it."""
    try:
        st = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- torch raises many types
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "Weights only load failed" in str(e) or "Unsupported global" in str(e):
            raise UnsafePickleError(f"{path.name} is not a plain training checkpoint: it asks for Python objects "
                                    f"a checkpoint does not need; it was refused and nothing was executed") from None
        raise CheckpointError(f"{path.name} is not a readable training checkpoint ({msg})") from None
    key = next((k for k in _LEGACY_CONFIG_KEYS if isinstance(st, dict) and k in st), None)
    if key is None:
        raise CheckpointError(f"{path.name} is not a training checkpoint of EditGAN Studio")
    try:
        ck = Checkpoint(path, _LEGACY_CONFIG_KEYS[key], dict(st[key]), int(st["step"]), list(st.get("log", [])))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path.name} is an incomplete training checkpoint ({type(e).__name__}: {e})") from None
    for name, v in st.items():
        if name in (key, "step", "log", "version", "torch_rng"):   # torch_rng: the global RNG, no longer used
            continue
        if isinstance(v, torch.Tensor) and v.dtype == torch.uint8:
            ck.generators[name] = v
        elif isinstance(v, dict) and "param_groups" in v and "state" in v:
            ck.optimizers[name] = v
        elif isinstance(v, dict) and "bit_generator" in v:
            ck.rngs[name] = v
        elif isinstance(v, dict) and all(isinstance(t, torch.Tensor) for t in v.values()):
            ck.modules[name] = dict(v)
    return ck


def _check_trainer(path: Path, trainer: str, expect: Optional[str]) -> None:
    if expect is not None and trainer != expect:
        raise CheckpointError(f"{path.name} is a checkpoint of {trainer}, not of {expect}")


def _locate(path: Path) -> Path:
    """A run folder or a checkpoint file -> the checkpoint file (it must exist)."""
    path = Path(path)
    if path.is_dir():
        path = checkpoint_path(path)
    if not path.is_file():
        raise EditGANError(f"no training checkpoint at {path}")
    return path


def read_config(path: Path, trainer: Optional[str] = None) -> Dict[str, Any]:
    """The config a checkpoint was trained with, without reading its tensors; ``trainer`` (e.g.
    ``"editgan_core.training.gan"``) refuses a checkpoint of another trainer."""
    path = _locate(path)
    if zipfile.is_zipfile(path):
        ck = _read_legacy(path)
        _check_trainer(path, ck.trainer, trainer)
        return ck.config
    meta = files.check(files.read_meta(path), files.TRAINING_STATE, path.name)
    if not isinstance(meta.get("config"), dict) or "trainer" not in meta:
        raise CheckpointError(f"{path.name} is an incomplete training checkpoint (no config)")
    _check_trainer(path, meta["trainer"], trainer)
    return meta["config"]


def read_checkpoint(path: Path, trainer: Optional[str] = None) -> Checkpoint:
    """Read a training checkpoint (a run folder, ``ckpt.safetensors`` or an earlier version's ``ckpt.pt``);
    ``trainer`` refuses a checkpoint of another trainer."""
    path = _locate(path)
    if zipfile.is_zipfile(path):
        ck = _read_legacy(path)
        _check_trainer(path, ck.trainer, trainer)
        return ck
    tensors, meta = files.load(path, files.TRAINING_STATE, float32=False)
    try:
        ck = Checkpoint(path, meta["trainer"], meta["config"], int(meta["step"]), list(meta.get("log", [])))
        for name in meta.get("modules", []):
            prefix = f"model/{name}/"
            ck.modules[name] = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        for name, desc in meta.get("optimizers", {}).items():
            ck.optimizers[name] = _join_optimizer(name, desc, tensors)
        for name in meta.get("generators", []):
            ck.generators[name] = tensors[f"rng/{name}"]
        ck.rngs = dict(meta.get("rngs", {}))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path.name} is an incomplete training checkpoint ({type(e).__name__}: {e})") from e
    _check_trainer(path, ck.trainer, trainer)
    return ck


def export_discriminator(D: nn.Module, dst: Path) -> Path:
    """``dst/discriminator.safetensors``: the trained D, read back by :func:`perceptual.load_discriminator`."""
    return files.save(Path(dst) / "discriminator.safetensors", files.DISCRIMINATOR, D.state_dict(),
                      {"discriminator": D.cfg.to_dict()})     # the key read by perceptual.load_discriminator


# ------------------------------------------------------------------------------------------------
# The loop.


class TrainingLoop:
    """Base of the trainers. A subclass sets ``cfg`` (a dataclass with ``batch``), ``G``, ``G_ema``, the
    attributes named in ``state_attrs`` (modules, optimisers, ``torch.Generator``s, numpy ``Generator``s),
    ``step`` and ``log``, and implements :meth:`train_step`."""

    trainer: ClassVar[str] = "editgan_core.training.engine"   # recorded in checkpoints and exports
    state_attrs: ClassVar[Tuple[str, ...]] = ()
    log_every: ClassVar[int] = 20                      # steps between progress records
    out: Optional[Path] = None                         # default folder of save()
    cfg: Any
    G: nn.Module
    G_ema: nn.Module
    step: int = 0
    log: List[Record]

    # -- what a subclass provides -------------------------------------------------------------------
    def train_step(self) -> Record:  # pragma: no cover - interface
        raise NotImplementedError

    def timing(self, seconds: float, steps: int) -> Record:
        """Fields a progress record gets for the last ``steps`` steps that took ``seconds``."""
        return {"sec_per_step": round(seconds / steps, 3), "img_per_sec": round(steps * self.cfg.batch / seconds, 1)}

    def annotate(self, rec: Record, snapshot_step: bool) -> None:
        """Add measurements to a progress record (``snapshot_step``: a checkpoint follows)."""

    def snapshot(self, out: Path, final: bool) -> None:
        """Write sample images next to a checkpoint (``final``: the last one of a run)."""

    # -- shared -------------------------------------------------------------------------------------
    @property
    def kimg(self) -> float:
        return self.step * self.cfg.batch / 1000

    def ema(self, beta: float, *, buffers: bool = True) -> None:
        ema_update(self.G_ema, self.G, beta, buffers=buffers)

    def _parts(self):
        for name in self.state_attrs:
            yield name, getattr(self, name)

    def save(self, folder: Optional[Path] = None) -> Path:
        """Write the whole training state to ``folder/ckpt.safetensors`` atomically; -> its path."""
        folder = Path(folder if folder is not None else self.out)
        tensors: Dict[str, torch.Tensor] = {}
        meta: Dict[str, Any] = {"trainer": self.trainer, "config": asdict(self.cfg), "step": self.step,
                                "log": self.log, "modules": [], "optimizers": {}, "generators": [], "rngs": {}}
        for name, obj in self._parts():
            if isinstance(obj, nn.Module):
                meta["modules"].append(name)
                tensors.update({f"model/{name}/{k}": v for k, v in obj.state_dict().items()})
            elif isinstance(obj, torch.optim.Optimizer):
                meta["optimizers"][name] = _split_optimizer(name, obj.state_dict(), tensors)
            elif isinstance(obj, torch.Generator):
                meta["generators"].append(name)
                tensors[f"rng/{name}"] = obj.get_state()
            elif isinstance(obj, np.random.Generator):
                meta["rngs"][name] = obj.bit_generator.state
            else:
                raise TypeError(f"{type(self).__name__}.{name}: cannot checkpoint a {type(obj).__name__}")
        return files.save(folder / CHECKPOINT_NAME, files.TRAINING_STATE, tensors, meta)

    def load(self, path) -> Checkpoint:
        """Restore the state saved by :meth:`save` (or an earlier version's ``ckpt.pt``) exactly."""
        ck = path if isinstance(path, Checkpoint) else read_checkpoint(path)
        _check_trainer(ck.path, ck.trainer, self.trainer)
        try:
            for name, obj in self._parts():
                if isinstance(obj, nn.Module):
                    obj.load_state_dict(ck.modules[name])
                elif isinstance(obj, torch.optim.Optimizer):
                    obj.load_state_dict(ck.optimizers[name])
                elif isinstance(obj, torch.Generator):
                    obj.set_state(ck.generators[name])
                elif isinstance(obj, np.random.Generator):
                    obj.bit_generator.state = ck.rngs[name]
        except KeyError as e:
            raise CheckpointError(f"{ck.path.name} lacks {e.args[0]!r} of the training state") from None
        except (RuntimeError, ValueError) as e:
            raise CheckpointError(f"{ck.path.name} does not fit this {type(self).__name__} "
                                  f"({str(e).splitlines()[0]})") from None
        self.step, self.log = ck.step, list(ck.log)
        return ck

    def resume(self, path: Path) -> Checkpoint:
        ck = self.load(path)
        print(f"resumed at step {self.step} ({self.kimg:.1f} kimg)", flush=True)
        return ck

    def summary(self) -> Record:
        """The training facts an export records: the config, steps and kimg."""
        return {**asdict(self.cfg), "steps": self.step, "kimg": self.kimg}

    def export_generator(self, dst: Path, training: Record) -> Path:
        return save_native(self.G_ema, dst, source={"format": "trained", "by": self.trainer},
                           extra={"training": training})

    def run(self, out: Path, *, kimg: float, minutes: Optional[float] = None, snap_every: int,
            callback: Callable[[Record], None] = print_record) -> None:
        """Train until ``kimg`` thousand images (or ``minutes`` of wall time): a progress record every
        ``log_every`` steps (appended to the log, passed to ``callback``), a checkpoint and a snapshot every
        ``snap_every`` steps and at the end."""
        out = Path(out)
        t0 = last = time.time()
        while self.step * self.cfg.batch < kimg * 1000:
            rec = self.train_step()
            if self.step % self.log_every == 0:
                now = time.time()
                rec.update(self.timing(now - last, self.log_every))
                last = now
                self.annotate(rec, self.step % snap_every == 0)
                self.log.append(rec)
                callback(rec)
            stop = minutes is not None and (time.time() - t0) > minutes * 60
            if self.step % snap_every == 0 or stop:
                self.save(out)
                self.snapshot(out, final=False)
            if stop:
                break
        self.save(out)
        self.snapshot(out, final=True)
