"""Every module of the package imports with only the runtime dependencies of ``pyproject.toml``: a test-only
package (psutil, hypothesis, pytest, selenium, panda-client, ...) imported by server code would work in the
test venv and fail in a production install."""

from __future__ import annotations

import subprocess
import sys
import tomllib

from tests.web.conftest import REPO

# distribution name -> module name, where they differ
MODULE_NAMES = {"panda-client": "pandaclient", "PyJWT": "jwt", "PyMySQL": "pymysql", "types-PyMySQL": None,
                "pytest-timeout": "pytest_timeout", "pytest-xdist": "xdist", "mod_wsgi": "mod_wsgi"}

IMPORT_ALL = """
import importlib, importlib.abc, pkgutil, sys
blocked = set(sys.argv[1:])
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{name} is not a runtime dependency")
sys.meta_path.insert(0, Block())
import pandasrv
for module in pkgutil.walk_packages(pandasrv.__path__, "pandasrv."):
    if ".migrations." not in module.name + ".":  # alembic's scripts, run by alembic only
        importlib.import_module(module.name)
"""


def only_test_dependencies() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = {requirement_name(r) for r in project["dependencies"]}
    extras = project["optional-dependencies"]
    only_tests = {requirement_name(r) for r in extras["test"]} - runtime - {requirement_name(r) for r in extras["apache"]}
    return sorted(filter(None, (MODULE_NAMES.get(name, name.replace("-", "_").lower()) for name in only_tests)))


def requirement_name(requirement: str) -> str:
    for stop in "[<>=!~ ;":
        requirement = requirement.split(stop)[0]
    return requirement


def test_the_package_imports_without_the_test_dependencies() -> None:
    blocked = only_test_dependencies()
    assert {"psutil", "hypothesis", "pytest", "selenium", "pandaclient"} <= set(blocked)
    done = subprocess.run([sys.executable, "-c", IMPORT_ALL, *blocked], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
