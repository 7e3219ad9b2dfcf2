"""No import loops in the package: the module graph of ``pandasrv/`` (``tests/imports.py`` says what counts as
an edge) has no cycle. Type-only imports count because the layering is about what a module depends on: a loop
that only the type checker sees still ties the two modules into one unit that cannot be read, tested or moved
apart."""

from __future__ import annotations

from pathlib import Path

import pandasrv
from tests.imports import module_name, package_imports

PACKAGE_DIR = Path(pandasrv.__file__).parent


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """Module name -> the package modules it imports. The implicit import of the parent packages (importing
    ``a.b.c`` runs ``a/b/__init__.py``) is not an edge: a package that re-exports its submodules would
    otherwise be a loop with each of them."""
    graph: dict[str, set[str]] = {module_name(path, package_dir): set() for path in package_dir.rglob("*.py")}
    for imported in package_imports(package_dir):
        if imported.target in graph and imported.target != imported.module:
            graph[imported.module].add(imported.target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module, each as one loop through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(_loop_through(graph, component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _loop_through(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself, inside the component."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for succ in sorted(graph[node] & component):
                if succ == start:
                    return paths[node] + [start]
                if succ not in paths:
                    paths[succ] = paths[node] + [succ]
                    following.append(succ)
        frontier = following
    raise AssertionError(f"{sorted(component)} is not strongly connected")


def test_package_has_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles in pandasrv/:\n" + "\n".join(" -> ".join(loop) for loop in found)


def test_the_graph_sees_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    """The reader itself: a loop made only of a function-level import and a TYPE_CHECKING import is found,
    as are relative imports and ``from pkg import submodule``."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from . import b\n")
    (package / "a.py").write_text("def f():\n    from pkg.sub import b\n    return b\n")
    (package / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..a import f\n")
    (package / "c.py").write_text("import pkg.a\n")
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg.a"}
    assert graph["pkg.sub"] == {"pkg.sub.b"}
    assert graph["pkg.c"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.a"]]
