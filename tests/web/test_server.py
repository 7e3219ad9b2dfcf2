"""``pandasrv serve``: W gunicorn workers, each with its own TaskBuffer, and the daemon master alongside."""

from __future__ import annotations

import httpx
import psutil

from tests.waiting import wait_for
from tests.web.conftest import fresh_database, start_server


def _children(pid: int, marker: str) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(pid).children():
        try:
            if marker in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def test_serve_runs_workers_and_daemon_master(test_databases, tmp_path, backend="sqlite"):
    with fresh_database(test_databases, backend, tmp_path) as db_url, \
            start_server(db_url, backend, tmp_path, daemon=True, workers=2, threads=3) as running:
        pid = running.process.pid
        assert wait_for(lambda: len(_children(pid, "pandasrv.cli serve")) == 2, 30)  # the W gunicorn workers
        (master,) = _children(pid, "pandasrv.daemon.master")
        assert httpx.get(f"{running.url}/api/v1/system/is_alive").json()["success"]
    assert wait_for(lambda: not master.is_running() or master.status() == psutil.STATUS_ZOMBIE, 30)
    assert "daemon master started" in running.log()
