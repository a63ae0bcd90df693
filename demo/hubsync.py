"""Push a vector library to a Hugging Face Hub dataset repo and pull one back (huggingface_hub; the endpoint
is read from HF_ENDPOINT at each call, so tests point it at a local stand-in server)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

from huggingface_hub import HfApi, snapshot_download

from editgan_core.errors import EditGANError
from editgan_core.storage.vectors import list_library, save_vector


def _endpoint() -> Optional[str]:
    return os.environ.get("HF_ENDPOINT") or None


def _check_repo(repo: str) -> str:
    repo = (repo or "").strip()
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise EditGANError(f"Hub repo must look like 'user/name', got {repo!r}")
    return repo


def push_library(vectors: list, repo: str, token: Optional[str]) -> str:
    repo = _check_repo(repo)
    if not vectors:
        raise EditGANError("no vectors to push")
    api = HfApi(token=token, endpoint=_endpoint())
    with tempfile.TemporaryDirectory() as d:
        for v in vectors:
            save_vector(v, d)
        try:
            api.create_repo(repo, repo_type="dataset", exist_ok=True)
            api.upload_folder(folder_path=d, repo_id=repo, repo_type="dataset",
                              commit_message=f"EditGAN Studio: {len(vectors)} editing vectors")
        except Exception as e:  # network, auth, permissions: say which
            raise EditGANError(f"could not push to {repo}: {type(e).__name__}: {e}") from None
    return f"pushed {len(vectors)} vectors to dataset {repo}"


def pull_library(repo: str, token: Optional[str], identity: dict) -> Tuple[List, str]:
    """Every vector of the repo that belongs to this model; the others are named in the message."""
    repo = _check_repo(repo)
    try:
        folder = snapshot_download(repo, repo_type="dataset", token=token, allow_patterns=["*.safetensors", "*.json"],
                                   cache_dir=Path(tempfile.gettempdir()) / "editgan-studio-hub", endpoint=_endpoint())
    except Exception as e:
        raise EditGANError(f"could not pull {repo}: {type(e).__name__}: {e}") from None
    vecs, problems = list_library(folder, expect_generator=identity)
    msg = f"pulled {len(vecs)} vectors from {repo}"
    if problems:
        msg += f"; skipped {len(problems)}: " + "; ".join(problems)
    return vecs, msg
