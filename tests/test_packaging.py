"""Packaging: `pip install .` gives editgan_core, the built-in model and the `editgan` command, which works from any
folder, offline; requirements.txt is what the app needs, requirements-dev.txt adds the test tools; .ci/run runs
the README's test command."""

import fnmatch
import os
import shutil
import site
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
from conftest import ROOT
from PIL import Image

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_pyproject_ships_every_package_and_every_model_file():
    setup = PYPROJECT["tool"]["setuptools"]
    packages = set(setup["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "editgan_core").rglob("__init__.py")}
    assert found <= packages, f"add {sorted(found - packages)} to [tool.setuptools] packages"
    assert setup["package-dir"]["editgan_checkpoints"] == "checkpoints"
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["editgan_checkpoints"]
    ckpt = ROOT / "checkpoints"
    files = [p for p in ckpt.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    missing = [str(p.relative_to(ckpt)) for p in files
               if not any(fnmatch.fnmatch(p.relative_to(ckpt).as_posix(), pat) and
                          p.relative_to(ckpt).as_posix().count("/") == pat.count("/") for pat in patterns)]
    assert not missing, f"not in package-data: {missing}"
    assert sum(p.stat().st_size for p in files) < 64 * 2 ** 20
    assert PYPROJECT["project"]["scripts"]["editgan"] == "editgan_core.commands:main"


def test_checkpoints_dir_is_the_repositorys_in_a_source_tree():
    from editgan_core.loaders.registry import CHECKPOINTS_DIR

    assert CHECKPOINTS_DIR == ROOT / "checkpoints"


def test_requirements_split_app_and_dev():
    def names(path):
        out = []
        for line in (ROOT / path).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-"):
                out.append(line.split("=")[0].split(">")[0].split("<")[0].split("[")[0].strip().lower())
        return out

    app = names("requirements.txt")
    assert {"torch", "gradio", "huggingface_hub", "safetensors", "numpy", "pillow"} <= set(app)
    assert not {"pytest", "playwright"} & set(app)
    dev = (ROOT / "requirements-dev.txt").read_text()
    assert "-r requirements.txt" in dev and {"pytest", "playwright"} <= set(names("requirements-dev.txt"))
    # the package's own dependencies are among what the app installs
    deps = {d.split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in PYPROJECT["project"]["dependencies"]}
    assert deps <= set(app)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = "pip install -r requirements-dev.txt && python -m pytest -q"
    assert f"```bash\n{command}\n```" in readme
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in ci
    assert "apt-get install chromium" in readme and "playwright install" in readme   # "never `playwright install`"
    assert "apt-get install" in (ROOT / "tests" / "test_browser.py").read_text()


def test_pip_install_then_editgan_from_any_folder_offline(tmp_path):
    """The real thing, in a few seconds: a fresh venv (system site-packages for torch & co.), `pip install` of a copy
    of the project without network, then `editgan` in an unrelated folder, offline, with no PYTHONPATH."""
    from editgan_core.models.generator import generate
    from editgan_core.loaders.hub import load_model
    from editgan_core.storage.identity import model_identity
    from editgan_core.storage.latents import save_latent
    from editgan_core.storage.vectors import load_vector
    from editgan_core.pipeline.apply import apply_vectors

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "editgan_core", src / "editgan_core", ignore=ignore)
    shutil.copytree(ROOT / "checkpoints", src / "checkpoints", ignore=ignore)
    venv = tmp_path / "venv"
    # --without-pip: the venv uses the system's pip and setuptools (the build backend) -- nothing is downloaded
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True,
                   timeout=120)
    py = venv / "bin" / "python"
    # The packages of the environment running the tests come first (a venv's own setuptools >= 77 -- which
    # pyproject's `license = "MIT"` needs -- before its base Python's older one): a .pth file names them.
    inner = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                capture_output=True, text=True, check=True).stdout.strip())
    outer = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (inner / "_outer_environment.pth").write_text("\n".join(outer) + "\n")
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                        str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    shutil.rmtree(src)                          # the installed copy must not need the source
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", EDITGAN_HOME=str(tmp_path / "home"))

    def run(*cmd):
        out = subprocess.run([str(c) for c in cmd], cwd=elsewhere, env=env, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    run(venv / "bin" / "editgan", "generate", "--seeds", "0-3", "--out", "x")
    G = load_model("toyfaces").G
    for seed in range(4):
        got = np.asarray(Image.open(elsewhere / "x" / f"seed{seed:04d}.png"))
        assert np.array_equal(got, generate(G, [seed]).uint8()[0].numpy()), seed
    where = run(py, "-c", "import editgan_core, editgan_core.loaders.registry as r; print(editgan_core.__file__); "
                          "print(r.CHECKPOINTS_DIR)").split()
    installed = Path(where[0]).parent.parent
    assert installed.is_relative_to(venv) and Path(where[1]) == installed / "editgan_checkpoints"
    assert (Path(where[1]) / "toyfaces" / "MODEL_CARD.md").is_file()
    assert str(installed / "editgan_checkpoints" / "toyfaces") in run(venv / "bin" / "editgan", "list")
    assert "editgan-studio" in run(py, "-m", "editgan_core", "--version")
    # a starter vector by bare name, from the installed model folder
    m = load_model("toyfaces")
    gen = generate(m.G, [3], truncation_psi=0.7)
    save_latent(elsewhere / "face.latent.safetensors", gen.ws, model_identity(m))
    run(venv / "bin" / "editgan", "apply", "smile:1.5", "--inputs", "face.latent.safetensors", "--out", "smiling")
    smile = load_vector(ROOT / "checkpoints" / "toyfaces" / "vectors" / "smile.safetensors")
    expected = apply_vectors(m.G, gen.ws, [(smile, 1.5)]).image
    from editgan_core import images_to_uint8

    assert np.array_equal(np.asarray(Image.open(elsewhere / "smiling" / "face.png")),
                          images_to_uint8(expected)[0].numpy())
