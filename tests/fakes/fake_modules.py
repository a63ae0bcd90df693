"""Register stand-in modules in sys.modules for the duration of a block (to write pickles naming them)."""

import contextlib
import sys
import types
from typing import Dict


@contextlib.contextmanager
def stand_in_modules(attrs: Dict[str, Dict[str, object]]):
    """attrs: module name -> {attribute: object}; each object's __module__ is set to that module."""
    saved = {k: sys.modules.get(k) for k in attrs}
    for name, members in attrs.items():
        mod = types.ModuleType(name)
        for attr, obj in members.items():
            obj.__module__ = name
            setattr(mod, attr, obj)
        sys.modules[name] = mod
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
