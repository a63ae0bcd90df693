"""The photo actions of a studio session, without any Gradio import: a photo uploaded and cut (aligned face or box,
moved, scaled, turned), embedded (+ pivotal tuning, streamed, stoppable), its reconstruction's fidelity, and the
current step handed back at the photo's own size. :class:`demo.session.Session` takes them in as :class:`Photos`;
they use its model, its history and its stop event."""

from __future__ import annotations

from typing import Callable, Iterator, Optional, Tuple

import numpy as np
import torch

from demo import streaming
from demo.records import Step, Upload, draw_crops
from editgan_core.errors import EditGANError
from editgan_core.pipeline.align import cut_photo, find_faces
from editgan_core.pipeline.embed import embed, pivotal_tune
from editgan_core.pipeline.photo import hand_back_edit
from editgan_core.settings import EMBED
from editgan_core.storage.imageio import prepare_image


class Photos:
    """Mixed into Session: ``self.upload``, ``self.photo``, ``self.source`` and ``self.photo_step`` are the
    session's."""

    def prepare_photo(self, image, fit: str = "crop", *, cut: Optional[str] = None
                      ) -> Tuple[np.ndarray, str, np.ndarray]:
        """Read any image (array, PIL, path or bytes), find its faces when it is cut as a face (``cut='face'``; the
        default is the model's, ``align.cut_for``), and cut it. -> (the model-sized square that will be embedded, a
        note, a preview of the photo with the crop outlined in red and the other faces in yellow)."""
        cut = cut or self.assets.cut
        if cut not in ("face", "box"):
            raise EditGANError(f"a photo is cut as 'face' or 'box', not {cut!r}")
        prep = prepare_image(image, self.assets.G.img_resolution, fit=fit, visible=self._visible())
        faces, note = find_faces(prep.original, cut)
        self.upload = Upload(prep.original, prep.read_note, faces, cut, note)
        self.photo = self.source = self.photo_step = None
        return self.adjust_crop(fit=fit)

    def adjust_crop(self, *, face: int = 0, dx: float = 0.0, dy: float = 0.0, zoom: float = 1.0,
                    turn: float = 0.0, fit: str = "crop") -> Tuple[np.ndarray, str, np.ndarray]:
        """Cut the uploaded photo again: face number ``face`` (largest first), the crop shifted by (dx, dy)
        fractions of its side, scaled by ``zoom`` and turned by ``turn`` degrees. Same returns as prepare_photo."""
        u = self.upload
        if u is None:
            raise EditGANError("upload a photo first")
        R = self.assets.G.img_resolution
        pc = cut_photo(u.original, R, cut=u.cut, faces=u.faces, face=int(face), fit=fit, visible=self._visible(),
                       dx=dx, dy=dy, zoom=zoom, turn=turn)
        prep = pc.prepared
        self.photo = prep.array
        self.source, self.photo_step = (u.original, prep.crop), None
        preview = draw_crops(u.original, prep.crop, [(i, c) for i, c in enumerate(pc.crops) if i != pc.chosen],
                              self._visible(), R)
        return prep.array, "; ".join(n for n in (u.read_note, u.note or pc.note, prep.note) if n), preview

    def _visible(self):
        """The part of the model's square it really draws (the registry's crop, e.g. cars), or None."""
        return self.assets.visible

    def embed(self, *, steps: int = EMBED.steps, tune_steps: int = 0, progress: Optional[Callable] = None) -> Step:
        """Embed the prepared photo (encoder guess, then W+ optimisation); with ``tune_steps``, then pivotal tuning
        (a copy of the generator tuned on the photo; this photo's steps render with it). stop() ends either with
        the best so far."""
        if self.photo is None:
            raise EditGANError("upload a photo first")
        a = self.assets
        target = torch.from_numpy(self.photo).permute(2, 0, 1)[None].float() / 127.5 - 1
        target = target.to(a.G.w_avg.device)
        self.stop_event.clear()
        res = embed(a.G, target, steps=int(steps), encoder=a.encoder, progress=progress,
                    should_stop=self.stop_event.is_set)
        what = f"embedded photo ({res.steps} steps{', stopped' if res.stopped else ''}, {float(res.psnr[0]):.1f} dB"
        tuning = None
        if int(tune_steps) > 0 and not res.stopped:
            tick = None if progress is None else (lambda i, n, loss: progress(i, n, loss, "tuning"))
            tuning = pivotal_tune(a.G, res.ws, target, steps=int(tune_steps), distance=a.distance, progress=tick,
                                  should_stop=self.stop_event.is_set)
            what += (f"; pivotal tuning {tuning.steps} steps{', stopped' if tuning.stopped else ''}: "
                     f"{tuning.psnr:.1f} dB")
        self.photo_step = self._push(what + ")", res.ws, tuning=tuning)
        return self.photo_step

    def embed_stream(self, *, steps: int = EMBED.steps, tune_steps: int = 0) -> Iterator:
        def work(report):
            def tick(step, total, loss, stage="embedding"):
                report(streaming.Progress(step, total, f"{stage}: step {step}/{total}, loss {loss:.4f}"))
            return self.embed(steps=steps, tune_steps=tune_steps, progress=tick)
        return streaming.run(work, self.stop)

    def fidelity(self) -> Tuple[Optional[float], Optional[np.ndarray]]:
        """PSNR (dB) of the current image against the embedded photo and a difference image (x4, grey = 0)."""
        if self.photo is None or self.pos < 0:
            return None, None
        a = self.photo.astype(np.float32)
        b = self.current.image.astype(np.float32)
        diff = np.clip(127.5 + 4 * (b - a) / 2, 0, 255).astype(np.uint8)
        return self.psnr_to_photo(self.current.image), diff

    def psnr_to_photo(self, image: np.ndarray) -> float:
        """PSNR (dB) of a model-size image against the prepared photo."""
        mse = (((self.photo.astype(np.float32) - image.astype(np.float32)) / 127.5) ** 2).mean()
        return float(10 * np.log10(4.0 / max(float(mse), 1e-10)))

    def photo_in_history(self) -> bool:
        """Whether the step that embedded the uploaded photo is still in the history (by identity: Steps hold
        tensors)."""
        return self.photo_step is not None and any(st is self.photo_step for st in self.steps)

    def photo_result(self, step: Optional[Step] = None):
        """The step handed back at the uploaded photo's own size (photo.hand_back): only where the edit acts
        against the embedded photo's step (parts that moved, and colour changes beside them), with the photo's own
        detail kept; every other pixel is the photo's. -> HandBack, or None when the image did not come from an
        uploaded photo."""
        step = self.current if step is None else step
        if self.source is None or not self.photo_in_history():
            return None
        if self._handed is not None and self._handed[0] is step and self._handed[1] is self.photo_step:
            return self._handed[2]
        before, after = self.exact_image(self.photo_step), self.exact_image(step)
        branch = self.current_branch()
        classes = (branch.cfg.class_indices(step.edited) or None) if branch is not None else None
        result = hand_back_edit(self.source, before, after, self.labels_of(self.photo_step), self.labels_of(step),
                                classes)
        self._handed = (step, self.photo_step, result)
        return result

    def photo_view(self, show_region: bool = False) -> Tuple[Optional[np.ndarray], str]:
        """(the photo with the current step handed back, a line on how much changed); with ``show_region`` the
        handed-back region is tinted over it."""
        res = self.photo_result()
        if res is None:
            return None, "upload and embed a photo first: the edit is handed back to it"
        if self.current is self.photo_step:
            return res.photo, "This is your photo as embedded: edit it (Edit tab, or the Vectors sliders) first."
        shown = res.photo
        if show_region:
            tint = np.array([255, 0, 180], np.float32)
            a = 0.45 * res.alpha[..., None]
            shown = np.clip(np.rint(shown * (1 - a) + tint * a), 0, 255).astype(np.uint8)
        return shown, f"Handed back to your photo: {res.summary()}."
