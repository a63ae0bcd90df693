"""Labelled datasets from a generator and its branch (DatasetGAN's use of EditGAN's parts): seeds -> image + part
mask (+ latent, + vectors applied) per row, written as a Hugging Face ``datasets`` folder.

The format is Parquet shards with ``Image`` features (``data/train-KKKKK-of-NNNNN.parquet``), not imagefolder: a row
holds two images (the picture and its mask) and a latent, which imagefolder's one-image-per-file layout cannot hold
without a second, looser convention; a shard is also the engine's unit of work -- a fixed run of seeds written
atomically under a name derived from them, so a rerun or a restarted rank skips it. ``datasets.load_dataset(DIR)``
reads the folder as it is; the dataset card (README.md) names the model, branch, classes, truncation and seeds.
Masks are single-channel PNGs of class indices (the card's table gives each index its class and colour).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from ..errors import EditGANError
from ..models.generator import generate, images_to_uint8
from ..pipeline.apply import apply_vectors
from ..storage import files
from .engine import Item

CARD = "README.md"


def seed_items(seeds: Sequence[int], chunk: int) -> List[Item]:
    """The work list: runs of ``chunk`` seeds, one shard each, named by their place in the list."""
    n = (len(seeds) + chunk - 1) // chunk
    return [Item(f"train-{k:05d}-of-{n:05d}", tuple(int(s) for s in seeds[k * chunk:(k + 1) * chunk]))
            for k in range(n)]


def shard_path(out: Path, item: Item) -> Path:
    return Path(out) / "data" / f"{item.key}.parquet"


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def render_rows(bundle, seeds: Sequence[int], *, truncation: float, pairs=(), latents: bool = False,
                batch: int = 4) -> dict:
    """The rows of ``seeds``: each seed's latent exactly as ``generate`` makes it (NVIDIA's seed -> z), the vectors
    ``pairs`` [(vector, scale)] added, the image and the branch's part mask of it."""
    G, branch = bundle.G, bundle.branch
    rows = {"seed": [], "image": [], "mask": [], "truncation": []}
    if latents:
        rows["latent"] = []
    for start in range(0, len(seeds), batch):
        part = list(seeds[start:start + batch])
        ws = generate(G, part, truncation_psi=truncation).ws
        if pairs:
            ws = apply_vectors(G, ws, list(pairs)).ws
        with torch.no_grad():
            img, feats = G.synthesis(ws, return_features=True)
            labels = branch.predict(feats).cpu().numpy().astype(np.uint8)
        images = images_to_uint8(img).cpu().numpy()
        for i, seed in enumerate(part):
            rows["seed"].append(int(seed))
            rows["image"].append({"bytes": png(images[i]), "path": f"seed{seed:07d}.png"})
            rows["mask"].append({"bytes": png(labels[i]), "path": f"seed{seed:07d}_mask.png"})
            rows["truncation"].append(float(truncation))
            if latents:
                rows["latent"].append(ws[i].cpu().numpy().astype(np.float32))
    return rows


def write_shard(path: Path, rows: dict, num_ws: int, w_dim: int) -> Path:
    """One Parquet shard with the Image features declared (so ``load_dataset`` decodes them), written atomically."""
    import datasets  # here: datasets (and pyarrow) take 2 s to import; only this command needs them

    features = {"seed": datasets.Value("int64"), "image": datasets.Image(), "mask": datasets.Image(),
                "truncation": datasets.Value("float32")}
    if "latent" in rows:
        features["latent"] = datasets.Array2D(shape=(num_ws, w_dim), dtype="float32")
    datasets.disable_progress_bars()
    ds = datasets.Dataset.from_dict(rows, features=datasets.Features(features))
    return files.atomic_write(path, lambda tmp: ds.to_parquet(tmp))


def check_datasets() -> None:
    try:
        import datasets  # noqa: F401 -- here: only to say how to install it
    except ImportError:
        raise EditGANError("editgan dataset writes a Hugging Face datasets folder: pip install datasets") from None


def dataset_card(*, model: str, identity: dict, classes: Tuple[List[str], list], truncation: float,
                 seeds: Sequence[int], vectors: Sequence[str], license: str, rows: int, command: str,
                 latents: bool = False) -> str:
    names, palette = classes
    lo, hi = (min(seeds), max(seeds)) if seeds else (0, -1)
    contiguous = len(seeds) == hi - lo + 1 and len(set(seeds)) == len(seeds)
    lines = ["---", f"license: {license or 'other'}", "task_categories:", "- image-segmentation",
             "tags:", "- editgan", "- datasetgan", "- synthetic", "configs:", "- config_name: default",
             "  data_files:", "  - split: train", "    path: data/train-*", "---", "",
             f"# Synthetic segmentation dataset from {model}", "",
             f"{rows} rows, each an image of the generator `{model}` ({identity.get('resolution')} px, sha256 "
             f"`{str(identity.get('sha256'))[:16]}...`) and its part mask by the model's few-shot segmentation branch "
             f"(EditGAN / DatasetGAN). Made with EditGAN Studio:", "", "```bash", command, "```", "",
             f"- Seeds: {f'{lo} to {hi}' if contiguous else f'{len(seeds)} seeds from {lo} to {hi}'} "
             f"(NVIDIA's seed -> z, so seed N is the picture the official tools draw), truncation psi {truncation:g}.",
             f"- Editing vectors applied: {', '.join(vectors) if vectors else 'none'}.",
             "- Columns: `seed`, `image`, `mask` (a single-channel PNG: each pixel's class index), `truncation`"
             + (", `latent` (the W+ latent, float32)" if latents else "") + ".", "", "| index | class | colour |", "|---|---|---|"]
    lines += [f"| {i} | {n} | {tuple(int(v) for v in c)} |" for i, (n, c) in enumerate(zip(names, palette))]
    return "\n".join(lines) + "\n"


def shard_rows(path: os.PathLike) -> int:
    """Rows in a written shard (its Parquet footer only)."""
    import pyarrow.parquet as pq  # here: as in write_shard

    return pq.ParquetFile(str(path)).metadata.num_rows
