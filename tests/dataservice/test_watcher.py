"""Every Watcher rule, with its error code, on every backend; the clock is moved with ``now``."""

from __future__ import annotations

import datetime as _dt

import pytest

from pandasrv.dataservice.watcher import run_watcher
from pandasrv.logic.heartbeat import Heartbeat
from tests.dataservice.helpers import job, status_of, store, task_buffer, utcnow

TIMEOUTS = {"sent": 10, "heartbeat": 20, "heartbeat_per_queue": {"SLOW": 1000}, "holding_user": 30,
            "holding": 40, "defined": 50, "assigned": 60, "activated": 70, "pending": 80, "waiting": 90}


@pytest.fixture
def tb(db_url):
    buffer = task_buffer(db_url, watcher=TIMEOUTS)
    yield buffer
    buffer.close()


def sweep(tb, seconds):
    return run_watcher(tb, tb.settings, now=utcnow() + _dt.timedelta(seconds=seconds))


def test_each_rule_waits_for_its_own_timeout(tb):
    ids = {status: store(tb, status)[0] for status in ("sent", "running", "holding", "defined", "assigned",
                                                       "activated", "pending", "waiting")}
    moved = {}
    for seconds in (5, 15, 25, 35, 45, 55, 65, 75, 85, 95):
        moved[seconds] = {pid for pids in sweep(tb, seconds).values() for pid in pids}
    assert moved[5] == set()
    assert moved[15] == {ids["sent"]}
    assert moved[25] == {ids["running"]}
    assert moved[35] == set()                      # a managed job's holding timeout is the long one
    assert moved[45] == {ids["holding"]}
    assert moved[55] == {ids["defined"]}
    assert moved[65] == {ids["assigned"]}
    assert moved[75] == {ids["activated"]}
    assert moved[85] == {ids["pending"]}
    assert moved[95] == {ids["waiting"]}


def test_codes_and_diagnostics(tb):
    sent = store(tb, "sent")[0]
    running = store(tb, "running")[0]
    recovering = store(tb, "starting")[0]
    tb.update_job(Heartbeat(recovering, "starting", {"pilotErrorCode": 1305, "pilotErrorDiag": "stage-in failed"}))
    user_holding = store(tb, "holding", label="user")[0]
    user_transferring = store(tb, "transferring", label="user")[0]
    prod_transferring = store(tb, "transferring")[0]
    killed = store(tb, "running")[0]
    assert tb.kill_jobs([killed], user="someone", is_production=True) == [True]
    stale = {status: store(tb, status)[0] for status in ("defined", "assigned", "activated", "pending", "waiting")}

    moved = sweep(tb, 1000)

    assert moved["sent"] == [sent]
    j = job(tb, sent)
    assert (j.jobStatus, j.jobDispatcherErrorCode) == ("failed", 102)
    assert "didn't receive reply from pilot" in j.jobDispatcherErrorDiag
    assert all(f.status == "failed" for f in j.Files if f.type in ("output", "log"))
    j = job(tb, running)
    assert (j.jobStatus, j.jobDispatcherErrorCode) == ("failed", 100) and "lost heartbeat" in j.jobDispatcherErrorDiag
    j = job(tb, recovering)
    assert (j.jobStatus, j.jobDispatcherErrorCode, j.pilotErrorCode) == ("failed", 101, 1305)
    j = job(tb, user_holding)
    assert (j.jobStatus, j.jobDispatcherErrorCode) == ("failed", 103)
    assert (job(tb, user_transferring).jobStatus, job(tb, user_transferring).jobDispatcherErrorCode) == ("failed", 104)
    assert status_of(tb, prod_transferring) == "transferring"  # the Finisher's business
    j = job(tb, killed)
    assert (j.jobStatus, j.taskBufferErrorCode) == ("cancelled", 100)
    for status, panda_id in stale.items():
        j = job(tb, panda_id)
        assert (j.jobStatus, j.taskBufferErrorCode) == ("closed", 102), status
        assert f"expired in {status}" in j.taskBufferErrorDiag
        assert {f.status for f in j.Files} == {"failed"}  # so that their datasets can close
    assert all(j is None for j in tb.peek_jobs(list(stale.values()) + [sent, running], archived=False))


def test_per_queue_heartbeat_timeout(tb):
    slow = store(tb, "running", site="SLOW")[0]
    fast = store(tb, "running", site="FAST")[0]
    moved = sweep(tb, 500)
    assert moved["heartbeat"] == [fast] and status_of(tb, slow) == "running"
    assert sweep(tb, 1500)["heartbeat[SLOW]"] == [slow]


def test_a_recent_heartbeat_keeps_a_job_alive(tb):
    panda_id = store(tb, "running")[0]
    assert sweep(tb, 5) == {}
    tb.update_job(Heartbeat(panda_id, "running", {}))
    assert sweep(tb, 15) == {}
    assert status_of(tb, panda_id) == "running"
