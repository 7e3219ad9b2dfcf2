"""The daemon's database sessions are terminated and the database refuses connections for a while: once it
is back, the Adder carries on within seconds (not a period later) and no output report stays locked."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import psycopg

from tests.daemon.helpers import wait_for
from tests.reliability.test_supervised_daemon import _report_finished
from tests.web.conftest import fresh_database, start_server
from tests.web.helpers import make_job, submit, wait_status

OUTAGE = 3.0

def _admin(db_url: str) -> psycopg.Connection:
    parts = urlsplit(db_url)
    return psycopg.connect(host=parts.hostname, port=parts.port or 5432, user=parts.username or "postgres",
                           password=parts.password, dbname="postgres", autocommit=True)

def _outage(db_url: str, seconds: float) -> int:
    """No connections to the test database for ``seconds``; every session on it terminated at the start."""
    name = urlsplit(db_url).path.lstrip("/")
    with _admin(db_url) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            killed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                   "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchone()[0]
            time.sleep(seconds)
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    return killed

def test_the_adder_recovers_within_seconds_of_the_database(test_databases, tmp_path, backend="postgresql"):
    daemon = {"n_proc": 1, "scripts": {"add_main": {"period": 240, "loop": True, "arguments": ["100", "0.2"]}}}
    with fresh_database(test_databases, backend, tmp_path) as db_url, \
            start_server(db_url, backend, tmp_path, {"PANDASRV_DAEMON": json.dumps(daemon)}, daemon=True,
                         workers=1, threads=2) as running:
        site = running.add_queue()
        ids = submit(running.url, [make_job(site, f"o{i}") for i in range(6)])
        wait_status(running.tb, ids, "activated")
        running.tb.close()  # its session would be terminated too
        running._task_buffer = None
        wait_for(lambda: "daemon master" in running.log() and "add_main" in running.log(), 30)
        time.sleep(1.0)  # the Adder is in its loop, polling
        assert _outage(db_url, OUTAGE) >= 1
        assert wait_for(lambda: "failed on a database outage" in running.log(), 30), running.log()
        finished = _report_finished(running.url, site, 6)
        back = time.monotonic()
        wait_status(running.tb, finished, "finished", timeout=60)  # without the retry: 240 s later
        recovery = time.monotonic() - back
        rows = running.tb.lock_output_reports("inspector", 100, 0)
        assert rows == []  # every report was processed and deleted, none left locked
        print(f"recovery after the outage: {recovery:.1f} s")
