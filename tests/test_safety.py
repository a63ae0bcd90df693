"""Hostile files: nothing from them runs, and the error says what was refused."""

import io
import os
import pickle

import pytest
import torch

from editgan_core.loaders.checkpoints import load_generator
from editgan_core.errors import CheckpointError, UnsafePickleError
from editgan_core.loaders.safe_pickle import safe_load_pickle


class RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class CallsEval:
    def __reduce__(self):
        return (eval, ("__import__('os').system('true')",))


def test_pickle_that_runs_a_command_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": RunsCommand(marker)}))
    with pytest.raises(UnsafePickleError, match=r"posix\.system|os\.system"):
        load_generator(path)
    assert not marker.exists()


def test_pickle_with_eval_or_unknown_module_is_refused():
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        safe_load_pickle(io.BytesIO(pickle.dumps(CallsEval())))
    # GLOBAL opcode naming a module that does not exist anywhere
    payload = b"\x80\x02csome_unknown_module\nfunc\nq\x00)R."
    with pytest.raises(UnsafePickleError, match="some_unknown_module.func"):
        safe_load_pickle(io.BytesIO(payload))
    # an allowed name used as a stepping stone (copyreg._reconstructor with a disallowed class)
    payload = b"\x80\x02ccopyreg\n_reconstructor\ncsubprocess\nPopen\nq\x00cbuiltins\nobject\nN\x87R."
    with pytest.raises(UnsafePickleError, match="subprocess.Popen"):
        safe_load_pickle(io.BytesIO(payload))


def test_malicious_storage_bytes_are_refused(tmp_path):
    marker = tmp_path / "pwned2"
    inner = io.BytesIO()
    pickle.dump(RunsCommand(marker), inner, protocol=2)
    # torch.storage._load_from_bytes(<bytes that unpickle to os.system>)
    payload = (b"\x80\x02ctorch.storage\n_load_from_bytes\nq\x00C" + bytes([len(inner.getvalue())])
               + inner.getvalue() + b"\x85R.")
    with pytest.raises(UnsafePickleError):
        safe_load_pickle(io.BytesIO(payload))
    assert not marker.exists()


def test_torch_zip_with_hostile_global_is_refused(tmp_path):
    marker = tmp_path / "pwned3"
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": RunsCommand(marker)}, path)
    with pytest.raises(UnsafePickleError, match="refused"):
        load_generator(path)
    assert not marker.exists()


def test_garbage_is_a_clear_error():
    with pytest.raises(CheckpointError):
        safe_load_pickle(io.BytesIO(b"\x80\x04\x95garbage-not-a-pickle"))


def test_plain_pickled_tensors_of_every_float_dtype_load():
    values = {"f32": torch.randn(3), "f16": torch.randn(2, 2).half(), "bf16": torch.randn(2).bfloat16(),
              "p": torch.nn.Parameter(torch.randn(4)), "view": torch.arange(10.0)[2:5]}
    out = safe_load_pickle(io.BytesIO(pickle.dumps(values)))
    for k, v in values.items():
        assert out[k].dtype == v.dtype and torch.equal(out[k], v.detach()), k


# -- no unrestricted unpickling anywhere in the shipped code ------------------------------------------

import ast  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("editgan_core", "demo", "bench", "app.py")
ALLOW_LIST_UNPICKLER = "editgan_core/loaders/safe_pickle.py"
# Names whose use unpickles without restriction (or runs code from the file) whatever the arguments.
UNPICKLERS = {"pickle.load", "pickle.loads", "pickle.Unpickler", "pickle._Unpickler", "pickle._load",
              "pickle._loads", "_pickle.load", "_pickle.loads", "_pickle.Unpickler", "pandas.read_pickle",
              "torch.package.PackageImporter"}
UNPICKLING_MODULES = {"dill", "joblib", "cloudpickle", "shelve", "cPickle", "pickle5"}
TORCH_LOADS = {"torch.load", "torch.serialization.load"}
NUMPY_LOADS = {"numpy.load"}


