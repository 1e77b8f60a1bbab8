"""The package's shape: folders by concern, no import cycles, no upward imports, no module over 400 lines."""

import ast
from pathlib import Path

import pytest

import alignment
from alignment.core.code_version import imported_names, module_file, module_name

ROOT = Path(alignment.__file__).parent
# Each folder may import its own level and those below it; graph.py (the map) sits on top of them all.
LEVELS = {"config": 0, "core": 1, "data": 2, "models": 3, "evaluation": 4, "methods": 5, "studies": 6}
TOP = 7
MAX_LINES = 400


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports anywhere (functions and TYPE_CHECKING included)."""
    graph = {}
    for path in sorted(root.rglob("*.py")):
        name = module_name(path, root)
        tree = ast.parse(path.read_text())
        found = set()
        for imported in imported_names(tree, annotations=True):
            if module_file(imported, root) is not None and imported != name:
                found.add(imported)
        graph[name] = found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, as a path that returns to its start (one per strongly connected group)."""
    found, done = [], set()
    for start in sorted(graph):
        if start in done:
            continue
        stack, path = [(start, iter(sorted(graph[start])))], [start]
        on_path = {start}
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                on_path.discard(path.pop())
                done.add(node)
            elif child in on_path:
                found.append([*path[path.index(child) :], child])
            elif child not in done:
                stack.append((child, iter(sorted(graph.get(child, ())))))
                path.append(child)
                on_path.add(child)
    return found


def level(module: str) -> int:
    parts = module.split(".")
    return LEVELS.get(parts[1], TOP) if len(parts) > 2 else (TOP if len(parts) == 2 else 0)


def test_no_import_cycles():
    assert cycles(import_graph(ROOT)) == []


def test_the_cycle_check_finds_the_cycles_it_exists_for(tmp_path):
    # the old cycles' shape: context -> launch -> graph -> context, and dpo <-> reference (function-level imports)
    pkg = tmp_path / "alignment"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "context.py").write_text("def f():\n    from alignment.launch import x\n")
    (pkg / "launch.py").write_text("from alignment import graph\n")
    (pkg / "graph.py").write_text("from alignment.context import StageContext\n")
    (pkg / "dpo.py").write_text("def fit():\n    from alignment.reference import load\n")
    (pkg / "reference.py").write_text("from alignment.dpo import train\n")
    found = cycles(import_graph(pkg))
    assert sorted(tuple(sorted(set(c))) for c in found) == [
        ("alignment.context", "alignment.graph", "alignment.launch"),
        ("alignment.dpo", "alignment.reference"),
    ]


def test_no_upward_imports():
    upward = [
        f"{module} imports {imported}"
        for module, imports in import_graph(ROOT).items()
        for imported in imports
        if level(imported) > level(module)
    ]
    assert upward == []


def test_infrastructure_imports_no_method():
    for module, imports in import_graph(ROOT).items():
        if module.split(".")[1:2] in (["core"], ["config"]):
            assert not [m for m in imports if m.startswith("alignment.methods")], module


def test_folders_by_concern_and_short_modules():
    assert {p.name for p in ROOT.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(LEVELS)
    assert sorted(p.name for p in ROOT.glob("*.py")) == ["__init__.py", "graph.py"]
    long = {
        str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


@pytest.mark.parametrize("package", sorted(LEVELS))
def test_package_inits_hold_no_code(package):
    # an __init__ is in the code version of every stage that imports its package: a docstring only, so that
    # editing one module never re-keys the stages that import its neighbours
    tree = ast.parse((ROOT / package / "__init__.py").read_text())
    assert len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr)
