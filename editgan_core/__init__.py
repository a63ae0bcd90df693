"""EditGAN Studio core: StyleGAN2 generator, checkpoint loaders, model registry and the EditGAN pipeline.

The pipeline, one function per step (each in the module that holds its algorithm)::

    generate(G, seeds)                      -> W+ and images           (generator.py)
    align_photo(photo, R)                   -> the face's crop         (align.py; prepare_image cuts it)
    embed(G, images)                        -> W+ of photos            (embed.py)
    pivotal_tune(G, ws, image)              -> a generator tuned on it (embed.py; optional)
    segment(G, branch, ws)                  -> part labels             (segbranch.py)
    train_branch(G, ws, masks, ...)         -> segmentation branch     (fewshot.py; train_branch_on_images embeds)
    edit_from_mask(G, branch, ws, mask)     -> edit + editing vector   (editing.py)
    apply_vectors(G, ws, [(vector, s)])     -> edited W+ and images    (vectors.py)
    refine(G, branch, ws, edited, classes)  -> refined W+              (editing.py)
    paste_back(photo, edited, region, crop) -> the photo, edited       (photo.py)

``import editgan_core`` never imports gradio; the app in ``app.py`` is an adapter over this package.
"""

__version__ = "0.2.0"

from .pipeline.align import align_photo, detect_faces  # noqa: F401
from .pipeline.editing import EditResult, edit_from_mask, refine  # noqa: F401
from .pipeline.embed import embed, pivotal_tune  # noqa: F401
from .errors import (CheckpointError, EditGANError, HashMismatchError, ModelNotFoundError,  # noqa: F401
                     UnsafePickleError)
from .models.generator import Generator, GeneratorConfig, generate, images_to_uint8  # noqa: F401
from .models.segbranch import segment  # noqa: F401
from .pipeline.fewshot import train_branch, train_branch_on_images  # noqa: F401
from .pipeline.photo import Crop, paste_back  # noqa: F401
from .storage.identity import generator_identity, model_identity  # noqa: F401
from .storage.vectors import EditVector, load_vector, save_vector  # noqa: F401
from .pipeline.apply import apply_vectors  # noqa: F401
