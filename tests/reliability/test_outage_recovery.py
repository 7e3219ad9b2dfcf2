"""The daemon's database sessions are terminated and the database refuses connections for a while: once it
is back, the Adder carries on within seconds (not a period later) and no output report stays locked."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import psutil
import psycopg

from tests.reliability.test_supervised_daemon import _report_finished
from tests.waiting import wait_for
from tests.web.conftest import fresh_database, start_server
from tests.web.helpers import make_job, submit, wait_status

OUTAGE = 3.0

def _admin(db_url: str) -> psycopg.Connection:
    parts = urlsplit(db_url)
    return psycopg.connect(host=parts.hostname, port=parts.port or 5432, user=parts.username or "postgres",
                           password=parts.password, dbname="postgres", autocommit=True)

def _outage(db_url: str, seconds: float) -> set[int]:
    """No connections to the test database for ``seconds``; every session on it terminated at the start.
    Returns the client ports of the terminated sessions."""
    name = urlsplit(db_url).path.lstrip("/")
    with _admin(db_url) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            # two statements: in one, PostgreSQL may call pg_terminate_backend before it filters the rows
            sessions = admin.execute("SELECT pid, client_port FROM pg_stat_activity WHERE datname = %s "
                                     "AND pid <> pg_backend_pid()", (name,)).fetchall()
            killed = [port for pid, port in sessions
                      if admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]]
            time.sleep(seconds)  # the outage itself: what the daemon has to live through
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    return set(killed)


def _daemon_worker_ports(server_pid: int, db_port: int) -> set[int]:
    """The local ports of the daemon's connections to the database (the master's workers, or their ConBridge
    children)."""
    ports = set()
    for master in psutil.Process(server_pid).children():
        try:
            if "pandasrv.daemon.master" not in " ".join(master.cmdline()):
                continue
            for worker in master.children(recursive=True):
                ports |= {c.laddr.port for c in worker.net_connections("tcp")
                          if c.raddr and c.raddr.port == db_port and c.status == psutil.CONN_ESTABLISHED}
        except psutil.Error:
            pass
    return ports

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
        # the Adder's worker holds its database session: the session the outage terminates
        db_port = urlsplit(db_url).port or 5432
        assert wait_for(lambda: _daemon_worker_ports(running.process.pid, db_port), 30), running.log()
        adder_ports = _daemon_worker_ports(running.process.pid, db_port)
        assert adder_ports & _outage(db_url, OUTAGE), "the Adder's session was not terminated"
        assert wait_for(lambda: "failed on a database outage" in running.log(), 30), running.log()
        finished = _report_finished(running.url, site, 6)
        back = time.monotonic()
        wait_status(running.tb, finished, "finished", timeout=60)  # without the retry: 240 s later
        recovery = time.monotonic() - back
        rows = running.tb.lock_output_reports("inspector", 100, 0)
        assert rows == []  # every report was processed and deleted, none left locked
        print(f"recovery after the outage: {recovery:.1f} s")
