"""A run that fails releases what it locked — also when its worker dies or its master is killed — and one
that met a database outage is retried within seconds."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from pandasrv.daemon.master import RETRY_FIRST, RETRY_MAX, DaemonMaster
from pandasrv.daemon.schedule import load_schedule
from pandasrv.daemon.worker import ScriptRunner
from pandasrv.taskbuffer.task_buffer import TaskBuffer
from tests.daemon.helpers import alive, daemon_settings, probe
from tests.waiting import wait_for

OUTAGE = 5.0  # seconds: longer than a worker whose master is gone used to try to give back its locks (3 s)
FAILURES = {"ConnectionLost": "retry", "DBTimeout": "retry", "PoolTimeout": "retry", "LockTimeout": "retry",
            "IntegrityError": "error", "RuntimeError": "error"}


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_a_failed_run_releases_its_reports_and_lease(db_url, failure):
    script = {"module": "tests.daemon.locking_script", "arguments": [failure], "period": 240}
    settings = daemon_settings(db_url, {"plain": script, "exclusive": {**script, "sync": True}})
    schedule = load_schedule(settings)
    tb = TaskBuffer(settings)
    try:
        for panda_id in (1, 2, 3):
            tb.insert_output_report(panda_id, 0, "user", "finished", "{}")
        runner = ScriptRunner(tb, settings, schedule)
        for name in ("plain", "exclusive"):
            assert runner.run(schedule[name])[0] == FAILURES[failure]
            # free again: a fresh owner takes all three at once, and the sync script's lease is gone
            taken = tb.lock_output_reports("next-owner", 10, 600)
            assert sorted(r["PandaID"] for r in taken) == [1, 2, 3]
            for panda_id in (1, 2, 3):
                tb.unlock_output_report(panda_id, 0)
        assert tb.get_lease_expiry(schedule["exclusive"].lease_component) is None
        # locks of other owners are left alone
        tb.lock_output_reports("another-machine-1-abcd", 10, 600)
        runner.run(schedule["plain"])
        assert tb.lock_output_reports("next-owner", 10, 600) == []
    finally:
        tb.close()


@pytest.mark.backends("sqlite")
def test_the_master_retries_an_outage_within_seconds_and_backs_off(db_url):
    settings = daemon_settings(db_url, {"agent": {"module": "tests.daemon.locking_script", "period": 240}})
    master = DaemonMaster(settings)
    state = master.states["agent"]
    delays = []
    for _ in range(8):
        state.started = 1000.0
        master._finish("agent", "retry", None, 1000.0)
        delays.append(state.next_due - 1000.0)
    assert delays == [min(RETRY_FIRST * 2 ** n, RETRY_MAX) for n in range(8)]
    master._finish("agent", "ok", None, 1001.0)
    assert state.next_due == 1000.0 + 240 and state.retries == 0


def _locking_run(tb: TaskBuffer, masters: Any, settings: Any, marker: Path) -> tuple[Any, int]:
    """Three output reports, and a master whose ``locking_script`` run has locked them: (master, worker pid)."""
    for panda_id in (1, 2, 3):
        tb.insert_output_report(panda_id, 0, "user", "finished", "{}")
    master = masters.start(settings)
    assert wait_for(marker.exists, 30)
    return master, int(marker.read_text())


@pytest.mark.parametrize("death", ["timeout", "exit", "master killed"])
def test_a_run_whose_worker_dies_leaves_nothing_locked(db_url, tmp_path, masters, death):
    """A worker killed on its run's timeout, one that dies, and every worker of a master killed with -9: what
    they had locked (output reports, a sync script's lease) is free within seconds, not after 600 s."""
    marker = tmp_path / "locked"
    how = {"timeout": "hang", "exit": "exit", "master killed": "hang"}[death]
    script = {"module": "tests.daemon.locking_script", "arguments": [how, str(marker)], "period": 240,
              "timeout": 2 if death == "timeout" else 200, "sync": True}
    settings = daemon_settings(db_url, {"stuck": script, "other": probe(tmp_path / "runs.jsonl", "sleep", period=1)})
    tb = TaskBuffer(settings)
    try:
        master, worker = _locking_run(tb, masters, settings, marker)
        if death == "master killed":
            os.kill(master.pid, signal.SIGKILL)
            master.wait()
        assert wait_for(lambda: not alive(worker), 30)
        # one owner takes all three at once: the dead run's locks were given back, not left to expire
        assert wait_for(lambda: len(tb.lock_output_reports("next-owner", 10, 600)) == 3, 30)
        assert tb.get_lease_expiry(load_schedule(settings)["stuck"].lease_component) is None
    finally:
        tb.close()


@pytest.mark.backends("postgresql")
def test_the_locks_of_a_killed_masters_worker_are_given_back_after_a_database_outage(db_url, tmp_path, masters):
    """The master is killed while the database refuses new sessions: its worker dies at once, and what it had
    locked is given back once the database is there again (not after ``lock_seconds``)."""
    marker = tmp_path / "locked"
    script = {"module": "tests.daemon.locking_script", "arguments": ["hang", str(marker)], "period": 240, "timeout": 200}
    settings = daemon_settings(db_url, {"stuck": script})
    tb = TaskBuffer(settings)
    name = urlsplit(db_url).path.lstrip("/")
    admin = psycopg.connect(urlsplit(db_url)._replace(path="/postgres").geturl(), autocommit=True)
    try:
        master, worker = _locking_run(tb, masters, settings, marker)
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            os.kill(master.pid, signal.SIGKILL)
            master.wait()
            assert wait_for(lambda: not alive(worker), 30)
            time.sleep(OUTAGE)  # the outage goes on after the worker's death
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        assert wait_for(lambda: len(tb.lock_output_reports("next-owner", 10, 600)) == 3, 30)
    finally:
        admin.close()
        tb.close()
