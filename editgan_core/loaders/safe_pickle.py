"""The only place in editgan_core that reads pickles: an allow-list unpickler that executes nothing.

NVIDIA's StyleGAN pickles normally rebuild their networks by ``exec``-ing Python source stored inside the
file. Users load files from strangers on the Hub, so we never do that. Instead every global a pickle may
name is looked up in an explicit allow-list:

* the NVIDIA persistence hook becomes :class:`PersistentStub`, which only keeps the pickled ``state``
  (parameters, buffers, sub-modules, plain attributes);
* the TensorFlow ``Network`` class becomes :class:`TFNetworkStub`, which only keeps its state dict;
* tensors are rebuilt by torch's own rebuild helpers, and the raw storage bytes go through
  ``torch.load(weights_only=True)``;
* a few harmless containers and numpy scalars/arrays are allowed.

Any other global -- ``os.system``, ``builtins.eval``, an unknown module -- raises
:class:`~editgan_core.errors.UnsafePickleError` *before* anything is called.
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
from typing import Any, Callable, Dict, Tuple

import numpy as np
import torch

from ..errors import CheckpointError, UnsafePickleError


class PersistentStub:
    """Stands for an object of an NVIDIA ``@persistent_class``; holds its state, runs none of its code."""

    def __init__(self, class_name: str, state: Any, version: Any, module_src_sha256: str):
        self.class_name = class_name
        self.state = state if isinstance(state, dict) else {}
        self.version = version
        self.module_src_sha256 = module_src_sha256

    def __repr__(self) -> str:
        return f"PersistentStub({self.class_name})"


def _reconstruct_persistent_obj(meta: Any) -> PersistentStub:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise UnsafePickleError("persistent object with unexpected metadata; refusing to load")
    src = meta.get("module_src") or ""
    if not isinstance(src, str):
        src = ""
    sha = hashlib.sha256(src.encode("utf-8", "replace")).hexdigest()
    return PersistentStub(str(meta.get("class_name")), meta.get("state"), meta.get("version"), sha)


class EasyDictStub(dict):
    """dnnlib.util.EasyDict: a dict; attribute access kept for convenience."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setstate__(self, state: Any) -> None:  # EasyDict pickles may carry an (empty) __dict__
        if isinstance(state, dict):
            self.update(state)


class TFNetworkStub:
    """dnnlib.tflib.network.Network of the TensorFlow releases: keeps the pickled state dict only."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.state: Dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise UnsafePickleError("TensorFlow network with unexpected state; refusing to load")
        self.state = state

    def __repr__(self) -> str:
        return f"TFNetworkStub({self.state.get('name')})"


class ArgsStub:
    """argparse.Namespace as stored in rosinality train checkpoints: attributes only."""

    def __init__(self, **kwargs: Any):
        self.__dict__.update(kwargs)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.__dict__.update(state)


def _load_storage_from_bytes(b: bytes) -> Any:
    # torch.storage._load_from_bytes would call torch.load(weights_only=False); route through the
    # restricted loader instead. These bytes are torch's legacy serialisation of one storage.
    if not isinstance(b, (bytes, bytearray)):
        raise UnsafePickleError("tensor storage is not a byte string; refusing to load")
    try:
        return torch.load(io.BytesIO(b), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:
        raise UnsafePickleError(f"tensor storage bytes ask for more than tensor data; refused, nothing was "
                                f"executed ({str(e).splitlines()[0]})") from None


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None, *rest: Any) -> Any:
    # Parameters are returned as plain tensors: we only need their values.
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError("parameter without tensor data; refusing to load")
    return data.detach()


def _rebuild_parameter_with_state(data: Any, requires_grad: Any, backward_hooks: Any, state: Any) -> Any:
    return _rebuild_parameter(data)


def _rebuild_tensor_v2(storage: Any, *args: Any) -> Any:
    if not isinstance(storage, (torch.storage.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError("tensor without a real storage; refusing to load")
    return torch._utils._rebuild_tensor_v2(storage, *args)


def _rebuild_tensor_v3(storage: Any, *args: Any) -> Any:
    if not isinstance(storage, (torch.storage.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError("tensor without a real storage; refusing to load")
    return torch._utils._rebuild_tensor_v3(storage, *args)


def _rebuild_tensor(storage: Any, *args: Any) -> Any:
    if not isinstance(storage, (torch.storage.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError("tensor without a real storage; refusing to load")
    return torch._utils._rebuild_tensor(storage, *args)


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError("numpy scalar of object dtype; refusing to load")
    return np.frombuffer(data, dtype=dtype, count=1)[0] if data is not None else dtype.type()


def _numpy_reconstruct(cls: Any, shape: Any, dtype: Any) -> Any:
    if cls is not np.ndarray:
        raise UnsafePickleError(f"numpy array of class {cls!r}; refusing to load")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _safe_set(*args: Any) -> set:
    return set(*args)


def _allowed_globals() -> Dict[Tuple[str, str], Callable[..., Any]]:
    allowed: Dict[Tuple[str, str], Any] = {
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
        ("dnnlib.util", "EasyDict"): EasyDictStub,
        ("dnnlib", "EasyDict"): EasyDictStub,
        ("dnnlib.tflib.network", "Network"): TFNetworkStub,
        ("argparse", "Namespace"): ArgsStub,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
        ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
        ("torch", "Size"): torch.Size,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): _safe_set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "slice"): slice,
        ("numpy", "dtype"): np.dtype,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy.core.multiarray", "scalar"): _numpy_scalar,
        ("numpy._core.multiarray", "scalar"): _numpy_scalar,
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    }
    for name in ("float16", "float32", "float64", "bfloat16", "int64", "int32", "uint8", "bool"):
        allowed[("torch", name)] = getattr(torch, name)
    return allowed


_ALLOWED = _allowed_globals()
# copyreg._reconstructor(cls, base, state) instantiates ``cls`` via ``base.__new__``: harmless because
# ``cls`` itself must come through find_class, i.e. be on the allow-list above.
_SAFE_RECONSTRUCT_CLASSES = {EasyDictStub, TFNetworkStub, ArgsStub, collections.OrderedDict}


def _copyreg_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    if cls not in _SAFE_RECONSTRUCT_CLASSES or base not in (object, dict):
        raise UnsafePickleError(f"copyreg reconstruction of {cls!r}; refusing to load")
    obj = base.__new__(cls) if base is object else cls()
    if state is not None and base is dict:
        obj.update(state)
    return obj


class SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("copyreg", "_reconstructor"):
            return _copyreg_reconstructor
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"this pickle asks for '{module}.{name}', which is not on the allow-list of a StyleGAN "
                f"checkpoint; it was refused and nothing from the file was executed. If this is a real "
                f"checkpoint of a format we do not know yet, please open an issue.") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("this pickle uses persistent ids (it is not a plain pickle); refusing to load")


def safe_load_pickle(fileobj: Any) -> Any:
    """Unpickle with the allow-list. Raises UnsafePickleError or CheckpointError, never runs file code."""
    try:
        return SafeUnpickler(fileobj).load()
    except UnsafePickleError:
        raise
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, RuntimeError, OverflowError, MemoryError, UnicodeDecodeError) as e:
        raise CheckpointError(f"the pickle is truncated or corrupt ({type(e).__name__}: {e})") from e
