"""The import graph points one way: CLI -> trainers/reports -> harness engine -> suites -> core.

Every module of the project's packages is parsed with `ast` (imports at module level and inside
functions alike) into a module graph. Importing `a.b.c` from outside package `a` also runs `a` and
`a.b` (their `__init__`), so those count as imported too; a module's own enclosing packages do not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "suites", "harness", "trainers", "reports")

# Lower layers never import higher ones; within a layer, only the no-cycle rule applies.
LAYERS = {"core": 0, "suites": 1, "harness": 2, "trainers": 3, "reports": 3, "harness.cli": 4}


def module_names(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Dotted names this module imports (a `from X import y` gives X.y, which is kept if it is a module)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """module -> the project modules it imports (directly, or as an enclosing package of one it imports)."""
    modules = module_names(root, packages)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        own = {module, *_ancestors(module)}
        edges = set()
        for name in _imported_names(tree, module, path.name == "__init__.py"):
            for target in (*_ancestors(name), name):
                if target in modules and target not in own:
                    edges.add(target)
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path [a, b, ..., a], or None. Iterative depth-first search."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def layer(module: str) -> int:
    prefix = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[prefix]


@pytest.fixture(scope="module")
def graph():
    return import_graph(ROOT)


def test_the_graph_sees_every_package(graph):
    assert {m.split(".")[0] for m in graph} == set(PACKAGES)
    assert "harness.runner" in graph["harness"]  # the public API re-exports the runner
    assert "suites" in graph["harness.runner"]


def test_no_import_cycle(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_imports_point_down_the_layers(graph):
    upward = sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets if layer(t) > layer(m))
    assert not upward, "imports from a lower layer into a higher one:\n" + "\n".join(upward)


def test_no_harness_module_outside_the_cli_imports_trainers_or_reports(graph):
    bad = sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets
                 if layer(m) == LAYERS["harness"] and t.split(".")[0] in ("trainers", "reports"))
    assert not bad, "\n".join(bad)


def test_cycle_finder_finds_a_cycle_and_only_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]


def test_a_cycle_through_a_package_init_is_found(tmp_path):
    # The shape this check exists for: a package whose __init__ re-exports a module that imports a
    # second package, whose modules import helpers from the first.
    (tmp_path / "top").mkdir()
    (tmp_path / "low").mkdir()
    (tmp_path / "top" / "__init__.py").write_text("from top.engine import run\n")
    (tmp_path / "top" / "engine.py").write_text("def run():\n    import low\n")
    (tmp_path / "top" / "helpers.py").write_text("X = 1\n")
    (tmp_path / "low" / "__init__.py").write_text("from low import item\n")
    (tmp_path / "low" / "item.py").write_text("from top.helpers import X\n")
    graph = import_graph(tmp_path, ("top", "low"))
    assert graph["low.item"] == {"top", "top.helpers"}
    assert find_cycle(graph) == ["low", "low.item", "top", "top.engine", "low"]
    (tmp_path / "top" / "__init__.py").write_text('"""No re-exports."""\n')
    assert find_cycle(import_graph(tmp_path, ("top", "low"))) is None
