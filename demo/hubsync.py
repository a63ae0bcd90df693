"""Push a vector library to a Hugging Face Hub dataset repo and pull one back, with the Hub module's rules (repo
names checked as the Hub checks them, HF_ENDPOINT read at each call so tests point it at a local stand-in server,
one upload path: editgan_core.loaders.hub.push_folder)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

from huggingface_hub import snapshot_download

from editgan_core.errors import EditGANError
from editgan_core.loaders.hub import check_repo_name, hub_endpoint, push_folder
from editgan_core.storage.vectors import list_library, save_vector


def push_library(vectors: list, repo: str, token: Optional[str]) -> str:
    repo = check_repo_name(repo)
    if not vectors:
        raise EditGANError("no vectors to push")
    with tempfile.TemporaryDirectory() as d:
        for v in vectors:
            save_vector(v, d)
        push_folder(Path(d), repo, token, what=f"{len(vectors)} editing vectors", repo_type="dataset")
    return f"pushed {len(vectors)} vectors to dataset {repo}"


def pull_library(repo: str, token: Optional[str], identity: dict) -> Tuple[List, str]:
    """Every vector of the repo that belongs to this model; the others are named in the message."""
    repo = check_repo_name(repo)
    try:
        folder = snapshot_download(repo, repo_type="dataset", token=token, allow_patterns=["*.safetensors", "*.json"],
                                   cache_dir=Path(tempfile.gettempdir()) / "editgan-studio-hub",
                                   endpoint=hub_endpoint())
    except Exception as e:
        raise EditGANError(f"could not pull {repo}: {type(e).__name__}: {e}") from None
    vecs, problems = list_library(folder, expect_generator=identity)
    msg = f"pulled {len(vecs)} vectors from {repo}"
    if problems:
        msg += f"; skipped {len(problems)}: " + "; ".join(problems)
    return vecs, msg
