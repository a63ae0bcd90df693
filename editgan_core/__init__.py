"""EditGAN Studio core: StyleGAN2 generator, checkpoint loaders, model registry and editing algorithms.

``import editgan_core`` never imports gradio; the app in ``app.py`` is an adapter over this package.
"""

__version__ = "0.1.0"

from .errors import (CheckpointError, EditGANError, HashMismatchError, ModelNotFoundError,  # noqa: F401
                     UnsafePickleError)
from .generator import Generator, GeneratorConfig, images_to_uint8  # noqa: F401
