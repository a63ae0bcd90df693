"""Resolve a model reference to a local file and load it.

A reference is one of:

* a registry name (``ffhq-1024``, ``toyfaces``; see :mod:`editgan_core.loaders.registry`);
* a local path (a file, or a native folder with ``config.json`` + ``model.safetensors``);
* ``hf://org/repo/path/in/repo[@revision]`` -- a file on the Hugging Face Hub, or a native folder
  (``hf://org/repo`` or ``hf://org/repo/subfolder/``).

Downloads go through ``huggingface_hub`` into its standard cache, so a file fetched once is served offline
later (set ``HF_HUB_OFFLINE=1`` to forbid any request). Where the registry pins a sha256, the file is
verified after download and on every load from the cache.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from ..errors import HashMismatchError, ModelNotFoundError
from ..storage.files import clip
from ..storage.kits import KIT_FILE, is_kit, open_kit, read_manifest
from .checkpoints import CONFIG_NAME, WEIGHTS_NAME, LoadedGenerator, load_generator, sha256_file
from .registry import CHECKPOINTS_DIR, REGISTRY, ModelSpec

_HF_RE = re.compile(r"^hf://(?P<repo>[\w.\-]+/[\w.\-]+)(?:/(?P<path>[^@]*))?(?:@(?P<rev>[\w.\-/]+))?$")


@dataclass
class Resolved:
    path: Path                       # local file or folder to load
    spec: Optional[ModelSpec]        # registry entry, if the reference was a registry name
    ref: str                         # what the user asked for
    repo_id: Optional[str] = None
    revision: Optional[str] = None
    kit: Optional[Path] = None       # the kit folder, when the reference was a kit (storage/kits.py)


def parse_hf_ref(ref: str) -> Tuple[str, str, Optional[str]]:
    """'hf://org/repo/path@rev' -> (repo_id, path, revision)."""
    # Here and below: huggingface_hub's modules bring its HTTP client, 0.15 s at every start of the CLI and the
    # app; only Hub references need them.
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    m = _HF_RE.match(ref.strip()) if len(ref) <= 2048 else None
    if not m:
        raise ModelNotFoundError(f"malformed Hub reference {clip(ref)}; expected hf://org/repo/path/to/file[@revision]")
    repo, path, rev = m.group("repo"), (m.group("path") or ""), m.group("rev")
    try:
        validate_repo_id(repo)
    except HFValidationError as e:
        raise ModelNotFoundError(f"malformed Hub reference {clip(ref)}: {str(e).splitlines()[0]}") from None
    bad_path = bool(path) and any(part in ("", ".", "..") for part in path.rstrip("/").split("/"))
    if bad_path or (rev is not None and ".." in rev):
        raise ModelNotFoundError(f"malformed Hub reference {clip(ref)}: the file path may not hold '..', '.' or "
                                 f"empty parts")
    return repo, path, rev


def _verify(path: Path, sha256: Optional[str], what: str) -> None:
    if not sha256:
        return
    digest = sha256_file(path)
    if digest != sha256.lower():
        raise HashMismatchError(
            f"{what}: sha256 {digest} does not match the pinned {sha256}. The file at {path} is corrupt or was "
            f"replaced; delete it and download again.")


_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


def _hub_reachable(repo_id: str, filename: str, revision: Optional[str], endpoint: Optional[str],
                   token: Optional[str]) -> bool:
    """One quick HEAD without retries: False only when the server cannot be reached at all."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url  # here: as in parse_hf_ref
    from huggingface_hub.errors import HfHubHTTPError

    try:
        get_hf_file_metadata(hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint), token=token,
                             timeout=10, endpoint=endpoint)
    except HfHubHTTPError:
        return True   # the server answered (404, 401, ...): let hf_hub_download report it precisely
    except Exception:  # noqa: BLE001 -- connection refused, DNS failure, timeout, offline mode, ...
        return False
    return True


def download_file(repo_id: str, filename: str, revision: Optional[str], *, cache_dir: Optional[str],
                  endpoint: Optional[str], token: Optional[str], local_files_only: bool) -> Path:
    """One file from a Hub repo into the cache (or from the cache: a pinned commit, or offline), with errors in
    words. Used for generators here and for LPIPS weights in perceptual.py."""
    from huggingface_hub import hf_hub_download  # here: as in parse_hf_ref
    from huggingface_hub.errors import (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    def fetch(offline: bool) -> Path:
        return Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir, endpoint=endpoint,
                                    token=token, local_files_only=offline))

    try:
        if local_files_only or (revision and _COMMIT_RE.match(revision)):
            # A pinned commit never changes: serve it from the cache without asking the network.
            try:
                return fetch(True)
            except LocalEntryNotFoundError:
                if local_files_only:
                    raise
        if not local_files_only and not _hub_reachable(repo_id, filename, revision, endpoint, token):
            # huggingface_hub would retry a dead connection with back-off for ~25 s; answer at once instead.
            return fetch(True)
        return fetch(False)
    except LocalEntryNotFoundError as e:
        raise ModelNotFoundError(
            f"{filename} from the Hub repo {repo_id} (revision {revision or 'main'}) is not in the local cache "
            f"and could not be downloaded (offline or no network). Connect once to download it, or pass a local "
            f"path instead.") from e
    except RepositoryNotFoundError as e:
        raise ModelNotFoundError(f"Hub repo {repo_id} not found (or private: pass a token)") from e
    except RevisionNotFoundError as e:
        raise ModelNotFoundError(f"revision {revision} not found in Hub repo {repo_id}") from e
    except EntryNotFoundError as e:
        raise ModelNotFoundError(f"{filename} not found in Hub repo {repo_id} (revision {revision or 'main'})") from e
    except OSError as e:  # network failures that are not cache misses
        raise ModelNotFoundError(f"could not download {filename} from {repo_id}: {e}") from e


