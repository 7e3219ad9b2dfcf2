"""The package's layers call only downwards: every import of every module (``tests/imports.py`` says what
counts) is checked against the layer table below (docs/internals.md draws it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.imports import module_name, package_imports

PACKAGE = Path(__file__).resolve().parents[1] / "pandasrv"

# Foundation modules: settings, the clock, process supervision, metrics; every layer may use them and they
# use no layer.
FOUNDATION = frozenset({"pandasrv", "config", "clock", "supervisor", "metrics", "metrics_dir", "client_identity"})
_ALL = frozenset({"taskbuffer", "logic", "dataservice", "daemon", "web", "pilot", "submit", "deploy", "cli"})
# What each layer may import besides itself and the foundation. The entry points (``cli``, ``deploy``) sit on
# top and start the processes, so they may import everything: that is where ``pandasrv serve`` hands the
# daemon master to the web server (``web.server.serve(settings, alongside)``), the one seam between the two.
ALLOWED: dict[str, frozenset[str]] = {
    "taskbuffer": frozenset(),
    "logic": frozenset({"taskbuffer"}),
    "dataservice": frozenset({"logic", "taskbuffer"}),
    "daemon": frozenset({"dataservice", "logic", "taskbuffer"}),
    "web": frozenset({"logic", "taskbuffer"}),
    "pilot": frozenset({"taskbuffer"}),    # the pilot emulator: a client, it shares only the job model
    "submit": frozenset({"taskbuffer"}),   # the submission client, likewise
    "cli": _ALL,
    "deploy": _ALL - {"cli"},
}


def layer_of(module: str) -> str:
    """``pandasrv.web.dispatch`` -> ``web``; ``pandasrv.config`` -> ``config``; ``pandasrv`` -> ``pandasrv``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def violations(root: Path = PACKAGE) -> list[str]:
    found = []
    for imported in package_imports(root):
        layer, other = layer_of(imported.module), layer_of(imported.target)
        if other == layer or other in FOUNDATION:
            continue
        if layer in FOUNDATION or other not in ALLOWED.get(layer, frozenset()):
            found.append(f"{imported.path.relative_to(root.parent)}:{imported.line}: {layer} imports {imported.target}")
    return found


def test_every_layer_is_in_the_table():
    top_level = {layer_of(module_name(path, PACKAGE)) for path in PACKAGE.rglob("*.py")}
    assert top_level <= FOUNDATION | set(ALLOWED), sorted(top_level - FOUNDATION - set(ALLOWED))


def test_layers_call_only_downwards():
    assert violations() == []


@pytest.mark.parametrize(("layer", "target"), [
    ("taskbuffer", "pandasrv.logic.policy"), ("logic", "pandasrv.dataservice.setupper"),
    ("dataservice", "pandasrv.daemon.lease"), ("web", "pandasrv.daemon.schedule"),
    ("web", "pandasrv.dataservice.setupper"), ("config", "pandasrv.taskbuffer.store"),
])
def test_an_upward_import_is_reported(tmp_path, layer, target):
    root = tmp_path / "pandasrv"
    module = root / layer / "upward.py" if layer not in FOUNDATION else root / f"{layer}.py"
    module.parent.mkdir(parents=True)
    module.write_text(f"def late():\n    import {target}\n")
    name = module.relative_to(tmp_path)
    assert violations(root) == [f"{name}:2: {layer} imports {target}"]


def test_relative_imports_are_resolved(tmp_path):
    root = tmp_path / "pandasrv"
    (root / "taskbuffer").mkdir(parents=True)
    (root / "taskbuffer" / "mod.py").write_text("from ..web import app\nfrom . import store\n")
    assert violations(root) == ["pandasrv/taskbuffer/mod.py:1: taskbuffer imports pandasrv.web.app"]
