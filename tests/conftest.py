import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import tempfile  # noqa: E402

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# No test may read or write the user's real Hub cache; set before huggingface_hub is imported.
os.environ["HF_HUB_CACHE"] = tempfile.mkdtemp(prefix="editgan-test-hf-cache-")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from editgan_core import Generator, GeneratorConfig  # noqa: E402


def make_generator(seed: int = 0, **overrides) -> Generator:
    """A tiny random generator whose every parameter matters (noise on, w_avg off zero)."""
    kw = dict(z_dim=16, w_dim=16, img_resolution=32, channel_base=256, channel_max=32, mapping_layers=2,
              conv_clamp=256.0)
    kw.update(overrides)
    torch.manual_seed(seed)
    G = Generator(GeneratorConfig(**kw)).eval()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.25)
            elif name.endswith(".bias"):
                p.add_(0.1 * torch.randn_like(p))
        G.mapping.w_avg.normal_()
    return G.requires_grad_(False)


@pytest.fixture
def tiny_G() -> Generator:
    return make_generator()


RGB_CLASSES = (["r", "g", "b"], [(255, 0, 0), (0, 255, 0), (0, 0, 255)])


def colour_branch(G, n: int = 6, steps: int = 100):
    """A branch for G trained on ``n`` samples to segment by the dominant colour channel (learnable from the
    features). -> (branch, the training latents, their masks)."""
    import numpy as np

    from editgan_core.pipeline.fewshot import train_branch
    from editgan_core.storage.identity import generator_identity

    ws = G.mapping_ws(torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(3)))
    with torch.no_grad():
        masks = G.synthesis(ws).argmax(1).numpy().astype(np.uint8)
    branch, _ = train_branch(G, ws, masks, *RGB_CLASSES, generator_id=generator_identity(G, "tiny"), members=2,
                             hidden=(16, 8), max_steps=steps, pixels_per_step=512, eval_every=steps)
    return branch, ws, masks
