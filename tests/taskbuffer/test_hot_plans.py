"""The hot path stays flat as history grows: its statements never scan the history tables, and only the
calls that must look at the archive (getStatus, a pilot repeating its final update) do, by key.

A database gets a large archive (``bench/archive_seed.py``: tens of thousands of archived jobs with their
files, parameters and status-log rows) and fresh statistics; then the pilot's and the submitter's calls go
through the real web application (in process, so every statement passes through this process's
WrappedCursor, where the test records it). Each recorded statement is explained on its own backend
(PostgreSQL ``EXPLAIN``, MariaDB ``EXPLAIN``, SQLite ``EXPLAIN QUERY PLAN``) with the values it was run with.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gzip
import json
import re
from typing import Any, Iterator

import pytest

from bench.archive_seed import analyze, seed_archive
from pandasrv.dataservice.setupper import run_setupper
from pandasrv.taskbuffer.wrapped_cursor import WrappedConnection, WrappedCursor, connect
from pandasrv.web import user_if
from tests.taskbuffer.test_db_proxy import make_job as make_archived_job
from tests.web.helpers import JSON_HEADERS, make_job, parse_reply
from tests.web.inproc import InProcess, in_process_app

# Large enough that a scan costs far more than an index look-up on every backend's planner.
ARCHIVED_JOBS = {"sqlite": 50_000, "postgresql": 50_000, "mysql": 30_000}
HISTORY_TABLES = frozenset({"jobs_archived", "files", "job_status_log", "job_params"})
# The calls allowed to read jobs_archived (by key, which the plans check): they answer for jobs that may have
# ended, and the Setupper's transition of the submitted jobs looks for them in every stage table.
READS_ARCHIVE = frozenset({"submit", "getStatus", "updateJob finished, repeated after the Adder"})
_TABLE = re.compile(r"\b(?:FROM|JOIN|INTO|(?<!FOR )UPDATE)\s+(\w+)", re.IGNORECASE)
_EXPLAINED = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.IGNORECASE)


class Recorder:
    """Every statement a WrappedCursor runs while a call is being recorded, with its values."""

    def __init__(self) -> None:
        self.calls: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self.current: list[tuple[str, dict[str, Any]]] | None = None

    @contextlib.contextmanager
    def call(self, name: str) -> Iterator[None]:
        self.current = self.calls.setdefault(name, [])
        try:
            yield
        finally:
            self.current = None

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        execute, executemany = WrappedCursor.execute, WrappedCursor.executemany

        def recorded_execute(cursor: WrappedCursor, sql: str, params: Any = None) -> WrappedCursor:
            if self.current is not None:
                self.current.append((sql, dict(params or {})))
            return execute(cursor, sql, params)

        def recorded_executemany(cursor: WrappedCursor, sql: str, seq_of_params: Any) -> WrappedCursor:
            rows = list(seq_of_params)
            if self.current is not None and rows:
                self.current.append((sql, dict(rows[0])))
            return executemany(cursor, sql, rows)

        monkeypatch.setattr(WrappedCursor, "execute", recorded_execute)
        monkeypatch.setattr(WrappedCursor, "executemany", recorded_executemany)


def tables_of(sql: str) -> set[str]:
    return {name.lower() for name in _TABLE.findall(sql)}


def scanned_history_tables(conn: WrappedConnection, sql: str, params: dict[str, Any]) -> tuple[set[str], str]:
    """The history tables the plan of ``sql`` reads whole (a sequential or full-index scan), and the plan."""
    cur = conn.cursor()
    if conn.backend == "postgresql":
        plan = "\n".join(row[0] for row in cur.execute(f"EXPLAIN {sql}", params).fetchall())
        scanned = {name for name in re.findall(r"Seq Scan on (\w+)", plan)}
    elif conn.backend == "mysql":
        rows = cur.execute(f"EXPLAIN {sql}", params).fetchall()
        plan = "\n".join(" | ".join(str(value) for value in row) for row in rows)
        # (an INSERT's own target shows as ALL: it is written, not read)
        scanned = {str(row[2]) for row in rows if row[3] in ("ALL", "index") and row[1] != "INSERT"}
    else:
        rows = cur.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
        plan = "\n".join(str(row[-1]) for row in rows)
        scanned = {match.group(1) for row in rows if (match := re.match(r"SCAN (\w+)", str(row[-1])))}
    return {name.lower() for name in scanned} & HISTORY_TABLES, plan


def legacy(app: InProcess, method: str, data: dict[str, Any]) -> dict[str, Any]:
    result = app.request("POST", f"/server/panda/{method}", body=gzip.compress(json.dumps(data).encode()),
                         headers={"Content-Type": "application/json"})
    assert result.status_code == 200, result.text
    return parse_reply(result.text)


def heartbeat(app: InProcess, panda_id: int, state: str) -> dict[str, Any]:
    data: dict[str, Any] = {"jobId": panda_id, "state": state, "siteName": app.queue, "node": "wn1"}
    if state == "finished":
        data.update(transExitCode=0, pilotErrorCode=0, xml=json.dumps({}))
    return legacy(app, "updateJob", data)


@pytest.fixture
def app(backend: str, test_databases: Any, tmp_path: Any) -> Iterator[InProcess]:
    with in_process_app(test_databases, backend, tmp_path / "inproc") as running:
        old = _dt.datetime(2020, 1, 1)
        seed_archive(running.db_url, make_archived_job("archived", site="OTHER_SITE"), ARCHIVED_JOBS[backend], old)
        analyze(running.db_url)
        yield running


@pytest.mark.slow
def test_hot_statements_never_scan_history(app: InProcess, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    recorder.install(monkeypatch)
    # The Setupper runs in this process, so that its statements (the submit's second half) are recorded too.
    monkeypatch.setattr(user_if, "start_setupper", lambda settings, ids: run_setupper(app.tb, ids, settings))
    with recorder.call("submit"):
        states = json.dumps([make_job(app.queue, f"hot{i}").to_state() for i in range(4)])
        reply = app.request("POST", "/api/v1/job/submit", json={"jobs": states}, headers=JSON_HEADERS).json
    assert reply["success"], reply
    ids = [item[0] for item in reply["data"]]
    pilot = {"siteName": app.queue, "prodSourceLabel": "user", "node": "wn1", "mem": 4000, "diskSpace": 100000}
    with recorder.call("getJob"):
        got = [int(legacy(app, "getJob", pilot)["PandaID"]) for _ in range(3)]
    assert sorted(got) == sorted(ids[:3])
    with recorder.call("updateJob running"):
        assert heartbeat(app, got[0], "running")["StatusCode"] == "0"
    with recorder.call("update_jobs_bulk"):
        bulk = [{"job_id": pid, "job_status": "running", "node": "wn1"} for pid in got[1:]]
        result = app.request("POST", "/api/v1/pilot/update_jobs_bulk", json={"job_list": bulk}, headers=JSON_HEADERS)
        assert all(entry["success"] for entry in result.json["data"]), result.json
    with recorder.call("updateJob finished"):
        assert heartbeat(app, got[0], "finished")["StatusCode"] == "0"
    app.tb.set_job_status([got[0]], "finished")  # the Adder's move to the archive
    with recorder.call("updateJob finished, repeated after the Adder"):
        assert heartbeat(app, got[0], "finished")["StatusCode"] == "0"
    with recorder.call("getStatus"):
        status = legacy(app, "getStatus", {"ids": " ".join(map(str, ids))})
    assert status["status"].split() == ["finished", "running", "running", "activated"]

    conn = connect(app.db_url)
    problems = []
    try:
        conn.begin()
        for call, statements in recorder.calls.items():
            assert statements, f"{call}: no statement recorded"
            touched = set().union(*(tables_of(sql) for sql, _ in statements))
            if call not in READS_ARCHIVE and "jobs_archived" in touched:
                problems.append(f"{call} touches jobs_archived: {touched}")
            for sql, params in statements:
                if not _EXPLAINED.match(sql):
                    continue
                scanned, plan = scanned_history_tables(conn, sql, params)
                if scanned:
                    problems.append(f"{call}: scans {sorted(scanned)}\n  {sql[:300]}\n  {plan}")
        conn.rollback()
    finally:
        conn.close()
    assert {"jobs_archived"} & set().union(*(tables_of(sql) for sql, _ in recorder.calls["getStatus"]))
    assert not problems, "\n".join(problems)
