"""dvc.yaml's `deps:` name exactly the project code each stage runs: editing a module re-runs
every stage that imports it and no other.

The imports are read statically (every `import graphmer...` in the stage script and, from
there, in each module reached, function-level imports included), so a module a stage could
load counts even when this run would not reach it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def module_file(name: str) -> Path | None:
    """The file of module `graphmer.x.y` (a package's __init__.py), or None for a non-module."""
    base = SRC.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _graphmer(name: str | None) -> bool:
    return bool(name) and name.split(".")[0] == "graphmer"


def _imports(nodes) -> set[str]:
    """graphmer modules named by the import statements among `nodes` (ast nodes, walked)."""
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if _graphmer(a.name)}
        elif isinstance(node, ast.ImportFrom) and _graphmer(node.module):
            names.add(node.module)
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                # `from graphmer import tokenizer` imports a module; `from graphmer import GraphMERT`
                # a lazy attribute: the imports of the package's __getattr__ (PEP 562)
                if module_file(sub):
                    names.add(sub)
                elif alias.name not in defined(node.module):
                    names |= lazy_imports(node.module)
    return names


def defined(module: str) -> set[str]:
    """Names a module binds at its top level (functions, classes, assignments, imports)."""
    out = set()
    for node in ast.parse(module_file(module).read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            out |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            out |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return out


def lazy_imports(package: str) -> set[str]:
    """What a package's module-level `__getattr__` imports on first use of an attribute."""
    tree = ast.parse(module_file(package).read_text())
    return {
        name
        for f in tree.body
        if isinstance(f, ast.FunctionDef) and f.name == "__getattr__"
        for name in _imports(ast.walk(f))
    }


def imported_modules(path: Path) -> set[str]:
    """Names of the graphmer modules that `path` imports, with the packages that hold them; a
    package's lazy `__getattr__` counts only where an attribute of it is imported."""
    tree = ast.parse(path.read_text(), str(path))
    lazy = {f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "__getattr__"}
    skip = {id(n) for f in lazy for n in ast.walk(f)}
    names = _imports(n for n in ast.walk(tree) if id(n) not in skip)
    parents = {".".join(n.split(".")[:i]) for n in names for i in range(1, n.count(".") + 1)}
    return {n for n in names | parents if module_file(n)}


def closure(script: Path) -> set[Path]:
    """Every project source file that running `script` may import."""
    todo, seen = sorted(imported_modules(script)), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(imported_modules(module_file(name)) - seen)
    return {module_file(n).relative_to(ROOT) for n in seen}


def stages() -> dict[str, dict]:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())

    def resolve(text: str) -> str:  # dvc.yaml's ${paths.x} templating, from params.yaml
        return re.sub(r"\$\{([\w.]+)\}", lambda m: str(_lookup(params, m[1])), text)

    return yaml.safe_load(resolve((ROOT / "dvc.yaml").read_text()))["stages"]


def _lookup(tree: dict, dotted: str):
    for key in dotted.split("."):
        tree = tree[key]
    return tree


STAGES = stages()


def test_every_stage_runs_a_script_of_its_own():
    for name, stage in STAGES.items():
        assert stage["cmd"] == f"python stages/{name}.py", name
        assert f"stages/{name}.py" in stage["deps"], name


def deps_problems(name: str, deps: list[str]) -> list[str]:
    """What is wrong with `deps` as stage `name`'s list of project code: modules its script
    imports that no dep covers, and deps (a file, or a folder taken whole) it never imports."""
    code = [Path(d) for d in deps if str(d).startswith("src/")]
    imported = closure(ROOT / "stages" / f"{name}.py")
    missing = sorted(str(f) for f in imported if not any(f == d or d in f.parents for d in code))
    unused = [str(d) for d in code if not set(_modules(d)) <= imported]
    return [f"deps miss {m}" for m in missing] + [f"deps list {u}, never imported" for u in unused]


def _modules(dep: Path) -> list[Path]:
    """The Python files a dep names: itself, or every one under a folder."""
    full = ROOT / dep
    return [p.relative_to(ROOT) for p in full.rglob("*.py")] if full.is_dir() else [dep]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_deps_list_exactly_the_code_the_stage_imports(name):
    assert deps_problems(name, STAGES[name]["deps"]) == []


def test_a_missing_module_a_whole_package_or_a_stray_module_is_caught():
    deps = STAGES["train"]["deps"]
    assert deps_problems("train", [d for d in deps if d != "src/graphmer/loader.py"]) == [
        "deps miss src/graphmer/loader.py"
    ]
    assert deps_problems("card", [*STAGES["card"]["deps"], "src/graphmer"]) == [
        "deps list src/graphmer, never imported"
    ]
    assert deps_problems("fetch", [*STAGES["fetch"]["deps"], "src/graphmer/model.py"]) == [
        "deps list src/graphmer/model.py, never imported"
    ]


def test_the_import_reader_sees_function_level_and_package_imports(tmp_path):
    """The checker itself can fail: a lazy import inside a function is found, and importing a
    module of a subpackage brings its package's __init__.py."""
    script = tmp_path / "s.py"
    script.write_text("def f():\n    from graphmer.extract.records import FileGraph\n")
    found = {str(p) for p in closure(script)}
    assert {
        "src/graphmer/extract/records.py",
        "src/graphmer/extract/__init__.py",
        "src/graphmer/__init__.py",
    } <= found
    assert "src/graphmer/model.py" not in found  # graphmer's lazy GraphMERT is not imported here
    script.write_text("from graphmer import GraphMERT\n")
    assert "src/graphmer/model.py" in {str(p) for p in closure(script)}