MAX_REF = 1024      # characters of a model reference


def resolve(ref: str, *, cache_dir: Optional[str] = None, endpoint: Optional[str] = None,
            token: Optional[str] = None, local_files_only: bool = False) -> Resolved:
    """Turn a registry name, local path or hf:// reference into local files (downloading if needed)."""
    ref = str(ref).strip()
    if not ref:
        raise ModelNotFoundError("no model given")
    if len(ref) > MAX_REF:
        raise ModelNotFoundError(f"a model reference of {len(ref)} characters ({clip(ref, 40)}): a registry name, "
                                 f"path or hf:// reference is at most {MAX_REF}")
    # HF_ENDPOINT is read at each call (huggingface_hub reads it once, at import), so a mirror or a stand-in Hub
    # set after start-up is used -- as demo/hubsync does for vector libraries.
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    kw = dict(cache_dir=cache_dir, endpoint=endpoint, token=token, local_files_only=local_files_only)
    spec = REGISTRY.get(ref)
    if spec is not None:
        if spec.local_dir:
            path = CHECKPOINTS_DIR / spec.local_dir
            if not (path / WEIGHTS_NAME).exists():
                raise ModelNotFoundError(f"built-in model {spec.name!r} is missing: expected {path / WEIGHTS_NAME}")
            return Resolved(path, spec, ref)
        if spec.format == "native":
            path = _download_native(spec.repo_id, spec.filename or "", spec.revision, sha256=spec.sha256, **kw)
        else:
            path = download_file(spec.repo_id, spec.filename, spec.revision, **kw)
            _verify(path, spec.sha256, f"{spec.name} ({spec.repo_id}/{spec.filename})")
        return Resolved(path, spec, ref, spec.repo_id, spec.revision)
    if ref.startswith("hf://"):
        repo_id, sub, rev = parse_hf_ref(ref)
        if not sub or sub.endswith("/") or "." not in Path(sub).name:
            kit = _download_kit(repo_id, sub.rstrip("/"), rev, **kw)
            if kit is not None:
                return _kit_generator(kit, ref, repo_id, rev, **kw)
            path = _download_native(repo_id, sub.rstrip("/"), rev, sha256=None, **kw)
        else:
            path = download_file(repo_id, sub, rev, **kw)
        return Resolved(path, None, ref, repo_id, rev)
    path = Path(os.path.expanduser(ref))
    if path.exists():
        if is_kit(path):
            return _kit_generator(path, ref, None, None, **kw)
        return Resolved(path, None, ref)
    names = ", ".join(sorted(REGISTRY))
    raise ModelNotFoundError(f"unknown model {ref!r}: not a registry name ({names}), not an existing path, and "
                             f"not an hf://org/repo/file reference")


def _download_native(repo_id: str, subfolder: str, revision: Optional[str], *, sha256: Optional[str],
                     **kw) -> Path:
    prefix = f"{subfolder}/" if subfolder else ""
    weights = download_file(repo_id, prefix + WEIGHTS_NAME, revision, **kw)
    _verify(weights, sha256, f"{repo_id}/{prefix}{WEIGHTS_NAME}")
    try:
        download_file(repo_id, prefix + CONFIG_NAME, revision, **kw)
    except ModelNotFoundError:
        pass  # the config is also embedded in the safetensors metadata
    return weights.parent


def _download_kit(repo_id: str, subfolder: str, revision: Optional[str], **kw) -> Optional[Path]:
    """The kit in a Hub repo (its manifest, then every file it lists, each through the cache), or None when the
    repo holds no kit (a plain native model)."""
    prefix = f"{subfolder}/" if subfolder else ""
    try:
        manifest = download_file(repo_id, prefix + KIT_FILE, revision, **kw)
    except ModelNotFoundError:
        return None          # no kit here (or offline without it cached): tried as a native model next
    for name in read_manifest(manifest)["files"]:
        download_file(repo_id, prefix + name, revision, **kw)
    return manifest.parent


def _kit_generator(folder: Path, ref: str, repo_id: Optional[str], revision: Optional[str], **kw) -> Resolved:
    """A kit's generator: its own weights when included, else the referenced file, verified by its sha256."""
    kit = open_kit(folder)
    if kit.included:
        return Resolved(folder, None, ref, repo_id, revision, kit=folder)
    gen_ref = kit.generator["ref"]
    _, sub, _ = parse_hf_ref(gen_ref)
    if not sub or "." not in Path(sub).name:
        raise ModelNotFoundError(f"kit {clip(ref)}: its generator reference {clip(gen_ref)} does not name a file")
    r = resolve(gen_ref, **kw)
    _verify(r.path, kit.generator["sha256"], f"the generator of kit {ref} ({gen_ref})")
    return Resolved(r.path, None, ref, repo_id, revision, kit=folder)


