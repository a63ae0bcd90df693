"""The import rules of docs/architecture.md, checked on the source tree."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"core": sorted((ROOT / "editgan_core").rglob("*.py")), "work": sorted((ROOT / "demo").glob("*.py")),
          "bench": sorted((ROOT / "bench").glob("*.py")), "app": [ROOT / "app.py"]}


def imports(path: Path):
    """(module, names) for every import in a file, relative imports resolved against its package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(p for p in parts + [base] if p)
            yield base, [a.name for a in node.names]


def test_core_imports_neither_the_ui_nor_the_app():
    for path in LAYERS["core"]:
        for mod, _ in imports(path):
            top = mod.split(".")[0]
            assert top not in ("gradio", "demo", "app", "spaces"), f"{path.relative_to(ROOT)} imports {mod}"


def test_gradio_only_in_the_ui_layer():
    for layer in ("core", "work", "bench"):
        for path in LAYERS[layer]:
            for mod, _ in imports(path):
                assert mod.split(".")[0] != "gradio", f"{path.relative_to(ROOT)} imports gradio"


def test_no_private_names_imported_across_modules():
    for layer, paths in LAYERS.items():
        for path in paths:
            for mod, names in imports(path):
                if not mod.startswith(("editgan_core", "demo")):
                    continue
                private = [n for n in names if n.startswith("_") and not n.startswith("__")]
                assert not private, f"{path.relative_to(ROOT)} imports private {private} from {mod}"


def test_every_module_is_in_the_architecture_doc():
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for layer, paths in LAYERS.items():
        for path in paths:
            if path.name == "__init__.py":
                continue
            rel = path.relative_to(ROOT).as_posix()
            assert f"`{rel}`" in doc, f"docs/architecture.md does not describe {rel}"
