"""The heartbeat's two paths on every backend: a plain repeat is one guarded statement that commits itself,
everything else takes the locked path, and both give the same replies and rows.

Statements are counted at the WrappedCursor (as test_hot_plans does). The property test places twin jobs
in any state and attemptNr, sends the same heartbeat to one through ``update_job`` (which may take the
one-statement path) and to the other through the locked path alone, and compares what each answered and
wrote; and it checks the guards: a stale attemptNr or an ended job changes nothing.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pandasrv.logic.heartbeat import Heartbeat
from pandasrv.taskbuffer import job_states
from pandasrv.taskbuffer.claim_request import ClaimRequest
from pandasrv.taskbuffer.db_proxy import DBProxy
from pandasrv.taskbuffer.db_proxy_mods.base import transaction
from pandasrv.taskbuffer.db_proxy_mods.jobs_update import column_values
from pandasrv.taskbuffer.wrapped_cursor import WrappedCursor
from tests.taskbuffer.test_db_proxy import activated, make_job

ACTIVE_STATES = ("activated", "sent", "starting", "running", "holding", "merging", "transferring")
PLACED_STATES = ACTIVE_STATES + tuple(sorted(job_states.FINAL_STATES))
ROW = "jobStatus, attemptNr, pilotID, commandToPilot, jobDispatcherErrorDiag, startTime IS NULL, endTime IS NULL"


@pytest.fixture
def proxy(db_url: str) -> Iterator[DBProxy]:
    db = DBProxy(db_url)
    yield db
    db.close()


@contextlib.contextmanager
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, bool]]]:
    """Every statement run meanwhile, with whether it ran outside any transaction (PostgreSQL autocommit)."""
    statements: list[tuple[str, bool]] = []
    execute = WrappedCursor.execute

    def recorded_execute(cursor: WrappedCursor, sql: str, params: Any = None) -> WrappedCursor:
        raw = cursor.connection.raw
        statements.append((sql, bool(getattr(raw, "autocommit", False)) if cursor.connection.backend == "postgresql" else False))
        return execute(cursor, sql, params)

    with monkeypatch.context() as patch:
        patch.setattr(WrappedCursor, "execute", recorded_execute)
        yield statements


@transaction
def place(proxy: DBProxy, panda_id: int, status: str, attempt: int, command: str | None = None) -> None:
    """Put a job in any state (and stage table) with the given attemptNr and pending command."""
    proxy._execute("UPDATE jobs_active SET jobStatus = :s, attemptNr = :a, commandToPilot = :c WHERE PandaID = :id",
                   {"s": status, "a": attempt, "c": command, "id": panda_id})
    if status in job_states.FINAL_STATES:
        proxy._move_rows([panda_id], "jobs_active", "jobs_archived")


@transaction(readonly=True)
def state_of(proxy: DBProxy, panda_id: int) -> tuple[Any, ...]:
    """The job's row (in whichever stage table), its status-log rows and its pending output reports."""
    rows = [row for table in job_states.STAGE_TABLES
            for row in proxy._fetchall(f"SELECT {ROW} FROM {table} WHERE PandaID = :id", {"id": panda_id})]
    logs = proxy._fetchall("SELECT jobStatus, reason FROM job_status_log WHERE PandaID = :id ORDER BY jobStatus",
                           {"id": panda_id})
    reports = proxy._fetchall("SELECT jobStatus FROM job_output_report WHERE PandaID = :id", {"id": panda_id})
    (row,) = rows
    status, attempt, pilot, command, diag, no_start, no_end = row
    # The diag a pilot's holding/transferring sets carries the second it was set: compare its form only.
    diag = diag.rsplit(" at ", 1)[0] if diag else diag
    return (status, attempt, pilot, command, diag, bool(no_start), bool(no_end)), sorted(logs), sorted(reports)