def unrestricted_unpickling(source: str, filename: str = "<source>") -> list:
    """Places in ``source`` that can unpickle without the allow-list: 'file:line: what'. Import aliases are
    followed (``import numpy as np``, ``from torch import load``)."""
    tree = ast.parse(source, filename)
    aliases = {}
    found = []

    def flag(node, what):
        found.append(f"{filename}:{node.lineno}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in UNPICKLING_MODULES:
                    flag(node, f"imports {a.name}")
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module.split(".")[0] in UNPICKLING_MODULES:
                flag(node, f"imports from {node.module}")
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"

    def dotted(node):
        if isinstance(node, ast.Name):
            return aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = dotted(node.value)
            return base and f"{base}.{node.attr}"
        return None

    # pickle.Unpickler is allowed in one place: as the base of the allow-list unpickler (a find_class override).
    allowed = set()
    if filename.replace("\\", "/").endswith(ALLOW_LIST_UNPICKLER):
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(isinstance(b, ast.FunctionDef) and b.name == "find_class"
                                                      for b in node.body):
                allowed.update(id(b) for b in node.bases)

    calls = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            calls[id(node.func)] = node
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Name, ast.Attribute)) or id(node) in allowed:
            continue
        name = dotted(node)
        if name in UNPICKLERS:
            flag(node, f"uses {name}")
        elif name in TORCH_LOADS or name in NUMPY_LOADS:
            call = calls.get(id(node))
            if call is None:
                flag(node, f"passes {name} around (cannot check its arguments)")
                continue
            kw = {k.arg: k.value for k in call.keywords}
            if None in kw:
                flag(node, f"calls {name} with **kwargs (cannot check them)")
            elif name in TORCH_LOADS and not (isinstance(kw.get("weights_only"), ast.Constant)
                                              and kw["weights_only"].value is True):
                flag(node, f"calls {name} without weights_only=True")
            elif name in NUMPY_LOADS and "allow_pickle" in kw and not (
                    isinstance(kw["allow_pickle"], ast.Constant) and kw["allow_pickle"].value is False):
                flag(node, f"calls {name} with allow_pickle")
    return sorted(set(found))


def _shipped_sources():
    for entry in SCANNED:
        path = ROOT / entry
        for f in ([path] if path.is_file() else sorted(path.rglob("*.py"))):
            yield f.relative_to(ROOT).as_posix(), f.read_text(encoding="utf-8")


def test_no_unrestricted_unpickling_in_the_shipped_code():
    scanned = list(_shipped_sources())
    assert len(scanned) > 20 and any(name == ALLOW_LIST_UNPICKLER for name, _ in scanned)
    found = [hit for name, text in scanned for hit in unrestricted_unpickling(text, name)]
    assert not found, "unpickling without the allow-list (a downloaded file could run code):\n" + "\n".join(found)


@pytest.mark.parametrize("code", [
    # what the trainers did before checkpoints became safetensors
    "import torch\nst = torch.load(path, map_location='cpu', weights_only=False)",
    "import torch\ncfg = torch.load(ckpt)['train_config']",
    "from torch import load as L\nL(path, weights_only=flag)",
    "import torch\ntorch.serialization.load(path, **opts)",
    "import pickle\nobj = pickle.load(open(path, 'rb'))",
    "import pickle as p\nobj = p.loads(data)",
    "from pickle import Unpickler\nobj = Unpickler(f).load()",
    "import pickle\nclass Lenient(pickle.Unpickler):\n    pass",
    "import numpy as np\na = np.load(path, allow_pickle=True)",
    "import joblib",
    "from dill import load",
    "import pandas as pd\ndf = pd.read_pickle(path)",
    "import torch\nloader = torch.load",
])
def test_the_unpickling_check_catches(code):
    assert unrestricted_unpickling(code), code


def test_the_unpickling_check_allows_the_safe_forms():
    safe = ("import torch, numpy as np, pickle\n"
            "a = torch.load(p, map_location='cpu', weights_only=True)\n"
            "b = np.load(p, allow_pickle=False)\nc = np.load(p, mmap_mode='r')\n"
            "pickle.dumps(a)\nexcept_types = (pickle.UnpicklingError,)\n")
    assert unrestricted_unpickling(safe) == []
    # the allow-list unpickler may subclass pickle.Unpickler -- there only, and only with a find_class
    allow_list = "import pickle\nclass Safe(pickle.Unpickler):\n    def find_class(self, m, n):\n        raise KeyError\n"
    assert unrestricted_unpickling(allow_list, ALLOW_LIST_UNPICKLER) == []
    assert unrestricted_unpickling(allow_list, "editgan_core/other.py")


def _hostile_checkpoint(path, marker):
    torch.save({"version": 1, "distill_config": {"res": 16}, "train_config": {"res": 16}, "step": 0,
                "G": RunsCommand(marker)}, path)


def test_a_hostile_training_checkpoint_is_refused_and_runs_nothing(tmp_path):
    """Defect 2: `--resume` and `--init` read ckpt.pt with torch.load(weights_only=False)."""
    import numpy as np

    from editgan_core.toyfaces import distill
    from editgan_core.training.gan import TrainConfig, Trainer, main as train_main

    marker = tmp_path / "pwned4"
    run = tmp_path / "run"
    run.mkdir()
    _hostile_checkpoint(run / "ckpt.pt", marker)          # a run folder of an earlier version, downloaded
    with pytest.raises(UnsafePickleError, match="nothing was executed"):
        train_main(["--out", str(run), "--export", str(tmp_path / "exported")])
    cfg = TrainConfig(res=16, z_dim=16, channel_base=128, channel_max=16, mapping_layers=2, batch=4)
    with pytest.raises(UnsafePickleError):
        Trainer(cfg, run, np.zeros((4, 16, 16, 3), np.uint8), torch.device("cpu")).load(run / "ckpt.pt")
    with pytest.raises(UnsafePickleError):
        distill.main(["--out", str(tmp_path / "ft"), "--init", str(run / "ckpt.pt")])
    assert not marker.exists()
