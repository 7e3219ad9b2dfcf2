"""The servers the report measures, on one stack: ``pandasrv serve`` and the reference apps of bench/refapps/.

Both run gunicorn with the same W processes x T threads and keep-alive; pandasrv with its own worker class
(admission, buffered request heads) as ``pandasrv serve`` starts it, the reference apps with gunicorn's gthread
worker, which that class is built on. Access logs are off on both sides.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from bench.web_api import free_port, wait_until_alive

ROOT = Path(__file__).resolve().parent.parent
QUIET = {"PANDASRV_AUTH": "none", "PANDASRV_ACCESS_LOG": "false", "PANDASRV_LOG_LEVEL": "WARNING"}


@contextmanager
def _running(argv: list[str], env: dict[str, str], port: int, what: str) -> Iterator[str]:
    proc = subprocess.Popen(argv, env={**os.environ, **env}, cwd=ROOT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_alive(url, proc, what)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@contextmanager
def pandasrv_serve(db_url: str, workers: int, threads: int, daemon: bool = False,
                   settings: dict[str, str] | None = None) -> Iterator[str]:
    """``pandasrv serve`` (with its daemon master when ``daemon``); ``settings`` become PANDASRV_ variables."""
    port = free_port()
    argv = [sys.executable, "-m", "pandasrv.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--threads", str(threads)] + ([] if daemon else ["--no-daemon"])
    env = {**QUIET, "PANDASRV_DB_URL": db_url,
           **{f"PANDASRV_{key.upper()}": value for key, value in (settings or {}).items()}}
    with _running(argv, env, port, "pandasrv serve") as url:
        yield url


@contextmanager
def refapp(name: str, workers: int, threads: int, db_url: str = "") -> Iterator[str]:
    """The reference app ``bench/refapps/<name>.py`` under gunicorn (gthread, W x T, keep-alive 30 s)."""
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", f"bench.refapps.{name}:app", "--chdir", str(ROOT),
            "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads),
            "--worker-class", "gthread", "--keep-alive", "30", "--log-level", "warning"]
    with _running(argv, {"PANDASRV_DB_URL": db_url}, port, f"reference app {name}") as url:
        yield url
