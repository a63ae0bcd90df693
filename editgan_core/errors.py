"""Exceptions raised by editgan_core.

Every error a user can cause (a bad file, a wrong model name, no network) is an ``EditGANError``
subclass whose message says what was wrong and what to do, so the CLI and the app can show it as is.
"""

import torch


class EditGANError(Exception):
    """Base class of all errors that editgan_core raises on purpose."""


class CheckpointError(EditGANError):
    """A checkpoint file could not be read or is not a StyleGAN2 generator we support."""


class UnsafePickleError(CheckpointError):
    """A pickle asked for a global that is not on the allow-list; nothing from it was executed."""


class ModelNotFoundError(EditGANError):
    """A model name, path or Hub reference could not be resolved to a file."""


class HashMismatchError(EditGANError):
    """A downloaded or cached file does not have the sha256 the registry pins."""


class CLIError(EditGANError):
    """A mistake on the command line (a missing file, a wrong size, a name that is not there)."""


class AlignmentError(EditGANError):
    """No aligner available, or nothing to align."""


class EditError(EditGANError):
    """An edit that cannot run: nothing changed, unknown classes, wrong shapes."""


class MemoryBudgetError(EditGANError):
    """A long action would need more memory (or scratch disk) than is free: refused before it started."""


class LabelerError(EditGANError):
    """A labeler reference that is not a usable semantic-segmentation model, or images it cannot label."""


class ImageInputError(EditGANError):
    """The input is not an image we can use (corrupt, empty, too small or too large)."""


class InputError(EditGANError, ValueError):
    """A value a user gave (a seed, a class index, a configuration, a mode) that cannot be used; a ValueError too, for
    code that catches those."""


class DivergedError(EditGANError):
    """An optimisation produced NaN or infinite values; nothing it made is kept or written."""


def check_finite(loss, what: str, step: int) -> None:
    """Stop ``what`` (an embedding, a mask edit, ...) at ``step`` when its loss (a tensor) is NaN or infinite."""
    if not bool(torch.isfinite(loss.detach()).all()):
        raise DivergedError(f"{what} diverged at step {step} (its loss is not a finite number): nothing was kept; "
                            f"the input latent, image or vector may hold extreme values")
