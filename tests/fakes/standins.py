"""Full-size stand-ins for the real path, since real weights cannot be downloaded here: official-layout NVIDIA
pickles with random weights at the real configurations, a tiny random face parser in the transformers format,
and a way to serve both under their registry names from the stand-in Hub. Used by tests and by
bench/rehearsal.py."""

from __future__ import annotations

from pathlib import Path

import torch

from fakes import fake_nvidia
from editgan_core.models.generator import Generator, GeneratorConfig

# NVIDIA's configurations of the registry's face models (paper256 for 256 px; config-f above).
CONFIGS = {
    256: dict(img_resolution=256, channel_base=16384, channel_max=512, mapping_layers=8, conv_clamp=256),
    512: dict(img_resolution=512, channel_base=32768, channel_max=512, mapping_layers=8, conv_clamp=256),
    1024: dict(img_resolution=1024, channel_base=32768, channel_max=512, mapping_layers=8, conv_clamp=256),
}
REGISTRY_NAME = {256: "ffhq-256", 512: "ffhq-512", 1024: "ffhq-1024"}

def full_size_generator(res: int, seed: int = 0) -> Generator:
    """A generator of the real configuration with random weights (w_avg off zero, noise strengths on)."""
    torch.manual_seed(seed)
    G = Generator(GeneratorConfig(z_dim=512, w_dim=512, **CONFIGS[res])).eval()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.1)
        G.mapping.w_avg.normal_(0, 0.5)
    return G.requires_grad_(False)


def random_face_branch(G, seed: int = 0):
    """A 10-member branch with random weights over face-parsing's 19 labels for G: it costs what a trained one
    does (the benches' full-size stand-in)."""
    from editgan_core.models.segbranch import BranchConfig, SegBranch

    cfg = BranchConfig(G.feature_channels(), G.feature_resolutions(), G.img_resolution, FACE_LABELS,
                       [(i * 13 % 256, i * 29 % 256, i * 53 % 256) for i in range(len(FACE_LABELS))])
    return SegBranch(cfg, generator=torch.Generator().manual_seed(seed)).eval()


def official_pickle(res: int, path: Path, seed: int = 0) -> Path:
    """An NVIDIA stylegan2-ada-pytorch snapshot (G, D, G_ema, ...) of the real configuration, random weights."""
    fake_nvidia.save_snapshot(full_size_generator(res, seed), path)
    return Path(path)


# jonathandinu/face-parsing's 19 labels (CelebAMask-HQ order; ../shared/docs/real-photos.md)
FACE_LABELS = ["background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
               "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth"]


def tiny_segformer_config(labels=FACE_LABELS):
    from transformers import SegformerConfig

    return SegformerConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[4, 2], hidden_sizes=[8, 16],
                           num_attention_heads=[1, 1], patch_sizes=[7, 3], strides=[4, 2], mlp_ratios=[2, 2],
                           decoder_hidden_size=16, id2label=dict(enumerate(labels)),
                           label2id={n: i for i, n in enumerate(labels)})


def make_segformer(path, labels=FACE_LABELS, seed: int = 0, cls=None) -> Path:
    """A tiny random SegFormer (2 encoder blocks, hidden 8/16) + its image processor (64 x 64 input), saved with
    save_pretrained: config.json, model.safetensors, preprocessor_config.json."""
    from transformers import SegformerForSemanticSegmentation, SegformerImageProcessor

    torch.manual_seed(seed)
    model = (cls or SegformerForSemanticSegmentation)(tiny_segformer_config(labels)).eval()
    with torch.no_grad():     # a sharper classifier, so a random model still paints many labels
        if hasattr(model, "decode_head"):
            model.decode_head.classifier.weight.mul_(20)
    model.save_pretrained(path)
    SegformerImageProcessor(size={"height": 64, "width": 64}).save_pretrained(path)
    return Path(path)


def tiny_face_parser(folder: Path, seed: int = 0) -> Path:
    return make_segformer(folder, seed=seed)


def serve_generator(fh, res: int, pickle_path: Path) -> str:
    """Put a pickle on the stand-in Hub where the registry entry of that resolution points. -> registry name."""
    from editgan_core.loaders.registry import REGISTRY

    spec = REGISTRY[REGISTRY_NAME[res]]
    fh.add(spec.repo_id, spec.filename, Path(pickle_path).read_bytes())
    return spec.name


def serve_folder(fh, repo_id: str, folder: Path) -> None:
    """Every file of a folder (e.g. a save_pretrained model) at the root of a stand-in Hub repo."""
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file():
            fh.add(repo_id, p.relative_to(folder).as_posix(), p.read_bytes())
