"""The Annotate tab's actions of a studio session, without any Gradio import: images queued for annotation with a
proposed mask (the labeler that fits the model, else the branch), the labeler and class map the user chose, and a
branch trained on the annotations (streamed, stoppable). :class:`demo.session.Session` takes them in as
:class:`Annotating`; they use its model, its current step and its stop event."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Iterator, Optional, Tuple

import numpy as np
import torch

from demo import streaming
from demo.records import Annotation, Step
from editgan_core.errors import EditGANError
from editgan_core.loaders.assets import BRANCH_NAME, companion
from editgan_core.loaders.labelers import load_labeler
from editgan_core.models.segbranch import save_branch
from editgan_core.pipeline.fewshot import train_branch
from editgan_core.pipeline.labeling import ClassMap, fit_note, label_images
from editgan_core.settings import INTERACTIVE_BRANCH
from editgan_core.storage.kits import write_kit


class Annotating:
    """Mixed into Session: ``self.annotations``, ``self.labeler_choice`` and ``self.branch`` are the session's."""

    def labeler(self) -> Optional[tuple]:
        """(Labeler, ClassMap) that proposes annotation masks: the user's choice, else the parser that fits."""
        return self.labeler_choice if self.labeler_choice is not None else self.studio.labeler(self.model_ref)

    def set_labeler(self, ref: str, class_map: str = "") -> str:
        """Use another segmentation model (registry name, hf:// reference or folder) and/or class map (JSON
        {labeler label: class}; empty: the default map). With a branch, the map must give the branch's classes.
        -> a note. Nothing changes when anything is wrong."""
        ref = (ref or "").strip()
        if not ref:
            self.labeler_choice = None
            return "using the parser that fits the model, if any"
        lab = load_labeler(ref)
        cmap = ClassMap.from_json(class_map) if (class_map or "").strip() else ClassMap.default(lab.label_names)
        if self.current_branch() is not None:
            cmap.check(lab.label_names, self.current_branch().cfg.class_names)
        else:
            cmap.check(lab.label_names, cmap.classes())
        self.labeler_choice = (lab, cmap)
        note = fit_note(self.model_ref, lab) or ""
        unmapped = cmap.unmapped(lab.label_names)
        return (f"labeler **{lab.ref}**: {len(lab.label_names)} labels -> classes {', '.join(cmap.classes())}"
                + (f"; unmapped (background): {', '.join(unmapped)}" if unmapped else "") + (f". {note}" if note else ""))

    def propose(self, step: Optional[Step] = None) -> Tuple[Optional[np.ndarray], str]:
        """A mask to start annotating from, and where it came from: the parser that fits the model, else the
        branch (the model's, or the one trained in this session), else nothing."""
        step = self.current if step is None else step
        names = self.class_table()[0]
        lab = self.labeler()
        if lab is not None:
            labeler, class_map = lab
            try:
                return label_images(labeler, self.exact_image(step)[None], class_map, names)[0], f"parser {labeler.ref}"
            except EditGANError as e:
                why = f" (the parser failed: {e})"
        else:
            why = ""
        if self.current_branch() is not None:
            who = "the branch trained in this session" if self.branch is not None else "the model's branch"
            return self.labels_of(step), who + why
        return None, "nothing: paint every part" + (why or " (once a branch is trained here, it proposes)")

    def add_annotation_image(self) -> int:
        """Queue the current image for annotation, with a proposed mask to correct. -> its index."""
        s = self.current
        proposal, source = self.propose(s)
        self.annotations.append(Annotation(s.ws, self.exact_image(s), proposal=proposal, source=source))
        return len(self.annotations) - 1

    def set_annotation(self, index: int, labels: np.ndarray) -> None:
        if not 0 <= index < len(self.annotations):
            raise EditGANError(f"no annotation image {index}")
        labels = np.asarray(labels)
        R = self.assets.G.img_resolution
        if labels.shape != (R, R):
            raise EditGANError(f"an annotation must be {R}x{R}")
        if len(np.unique(labels)) < 2:
            raise EditGANError("this annotation has only one class: paint the parts first")
        self.annotations[index].labels = labels

    def train_branch(self, *, max_steps: int = INTERACTIVE_BRANCH.max_steps, progress: Optional[Callable] = None):
        """Train a branch on the annotated images of this session. -> (branch, report)."""
        done = [a for a in self.annotations if a.labels is not None]
        if len(done) < 2:
            raise EditGANError(f"annotate at least 2 images first ({len(done)} done)")
        names, palette = self.class_table()
        ws = torch.cat([a.ws for a in done])
        masks = np.stack([a.labels for a in done])
        self.stop_event.clear()
        branch, report = train_branch(self.assets.G, ws, masks, names, palette, generator_id=self.assets.identity,
                                      max_steps=int(max_steps), eval_every=INTERACTIVE_BRANCH.eval_every,
                                      patience=INTERACTIVE_BRANCH.patience, progress=progress,
                                      should_stop=self.stop_event.is_set)
        self.branch = branch
        self.branch_training = {"images": report.train_images + report.val_images, "val_miou": report.val_miou,
                                "steps": report.steps, "best_step": report.best_step}
        # Re-segment the history so editing can start at once.
        for s in self.steps:
            s.labels = None     # recomputed on use, by the new branch
        return branch, report

    def train_stream(self, *, max_steps: int = INTERACTIVE_BRANCH.max_steps) -> Iterator:
        def work(report):
            def tick(rec):
                report(streaming.Progress(int(rec.get("step", 0)), int(max_steps),
                                          f"training: step {rec.get('step')}, held-out mIoU {rec.get('val_miou')}, "
                                          f"at most {rec.get('eta_s', 0):.0f} s to go"))
            return self.train_branch(max_steps=max_steps, progress=tick)
        return streaming.run(work, self.stop)

    def branch_file(self, folder: Path) -> Path:
        """The current branch as a file: the one trained here saved into ``folder`` with its training record, else
        the model's own file (its record inside)."""
        if self.branch is not None:
            return save_branch(self.branch, Path(folder) / "branch.safetensors",
                               extra={"training": self.branch_training})
        own = companion(self.assets.loaded, BRANCH_NAME)
        if own is None:
            raise EditGANError("no branch yet: annotate a few images and train one in the Annotate tab first")
        return own

    def branch_bytes(self) -> bytes:
        with tempfile.TemporaryDirectory() as d:
            return self.branch_file(Path(d)).read_bytes()

    def make_kit(self, folder: Path, *, license: str = "", repo: str = "") -> Tuple[Path, object]:
        """A kit of this session's model (storage.kits): its branch (trained here, or the model's), every vector of
        the session, the labeler and class map chosen here, written to ``folder``/kit. -> (the kit, its parts)."""
        lab = self.labeler_choice
        with tempfile.TemporaryDirectory() as scratch:
            parts = self.assets.kit_parts(self.branch_file(Path(scratch)), Path(scratch),
                                          vectors=list(self.vectors.values()), license=license,
                                          labeler=lab[0].ref if lab else "", class_map=lab[1].table if lab else None)
            parts.repo = repo or None            # the card's commands name the repo it goes to
            if self.branch is not None:          # classes as trained here (renamed ones included)
                parts.class_names, parts.palette = list(self.branch.cfg.class_names), list(self.branch.cfg.palette)
            return write_kit(parts, Path(folder) / "kit"), parts
