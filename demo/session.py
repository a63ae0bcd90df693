"""One user's studio session, without any Gradio import: the image, its edits, the sliders and the history.

Every public method of :class:`Session` is one UI action. It takes plain values (numpy arrays, strings, numbers)
and returns plain values; a user's mistake comes back as :class:`~editgan_core.errors.EditGANError` with a
readable message and leaves the session exactly as it was. Models come from the process-wide
:class:`demo.model.Studio` (loaded once per process, never per user); a Session holds only its own latents,
images, vectors and history, so sessions never see each other's state.

Long actions (embed, edit, train) have a plain form and a streamed one (``embed_stream``, ``edit_stream``,
``train_stream``: iterate for :class:`demo.streaming.Progress` items, then a ``Done``); leaving a stream early
stops the action.

The history is a list of steps (one per action: sample, embed, mask edit, slider setting, undo target); the
current step is what is shown, ``undo``/``redo`` move along it, and any step can be exported (PNG, mask PNG,
latent).
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from PIL import Image

from demo import streaming
from demo.annotating import Annotating
from demo.photos import Photos
from demo.records import Annotation, Step, Upload
from editgan_core import images_to_uint8
from editgan_core.errors import EditGANError
from editgan_core.models.fast import fast_synthesis
from editgan_core.models.generator import generate
from editgan_core.pipeline.apply import apply_vectors
from editgan_core.pipeline.editing import edit_from_mask
from editgan_core.pipeline.embed import save_tuning
from editgan_core.pipeline.labeling import class_palette
from editgan_core.runtime import interactive
from editgan_core.settings import APPLY, EDIT, SAMPLE, check_refine_steps, check_scale
from editgan_core.storage.latents import photo_record, save_latent
from editgan_core.storage.masks import decode_mask, encode_mask
from editgan_core.storage.vectors import check_name, file_stem, load_vector, save_vector

MAX_HISTORY = 200
HISTORY_BYTES = 256 * 2 ** 20


class Session(Photos, Annotating):
    """Per-user state plus the actions on it. ``studio`` is shared; everything else belongs to this user."""

    def __init__(self, studio, model_ref: str = ""):
        self.studio = studio
        self.model_ref = model_ref
        self.steps: List[Step] = []
        self.pos = -1
        self.photo: Optional[np.ndarray] = None          # the prepared photo being embedded (for PSNR)
        self.upload: Optional[Upload] = None             # the uploaded photo and its faces (re-cut on moves)
        self.source: Optional[tuple] = None              # (the photo as uploaded, RGB, the Crop embedded)
        self.photo_step: Optional[Step] = None           # the step that embedded it (paste-back's reference)
        self._handed: Optional[tuple] = None             # (step, photo step, HandBack): the last hand-back
        self.download_dirs: List[Path] = []              # this session's download folders (removed with it)
        self.vectors: Dict[str, object] = {}             # name -> EditVector (starter, library and own)
        self.last_edit = None                            # EditResult of the last mask edit (for "save vector")
        self.refine_steps = 0
        self.stop_event = threading.Event()
        self.annotations: List[Annotation] = []
        self.branch = None                               # a branch trained in this session (Annotate tab)
        self.branch_training: dict = {}                  # its training record (images, held-out mIoU, steps)
        self.class_names: Optional[List[str]] = None     # edited class names for annotation
        self.labeler_choice: Optional[tuple] = None       # (Labeler, ClassMap) the user chose; else the model's parser

    def __deepcopy__(self, memo) -> "Session":
        """gr.State deep-copies its initial value once per user: each user gets a new, empty session over the
        same process-wide studio (models are never copied)."""
        return Session(self.studio, self.model_ref)

    def forget(self) -> None:
        """The session ends (it expired, or the page closed for good): its download folders go with it."""
        for d in self.download_dirs:
            shutil.rmtree(d, ignore_errors=True)
        self.download_dirs.clear()

    # -- model ----------------------------------------------------------------------------------------------
    @property
    def assets(self):
        return self.studio.assets(self.model_ref)

    def set_model(self, ref: str) -> str:
        """Switch to a model (loaded once per process); the image history starts afresh. -> description."""
        assets = self.studio.assets(ref)          # raises a clear error before anything is changed
        self.model_ref = assets.ref
        self.steps, self.pos, self.photo, self.last_edit = [], -1, None, None
        self.source = self.photo_step = self.upload = None
        self.annotations, self.branch, self.labeler_choice = [], None, None
        self.vectors = {v.name: v for v in assets.vectors}
        return self.studio.describe(assets.ref)

    def use_model(self, ref: str) -> "Session":
        """Make sure the session is on model ``ref`` (switching, which starts a new history, if it is another)."""
        ref = (ref or "").strip()
        if ref and ref != self.model_ref:
            self.set_model(ref)
        if not self.model_ref:
            raise EditGANError("choose a model first")
        return self

    def current_branch(self):
        return self.branch if self.branch is not None else self.assets.branch

    def class_table(self) -> Tuple[List[str], List[Tuple[int, int, int]]]:
        """The part classes being edited or annotated: the branch's; without a branch, those of the parser that
        fits the model (its labels through the default class map), else the ToyFaces parts."""
        b = self.current_branch()
        if b is not None:
            return list(b.cfg.class_names), list(b.cfg.palette)
        names, palette = self.assets.classes
        lab = self.labeler()
        if lab is not None:
            names = lab[1].classes()
            palette = class_palette(names, base=dict(zip(*self.assets.classes)))
        if self.class_names and len(self.class_names) == len(names):
            names = list(self.class_names)
        return names, palette

    # -- the current step -----------------------------------------------------------------------------------
    @property
    def current(self) -> Step:
        if self.pos < 0:
            raise EditGANError("no image yet: generate a sample or upload and embed a photo first")
        return self.steps[self.pos]

    def labels_of(self, step: Optional[Step] = None) -> Optional[np.ndarray]:
        """The step's segmentation, computed on first use (slider steps skip it: a slider move is one generator
        pass). None when the model has no branch."""
        step = self.current if step is None else step
        if step.labels is None and self.current_branch() is not None:
            image, step.labels = self._render(step.ws, self._G(step))
            if not step.exact:
                step.image, step.exact = image, True
        return step.labels

    def exact_image(self, step: Optional[Step] = None) -> np.ndarray:
        """The step's image in float32 (a slider preview drawn by the bf16 fast path is re-rendered once)."""
        step = self.current if step is None else step
        if not step.exact:
            step.image, labels = self._render(step.ws, self._G(step))
            step.exact, step.labels = True, step.labels if step.labels is not None else labels
        return step.image

    def _G(self, step: Optional[Step] = None):
        """The generator a step renders with: its photo's pivotal-tuned copy, else the model's."""
        step = self.current if step is None else step
        return self._tuned_or_model(step.tuning if step is not None else None)

    def _tuned_or_model(self, tuning):
        return tuning.G if tuning is not None else self.assets.G

    def _render(self, ws: torch.Tensor, G) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        branch = self.current_branch()
        with torch.no_grad():
            if branch is not None:
                img, feats = G.synthesis(ws, return_features=True)
                labels = branch.predict(feats)[0].cpu().numpy()
            else:
                img, labels = G.synthesis(ws), None
        return images_to_uint8(img)[0].cpu().numpy(), labels

    def _push(self, what: str, ws: torch.Tensor, *, anchor: Optional[torch.Tensor] = None,
              scales: Optional[Dict[str, float]] = None, image=None, labels=None, replace: bool = False,
              exact: bool = True, tuning=None, edited: Tuple[str, ...] = ()) -> Step:
        ws = ws.detach().to(self.assets.G.w_avg.device).float()
        if image is None:
            image, labels, exact = *self._render(ws, self._tuned_or_model(tuning)), True
        step = Step(what, ws, image, labels, (ws if anchor is None else anchor).detach(), dict(scales or {}), exact,
                    tuning, tuple(sorted(set(edited))))
        if replace and self.pos >= 0:
            self.steps[self.pos] = step
            del self.steps[self.pos + 1:]          # moving a slider again after an undo drops the redo branch
        else:
            del self.steps[self.pos + 1:]          # a new action drops the redo branch
            self.steps.append(step)
            # At most MAX_HISTORY steps and about HISTORY_BYTES of images (42 steps of a 1024-px model).
            keep = max(2, min(MAX_HISTORY, HISTORY_BYTES // (2 * step.image.nbytes)))
            if len(self.steps) > keep:
                del self.steps[:len(self.steps) - keep]
            self.pos = len(self.steps) - 1
        return step

    # -- image: a sample (photos: demo.photos) ------------------------------------------------------------------
    def sample(self, seed: int, truncation: float = SAMPLE.truncation, class_idx: Optional[int] = None) -> Step:
        """A generator sample, exactly as NVIDIA's generate.py renders seed ``seed`` (with ``class_idx`` for a
        conditional model)."""
        a = self.assets
        seed, psi = int(seed), float(truncation)
        if not 0 <= seed <= SAMPLE.max_seed:
            raise EditGANError(f"the seed must be between 0 and {SAMPLE.max_seed}")
        lo, hi = SAMPLE.truncation_range
        if not lo <= psi <= hi:
            raise EditGANError(f"truncation psi must be between {lo:g} and {hi:g}")
        if a.G.c_dim:
            if class_idx is None or not 0 <= int(class_idx) < a.G.c_dim:
                raise EditGANError(f"this model is conditional: choose a class between 0 and {a.G.c_dim - 1}")
            class_idx = int(class_idx)
        else:
            class_idx = None
        ws = generate(a.G, [seed], class_idx=class_idx, truncation_psi=psi).ws
        self.photo = self.source = self.photo_step = None
        what = f"sample seed {seed}, psi {psi:.2f}" + (f", class {class_idx}" if class_idx is not None else "")
        return self._push(what, ws)

    def stop(self) -> None:
        self.stop_event.set()

    # -- masks ----------------------------------------------------------------------------------------------
    def mask_rgb(self, labels: Optional[np.ndarray] = None) -> np.ndarray:
        labels = self.labels_of() if labels is None else labels
        if labels is None:
            raise EditGANError("this model has no segmentation branch yet: annotate a few images and train one "
                               "in the Annotate tab")
        return encode_mask(labels, self.class_table()[1])

    def overlay(self, alpha: float = 0.5) -> np.ndarray:
        s = self.current
        if self.labels_of(s) is None:
            return s.image
        seg = self.mask_rgb().astype(np.float32)
        return (s.image * (1 - alpha) + seg * alpha).astype(np.uint8)

    def decode_painted(self, rgb: np.ndarray, alpha: Optional[np.ndarray] = None,
                       base: Optional[np.ndarray] = None) -> Tuple[np.ndarray, str]:
        """A painted mask (any size: resized to the model's by nearest neighbour) -> labels and a note. With
        ``base`` labels, only painted pixels (alpha > 0) count: the rest keep their base label."""
        R = self.assets.G.img_resolution
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
            raise EditGANError(f"the mask must be an RGB(A) image, got an array of shape {rgb.shape}")
        if rgb.shape[2] == 4 and alpha is None:
            alpha, rgb = rgb[..., 3], rgb[..., :3]
        if rgb.shape[:2] != (R, R):
            h, w = rgb.shape[:2]
            if h != w:
                raise EditGANError(f"the mask is {w}x{h}; it must be square ({R}x{R} for this model)")
            idx = ((np.arange(R) + 0.5) * h / R).astype(int)
            rgb = rgb[idx][:, idx]
            alpha = None if alpha is None else np.asarray(alpha)[idx][:, idx]
        names, palette = self.class_table()
        labels, note = decode_mask(rgb, palette, alpha, names)
        if base is not None and alpha is not None:
            painted = np.asarray(alpha) > 0
            labels = np.where(painted, labels, base).astype(np.uint8)
            if not painted.any():
                note = "nothing was painted"
        return labels, note

    # -- mask edit ------------------------------------------------------------------------------------------
    def edit(self, new_labels: np.ndarray, *, steps: int = EDIT.steps, progress: Optional[Callable] = None):
        """Run the mask edit from the current step; the result becomes a new step. -> EditResult."""
        branch = self.current_branch()
        if branch is None:
            raise EditGANError("this model has no segmentation branch: train one in the Annotate tab first")
        s = self.current
        self.stop_event.clear()
        res = edit_from_mask(self._G(s), branch, s.ws, new_labels, old_mask=self.labels_of(s), steps=int(steps),
                             generator=self.assets.identity, distance=self.assets.distance, progress=progress,
                             should_stop=self.stop_event.is_set)
        names = branch.cfg.class_names
        if not res.stopped and float(res.delta.abs().max()) == 0.0:
            raise EditGANError(f"in {res.steps} steps the optimisation found nothing better than the unchanged image "
                               f"(the painted change of {', '.join(names[c] for c in res.classes)} may be too "
                               f"large or implausible for this model): paint a smaller change or use more steps")
        if self.photo is not None and self.photo_in_history():
            res.quality = dataclasses.replace(res.quality, embedding_psnr=self.psnr_to_photo(self.photo_step.image))
        self.last_edit = res
        what = (f"mask edit of {', '.join(names[c] for c in res.classes)} ({res.steps} steps"
                f"{', stopped' if res.stopped else ''})")
        self._push(what, res.ws, image=images_to_uint8(res.image)[0].cpu().numpy(), labels=res.labels,
                   tuning=s.tuning, edited=s.edited + tuple(res.vector.classes))
        return res

    def edit_stream(self, new_labels: np.ndarray, *, steps: int = EDIT.steps) -> Iterator:
        def work(report):
            def tick(step, total, loss, img):
                image = None if img is None else images_to_uint8(img)[0].cpu().numpy()
                report(streaming.Progress(step, total, f"step {step}/{total}, loss {loss:.4f}", image))
            return self.edit(new_labels, steps=steps, progress=tick)
        return streaming.run(work, self.stop)

    def save_vector(self, name: str, *, to_library: bool = True) -> Tuple[object, Optional[Path], str]:
        """The last mask edit's delta as a named vector (kept in the session; also in the user library). A name
        that is taken -- by a starter vector, a vector of this session or a file in the library -- is never
        overwritten: the vector is saved as "name (2)" (or the next free number) and the note says so.
        -> (vector, its file or None, note)."""
        if self.last_edit is None:
            raise EditGANError("apply a mask edit first: a vector is the latent change of an edit")
        wanted = check_name(name)
        library = self.studio.library(self.model_ref) if to_library and self.studio.persist else None
        name = self._free_name(wanted, library)
        note = "" if name == wanted else f"{wanted!r} is taken (a starter vector or one you saved): saved as {name!r}"
        vec = dataclasses.replace(self.last_edit.vector, name=name,
                                  extra={**self.last_edit.vector.extra, "source": "editgan-studio app",
                                         "quality": self.last_edit.quality.as_dict()})
        path = save_vector(vec, library) if library is not None else None
        self.vectors[name] = vec
        return vec, path, note

    # -- vectors and sliders --------------------------------------------------------------------------------
    def vector_names(self) -> List[str]:
        return list(self.vectors)

    def _free_name(self, wanted: str, library: Optional[Path] = None) -> str:
        """``wanted``, or "wanted (2)", "wanted (3)", ... : the first name no vector of this session (starters
        included) and no file in ``library`` has."""
        def taken(n: str) -> bool:
            return (any(v.lower() == n.lower() for v in self.vectors)
                    or (library is not None and (library / f"{file_stem(n)}.safetensors").exists()))
        name, k = wanted, 2
        while taken(name):
            name = check_name(f"{wanted[:58]} ({k})")
            k += 1
        return name

    def add_vector_file(self, path) -> object:
        """An uploaded vector (checked against this model); under a name that is taken it comes in as "name (2)"
        rather than hiding the vector that has it."""
        vec = load_vector(path, expect_generator=self.assets.identity)
        vec = dataclasses.replace(vec, name=self._free_name(vec.name))
        self.vectors[vec.name] = vec
        return vec

    def export_vector(self, name: str, folder: Path) -> Path:
        if name not in self.vectors:
            raise EditGANError(f"no vector named {name!r}")
        return save_vector(self.vectors[name], folder)

    def set_scales(self, scales: Dict[str, float], *, refine_steps: Optional[int] = None) -> Step:
        """Apply every vector at its scale to the anchor latent (one generator pass, or refined)."""
        s = self.current
        unknown = [n for n in scales if n not in self.vectors]
        if unknown:
            raise EditGANError(f"no vector named {unknown[0]!r} in this session")
        refine = check_refine_steps(self.refine_steps if refine_steps is None else refine_steps)
        merged = {**s.scales, **{k: check_scale(k, v, self.vectors[k].scale_range) for k, v in scales.items()}}
        merged = {k: v for k, v in merged.items() if v}
        pairs = [(self.vectors[k], v) for k, v in merged.items()]
        branch = self.current_branch()
        if refine and branch is None:
            raise EditGANError("refinement needs a segmentation branch")
        # A plain slider move is a preview: the bf16 fast path where the CPU has it (exports re-render exactly);
        # all sliders back at 0 is the image before them, exactly. A person waits for it: long work yields a core.
        with interactive():
            out = apply_vectors(self._G(s), s.anchor, pairs, branch=branch if refine else None,
                                refine_steps=refine, fast=not refine and bool(merged))
        image = images_to_uint8(out.image)[0].cpu().numpy()
        what = ("sliders " + ", ".join(f"{k} {v:+.2f}" for k, v in merged.items()) if merged else "sliders reset")
        if refine:
            what += f" (+{refine} refinement)"
        # Consecutive slider moves are one step (undo goes back to before the drag).
        replace = s.what.startswith("sliders") and len(self.steps) > 1 and self.pos > 0
        edited = s.edited + tuple(c for v, _ in pairs for c in v.classes)
        return self._push(what, out.ws, anchor=s.anchor, scales=merged, replace=replace, image=image, labels=None,
                          exact=out.exact, tuning=s.tuning, edited=edited)

    def preview(self, name: str, scale: float, count: int = APPLY.preview_count) -> List[Tuple[np.ndarray, str]]:
        """The vector applied at ``scale`` to ``count`` other samples: [(before|after side by side, caption)]."""
        if name not in self.vectors:
            raise EditGANError(f"no vector named {name!r}")
        scale = check_scale(name, scale, self.vectors[name].scale_range)
        G = self.assets.G
        seeds = range(APPLY.preview_seed, APPLY.preview_seed + count)
        c = 0 if G.c_dim else None
        with interactive():
            ws = generate(G, seeds, class_idx=c, truncation_psi=APPLY.preview_psi, batch=count).ws
            before = images_to_uint8(fast_synthesis(G, ws)).cpu().numpy()       # previews: the bf16 fast path
            after = apply_vectors(G, ws, [(self.vectors[name], scale)], fast=True).image
            after = images_to_uint8(after).cpu().numpy()
        return [(np.concatenate([b, a], 1), f"seed {seed}: before | {name} x{scale:g}")
                for seed, b, a in zip(seeds, before, after)]

    # -- history --------------------------------------------------------------------------------------------
    def undo(self) -> Step:
        if self.pos <= 0:
            raise EditGANError("nothing to undo")
        self.pos -= 1
        return self.current

    def redo(self) -> Step:
        if self.pos >= len(self.steps) - 1:
            raise EditGANError("nothing to redo")
        self.pos += 1
        return self.current

    def goto(self, index: int) -> Step:
        if not 0 <= int(index) < len(self.steps):
            raise EditGANError(f"no step {index}")
        self.pos = int(index)
        return self.current

    def history_rows(self) -> List[List[object]]:
        return [[i, ("> " if i == self.pos else "") + s.what] for i, s in enumerate(self.steps)]

    def export(self, folder: Path) -> List[Path]:
        """The current step as photo.png (at the uploaded photo's size, when it came from one), result.png (the
        model's size), mask.png (if segmented) and latent.safetensors in ``folder``."""
        s = self.current
        folder.mkdir(parents=True, exist_ok=True)
        stamp = f"step{self.pos:03d}"
        out = []
        handed = self.photo_result(s)
        pasted = None if handed is None else handed.photo
        if pasted is not None:
            out.append(folder / f"{stamp}_photo.png")
            Image.fromarray(pasted).save(out[-1])
        out.append(folder / f"{stamp}_result.png")
        Image.fromarray(self.exact_image(s)).save(out[-1])
        if self.labels_of(s) is not None:
            out.append(folder / f"{stamp}_mask.png")
            Image.fromarray(self.mask_rgb(s.labels)).save(out[-1])
        extra = {"what": s.what, "scales": s.scales}
        if pasted is not None:       # where in the photo it came from (as the CLI's embed records it)
            extra.update(photo_record(self.source[1], (pasted.shape[1], pasted.shape[0])))
        if s.tuning is not None:     # the photo's tuned weights (a float16 delta from the model's)
            out.append(save_tuning(folder / f"{stamp}_tuning.safetensors", s.tuning, self.assets.identity))
            extra["tuning"] = out[-1].name
        out.append(save_latent(folder / f"{stamp}_latent.safetensors", s.ws.cpu(), self.assets.identity,
                               extra=extra))
        return out


def timestamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")
