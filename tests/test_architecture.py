"""The import rules of docs/architecture.md, checked on the source tree."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"core": sorted((ROOT / "editgan_core").rglob("*.py")), "work": sorted((ROOT / "demo").glob("*.py")),
          "ui": sorted((ROOT / "demo" / "ui").glob("*.py")), "bench": sorted((ROOT / "bench").glob("*.py")),
          "app": [ROOT / "app.py"]}


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


def test_gradio_only_in_the_ui_package():
    """Only demo/ui imports gradio: the session, the models, the core, the benches and the launcher do not."""
    for layer in ("core", "work", "bench", "app"):
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


ROLES = {"models", "pipeline", "storage", "loaders", "training", "scale", "commands", "toyfaces"}
TOP = {"__init__.py", "__main__.py", "settings.py", "errors.py", "runtime.py", "budget.py"}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_package_is_grouped_by_role():
    for path in LAYERS["core"]:
        rel = path.relative_to(ROOT / "editgan_core")
        assert (len(rel.parts) == 1 and rel.name in TOP) or (len(rel.parts) == 2 and rel.parts[0] in ROLES), \
            f"editgan_core/{rel.as_posix()} is in no role package ({', '.join(sorted(ROLES))})"


def test_the_core_never_imports_toyfaces():
    """ToyFaces imports the core; the core (models, pipeline, storage, loaders, training, commands) never imports
    ToyFaces, not even inside a function."""
    for path in LAYERS["core"]:
        if "toyfaces" in path.relative_to(ROOT).parts:
            continue
        for mod, names in imports(path):
            assert "toyfaces" not in mod.split(".") and "toyfaces" not in names, \
                f"{path.relative_to(ROOT)} imports {mod} {names}"


def test_no_import_cycles_in_the_package():
    """Between modules of editgan_core, at module level (what runs on import)."""
    mods = {_module(p): p for p in LAYERS["core"]}
    graph = {}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rsplit(".", 1)[0]
        deps = set()
        for node in ast.parse(p.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = pkg.split(".")[:len(pkg.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                deps |= {f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        graph[m] = {d for d in deps if d in mods and d not in (m, "editgan_core")}
    state, path = {}, []

    def visit(u):
        state[u] = 1
        path.append(u)
        for v in graph[u]:
            assert state.get(v) != 1, "import cycle: " + " -> ".join(path[path.index(v):] + [v])
            if not state.get(v):
                visit(v)
        path.pop()
        state[u] = 2
    for m in graph:
        if not state.get(m):
            visit(m)


def test_ui_handlers_return_dicts_keyed_by_name():
    """Every handler (on_*) of the UI package returns or yields a dict of output names (or a helper's dict), never a
    positional tuple that must match a component list written elsewhere."""
    for path in LAYERS["ui"]:
        for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(fn, ast.FunctionDef) and fn.name.startswith("on_")):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Return, ast.Yield)) and node.value is not None:
                    v = node.value
                    assert isinstance(v, ast.Dict) or (isinstance(v, ast.Call) and isinstance(v.func, ast.Name)), \
                        f"{path.relative_to(ROOT)}:{node.lineno} {fn.name} returns {ast.unparse(v)[:60]}"
