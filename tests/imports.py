"""The package's imports, read with ``ast``: what the layering test and the import-cycle test both check.

Every ``import`` and ``from ... import`` counts, wherever it stands: at the top, inside a function (an import
moved into a function to dodge a loop or a layer is still a dependency) and under ``if TYPE_CHECKING:`` (an
annotation is a dependency too). Relative imports are resolved. ``from pkg import name`` lands in the module
``pkg.name`` when that is a module of the tree, else in ``pkg``. Imports by string (``importlib``) are not
seen; the package uses them only to load plugins and drivers.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple


class Import(NamedTuple):
    module: str   # the importing module, e.g. ``pandasrv.web.dispatch``
    path: Path
    line: int
    target: str   # the module of the tree it lands in; the dotted name itself when the tree has no such module


def module_name(path: Path, package_dir: Path) -> str:
    """``<package_dir>/web/dispatch.py`` -> ``pandasrv.web.dispatch``; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_imports(package_dir: Path) -> list[Import]:
    """Every import in the tree under ``package_dir`` whose name is in the package (``pandasrv`` or below)."""
    files = {module_name(path, package_dir): path for path in sorted(package_dir.rglob("*.py"))}
    found = []
    for name, path in files.items():
        for line, dotted in _dotted_names(name, path):
            if dotted.split(".")[0] == package_dir.name:
                found.append(Import(name, path, line, _owner(dotted, set(files)) or dotted))
    return found


def _dotted_names(module: str, path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, is_package, node)
            names += [(node.lineno, f"{source}.{alias.name}") for alias in node.names]
    return names


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name a ``from`` statement imports from."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _owner(name: str, modules: set[str]) -> str | None:
    """The module of the tree that ``name`` lands in: the longest dotted prefix that is one."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None
