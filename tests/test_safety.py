"""Hostile files: nothing from them runs, and the error says what was refused."""

import io
import os
import pickle

import pytest
import torch

from editgan_core.checkpoints import load_generator
from editgan_core.errors import CheckpointError, UnsafePickleError
from editgan_core.safe_pickle import safe_load_pickle


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
