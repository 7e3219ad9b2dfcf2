"""``pandasrv apache`` as a real process: one Apache per test module, on PostgreSQL (the production layout)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import SERVER_LOGS, fresh_database
from tests.web.conftest import free_port, wait_until_up

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests-artifacts"
# figures measured by the deploy tests (``record_figures``), printed at the end of the session
FIGURES: dict[str, dict[str, Any]] = {}


def record_figures(name: str, figures: dict[str, Any]) -> None:
    """Keep a test's measured figures: printed in the session's summary, written to ``tests-artifacts/<name>.json``."""
    FIGURES.setdefault(name, {}).update(figures)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(FIGURES[name], indent=1) + "\n")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for name, figures in FIGURES.items():
        terminalreporter.write_line(f"{name}: " + ", ".join(f"{key} {value}" for key, value in figures.items()))


def require(binary: str, package: str) -> None:
    """Skip locally without a Debian package; in CI a missing one is a failure."""
    if shutil.which(binary) or Path(binary).exists():
        return
    message = f"{binary} is missing (Debian package {package}, see .ci/apt-packages)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@dataclass
class RunningApache:
    url: str
    process: subprocess.Popen
    run_dir: Path
    log_path: Path

    def log(self) -> str:
        error_log = self.run_dir / "logs" / "error.log"
        return self.log_path.read_text(errors="replace") + (error_log.read_text(errors="replace") if error_log.exists() else "")

    def stop(self) -> int:
        """SIGTERM the command as an operator (or systemd) would; return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


def apache_pids(run_dir: Path) -> list[int]:
    """Processes whose command line names this instance's configuration (Apache and its children)."""
    config = str(run_dir / "httpd.conf")
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if config in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@contextlib.contextmanager
def start_apache(db_url: str, workdir: Path, host: str = "127.0.0.1", extra: list[str] | None = None,
                 wait: bool = True, **settings: Any) -> Iterator[RunningApache]:
    """Run ``pandasrv apache`` with its own run directory until the block ends (``wait``: until it answers
    ``isAlive``; a node that expects the PROXY protocol answers only through the balancer)."""
    require("/usr/sbin/apache2", "apache2")
    port = free_port()
    run_dir = workdir / f"apache-{port}"
    env = {**os.environ, "PANDASRV_DB_URL": db_url,
           "PANDASRV_META_CACHE_SECONDS": "0", **{f"PANDASRV_{k.upper()}": str(v) for k, v in settings.items()}}
    env.pop("PANDASRV_CONFIG", None)
    log_path = workdir / f"apache-{port}.log"
    command = [sys.executable, "-m", "pandasrv.cli", "apache", "--host", host, "--port", str(port),
               "--run-dir", str(run_dir), "--processes", "2", "--threads", "4", *(["--no-daemon"] if extra is None else extra)]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, env=env, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    running = RunningApache(f"http://{host}:{port}", process, run_dir, log_path)
    SERVER_LOGS.append(run_dir / "logs" / "error.log")  # the application's lines: a 500 there fails the test
    try:
        if wait:
            wait_until_up(running)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def pg_url(test_databases: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database(test_databases, "postgresql", tmp_path_factory.mktemp("pg"), prefix="pandasrv_a") as url:
        yield url
