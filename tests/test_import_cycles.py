"""No import loops in the package: the module graph of ``pandasrv/``, read with ``ast``, has no cycle.

What counts as an edge ``a -> b``: every ``import`` and ``from ... import`` statement in ``a`` that names a
module of the package, wherever it stands — at the top, inside a function (an import moved into a function
to dodge a cycle is still the cycle), and under ``if TYPE_CHECKING:``. Type-only imports count because the
layering is about what a module depends on, and an annotation is a dependency: a loop that only the type
checker sees still ties the two modules into one unit that cannot be read, tested or moved apart.

``from pkg import name`` is an edge to the module ``pkg.name`` when that is a module, else to ``pkg``
itself. The implicit import of the parent packages (importing ``a.b.c`` runs ``a/b/__init__.py``) is not an
edge: a package that re-exports its submodules would otherwise be a loop with each of them. Imports by
string (``importlib.import_module``) are not seen; the package uses them only to load plugins and drivers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pandasrv

PACKAGE_DIR = Path(pandasrv.__file__).parent


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name a ``from`` statement imports from (relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _owner(name: str, modules: set[str]) -> str | None:
    """The package module that ``name`` (a dotted import target) lands in, if any."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """Module name -> the package modules it imports (see the module docstring for what counts)."""
    files = {_module_name(path, package_dir.parent): path for path in sorted(package_dir.rglob("*.py"))}
    modules = set(files)
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(name, is_package, node)
                targets = [f"{source}.{alias.name}" for alias in node.names]
            for target in targets:
                owner = _owner(target, modules)
                if owner is not None and owner != name:
                    graph[name].add(owner)
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