def test_a_repeated_heartbeat_is_one_statement(proxy: DBProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    (panda_id,) = activated(proxy, make_job())
    proxy.claim_jobs(ClaimRequest(site="SITE", labels=("managed",)))
    assert proxy.update_job(Heartbeat(panda_id, "running", {}, attempt_nr=0))["status"] == "running"
    before = state_of(proxy, panda_id)
    with recorded(monkeypatch) as statements:
        reply = proxy.update_job(Heartbeat(panda_id, "running", {"pilotID": "p1", "maxRSS": 7}, attempt_nr=0))
    assert reply == {"found": True, "result": "ok", "status": "running", "command": None, "debug": False}
    assert len(statements) == 1, statements
    sql, autocommit = statements[0]
    assert sql.startswith("UPDATE jobs_active SET") and "attemptNr = :attempt" in sql and "FOR UPDATE" not in sql
    assert autocommit or proxy.backend != "postgresql"  # no BEGIN and no COMMIT around it
    after = state_of(proxy, panda_id)
    assert after[0][2] == "p1" and after[1:] == before[1:]  # the columns set, no status-log row
    assert proxy.peek_jobs([panda_id])[0].maxRSS == 7


@pytest.mark.parametrize("kind", ["command", "debug", "texts", "stale", "state change"])
def test_anything_else_takes_the_locked_path(proxy: DBProxy, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    (panda_id,) = activated(proxy, make_job(specialHandling="ddm:rucio,dm" if kind == "debug" else None))
    proxy.claim_jobs(ClaimRequest(site="SITE", labels=("managed",)))
    proxy.update_job(Heartbeat(panda_id, "running", {}))
    if kind == "command":
        assert proxy.kill_jobs([panda_id], user="alice", is_production=False) == [True]
    heartbeat = Heartbeat(panda_id, "transferring" if kind == "state change" else "running", {},
                          attempt_nr=5 if kind == "stale" else 0, pilot_log="log" if kind == "texts" else None)
    with recorded(monkeypatch) as statements:
        reply = proxy.update_job(heartbeat)
    assert any("FOR UPDATE" in sql or proxy.backend == "sqlite" and sql.startswith("SELECT") for sql, _ in statements)
    expected = {"command": ("ok", "tobekilled"), "debug": ("ok", "debug"), "texts": ("ok", None),
                "stale": ("badattemptnr", "tobekilled"), "state change": ("ok", None)}[kind]
    assert (reply["result"], reply["command"]) == expected


def test_a_batch_is_one_transaction(proxy: DBProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = activated(proxy, *(make_job(f"j{i}") for i in range(4)))
    proxy.claim_jobs(ClaimRequest(site="SITE", labels=("managed",), n=4))
    begins: list[bool] = []
    connection = type(proxy._connection())
    begin = connection.begin

    def counted_begin(conn: Any, immediate: bool = False) -> None:
        begins.append(immediate)
        begin(conn, immediate)

    monkeypatch.setattr(connection, "begin", counted_begin)
    replies = proxy.update_jobs([Heartbeat(ids[2], "running", {}), Heartbeat(ids[0], "running", {}),
                                 Heartbeat(10**12, "running", {}), Heartbeat(ids[1], "running", {}, attempt_nr=9)])
    assert begins == [True]
    assert [(r["result"], r["status"]) for r in replies] == [("ok", "running"), ("ok", "running"), ("notfound", None),
                                                               ("badattemptnr", "sent")]
    place(proxy, ids[3], "activated", 0)
    replies = proxy.update_jobs([Heartbeat(ids[3], "running", {}), Heartbeat(ids[2], "running", {"pilotID": "p"})])
    assert replies[0]["result"] == "illegal" and "activated -> running" in replies[0]["error"]
    assert replies[1]["result"] == "ok" and state_of(proxy, ids[2])[0][2] == "p"


heartbeats = st.builds(
    lambda status, attempt, texts, pilot: (status, attempt, texts, pilot),
    st.sampled_from(sorted(job_states.PILOT_STATES)),
    st.sampled_from([None, 0, 1, 2]),
    st.booleans(),
    st.sampled_from([None, "pilot-x"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(placed=st.sampled_from(PLACED_STATES), attempt=st.sampled_from([0, 1]),
       command=st.sampled_from([None, "tobekilled"]), beat=heartbeats)
def test_both_paths_agree_and_guard(proxy: DBProxy, placed: str, attempt: int, command: str | None,
                                    beat: tuple[str, int | None, bool, str | None]) -> None:
    status, attempt_nr, texts, pilot = beat
    twins = activated(proxy, make_job("a"), make_job("b"))
    for panda_id in twins:
        place(proxy, panda_id, placed, attempt, command)
    before = state_of(proxy, twins[0])
    outcomes = []
    for panda_id, locked_only in zip(twins, (False, True)):
        heartbeat = Heartbeat(panda_id, status, {"pilotID": pilot} if pilot else {}, attempt_nr=attempt_nr,
                              report="{}" if status in ("finished", "failed") else None, stdout="out" if texts else None)
        try:
            if locked_only:
                reply = proxy._decided_heartbeat(heartbeat, column_values(heartbeat.values))
            else:
                reply = proxy.update_job(heartbeat)
        except job_states.IllegalTransition as exc:
            reply = {"illegal": str(exc)}
        outcomes.append((reply, state_of(proxy, panda_id)))
    assert outcomes[0] == outcomes[1]
    reply, after = outcomes[0]
    stale = attempt_nr is not None and attempt_nr != attempt
    if "illegal" in reply or placed in job_states.FINAL_STATES or (stale and placed not in job_states.FINAL_STATES):
        assert after == before  # refused, ended or stale: nothing written
    if stale and placed not in job_states.FINAL_STATES:
        assert (reply["result"], reply["command"]) == ("badattemptnr", "tobekilled")
    if placed in job_states.FINAL_STATES:
        assert reply["result"] == "notfound" and reply["command"] == "tobekilled"
