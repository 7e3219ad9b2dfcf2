"""``pandasrv serve``'s web workers: kill -9 of a worker, and a new one serves; workers that keep dying are said
loudly, once per interval."""

from __future__ import annotations

import os
import signal

import httpx

from tests.daemon.helpers import live_children
from tests.waiting import wait_for
from tests.web.conftest import fresh_database, start_server


def _workers(server_pid: int) -> list[int]:
    """The live gunicorn workers: the arbiter's children that run the same command (no daemon here)."""
    return sorted(child.pid for child in live_children(server_pid, "pandasrv.cli"))


def test_killed_web_workers_are_replaced_and_a_worker_that_keeps_dying_is_reported(test_databases, tmp_path,
                                                                                  backend="sqlite"):
    with fresh_database(test_databases, backend, tmp_path) as db_url, \
            start_server(db_url, backend, tmp_path, workers=2, threads=2) as running:
        pid = running.process.pid
        assert wait_for(lambda: len(_workers(pid)) == 2, 30), running.log()
        for _ in range(4):
            victim = _workers(pid)[0]
            os.kill(victim, signal.SIGKILL)
            assert wait_for(lambda victim=victim: len(_workers(pid)) == 2 and victim not in _workers(pid), 30), \
                running.log()
            assert httpx.get(f"{running.url}/server/panda/isAlive", timeout=30).text == "alive=yes"
        log = running.log()
        assert log.count("web worker died") == 4, log
        assert log.count("web worker keeps dying") == 1, log