def load_model(ref: str, *, key: Optional[str] = None, **resolve_kw) -> LoadedGenerator:
    """resolve() + load_generator(): the one call the CLI and the app use."""
    r = resolve(ref, **resolve_kw)
    loaded = load_generator(r.path, key=key)
    if r.spec is not None and r.spec.resolution != loaded.config.img_resolution:
        loaded.notes.append(f"registry says {r.spec.resolution} px but the file is {loaded.config.img_resolution} px")
    if r.spec is not None and not r.spec.sha256 and not r.spec.local_dir:
        loaded.notes.append("the registry pins no sha256 for this file yet; it was not verified")
    loaded.meta.setdefault("ref", ref)
    if r.kit is not None:
        loaded.kit = str(r.kit)
        loaded.notes.append(f"kit: branch, vectors and classes from {r.kit}")
    return loaded


_SNAPSHOT_RE = re.compile(r"[/\\]snapshots[/\\]([0-9a-f]{40})[/\\]")


def hub_source(loaded) -> Optional[dict]:
    """Where on the Hub a loaded generator's weights file is, pinned: {'ref': 'hf://org/repo/file@commit',
    'sha256', 'repo_id', 'license'}; None for a local file (a kit then includes the weights). The commit is the one
    the file was downloaded at (from the cache path), so the reference never moves."""
    ref = str(loaded.meta.get("ref", ""))
    if loaded.kit:                              # a kit opened again: its reference, as it is
        gen = open_kit(loaded.kit).generator
        return None if gen.get("included") else {"ref": gen["ref"], "sha256": gen["sha256"],
                                                 "repo_id": parse_hf_ref(gen["ref"])[0], "license": None}
    spec = REGISTRY.get(ref)
    if spec is not None and spec.local_dir:
        return None
    if spec is not None:
        repo_id, sub = spec.repo_id, spec.filename or ""
    elif ref.startswith("hf://"):
        repo_id, sub, _ = parse_hf_ref(ref)
    else:
        return None
    path = Path(loaded.path)
    if path.is_dir():                            # a native folder: its weights file is what is referenced
        sub, path = (f"{sub.rstrip('/')}/" if sub else "") + WEIGHTS_NAME, path / WEIGHTS_NAME
    found = _SNAPSHOT_RE.search(os.path.abspath(path))      # not resolve(): the cache links snapshots to blobs
    if found is None:
        return None
    return {"ref": f"hf://{repo_id}/{sub}@{found.group(1)}", "sha256": sha256_file(path), "repo_id": repo_id,
            "license": spec.license if spec is not None else None}


def check_repo_name(repo: str) -> str:
    """A Hub repo name as a user types it ('user/name'), checked as the Hub checks it; -> the name."""
    repo = (repo or "").strip()
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ModelNotFoundError(f"a Hub repo is 'user/name', got {clip(repo)}")
    parse_hf_ref(f"hf://{repo}")
    return repo


def push_folder(folder: Path, repo: str, token: Optional[str], *, what: str, repo_type: str = "model",
                ignore: Optional[list] = None) -> str:
    """Upload a folder to a Hub model repo (made when missing), the token from the argument or the usual places
    (HF_TOKEN, huggingface-cli login). -> the commit's URL. Errors (network, auth) in one line naming the repo."""
    from huggingface_hub import HfApi  # here: as in parse_hf_ref

    check_repo_name(repo)
    api = HfApi(token=token or None, endpoint=hub_endpoint())
    try:
        api.create_repo(repo, repo_type=repo_type, exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type=repo_type, ignore_patterns=ignore,
                                 commit_message=f"EditGAN Studio: {what}")
    except Exception as e:  # noqa: BLE001 -- network, auth, permissions: said in one line
        raise ModelNotFoundError(f"could not push to {repo}: {type(e).__name__}: {clip(str(e), 200)}") from None
    return str(getattr(info, "commit_url", "") or info)


# ----------------------------------------------------------------------------------------------------------
# Helpers for other Hub folders (the labelers of editgan_core/pipeline/labeling.py) under the same rules.


def hub_endpoint(endpoint: Optional[str] = None) -> Optional[str]:
    """The Hub to ask: ``endpoint`` when given, else ``HF_ENDPOINT`` read now (as :func:`resolve` does), else
    huggingface_hub's default."""
    return endpoint or os.environ.get("HF_ENDPOINT") or None


def entry_missing(err: BaseException) -> bool:
    """Whether a :class:`ModelNotFoundError` from :func:`download_file` means the Hub answered "no such file in
    this repo" -- not "offline and not cached", not "no such repo"."""
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError  # here: as in parse_hf_ref

    cause = err.__cause__
    return isinstance(cause, EntryNotFoundError) and not isinstance(cause, LocalEntryNotFoundError)
