"""A claim whose getJob reply is lost is handed out again, and a repeated final update keeps its first answer.

From the server's side a lost reply and a pilot that never confirms look the same: a job ``sent`` with no
``starting``/``running``. The daemon's recover_claims gives it back after ``watcher.unconfirmed``; the first
pilot's late heartbeat (old attemptNr) is then refused in-band.
"""

from __future__ import annotations

import datetime as _dt
import json
import multiprocessing
import os
import signal
from typing import Iterator

import pytest

from pandasrv.config import load_settings
from pandasrv.logic.claims import requeue_unconfirmed, unconfirmed_reason
from pandasrv.logic.heartbeat import Heartbeat
from pandasrv.taskbuffer import con_bridge
from pandasrv.taskbuffer.claim_request import ClaimRequest
from pandasrv.taskbuffer.db_proxy import DBProxy
from pandasrv.taskbuffer.db_proxy_mods.jobs_requeue import REQUEUE_PREFIX
from tests.reliability.test_supervised_daemon import file_report
from tests.taskbuffer.test_db_proxy import make_job as make_db_job
from tests.waiting import wait_for
from tests.web.conftest import RunningServer, fresh_database, selected_backends, start_server
from tests.web.helpers import make_job, pilot_call, submit, wait_status

MANAGED = ("managed",)
TWO_FOR_WN = ClaimRequest(site="SITE", labels=MANAGED, n=2, node="wn")

UNCONFIRMED = 2


@pytest.fixture(scope="module", params=selected_backends())
def daemon_server(request: pytest.FixtureRequest, test_databases, tmp_path_factory) -> Iterator[RunningServer]:
    scripts = {"recover_claims": {"period": 1}, "add_main": {"period": 240, "loop": True, "arguments": ["100", "0.2"]}}
    workdir = tmp_path_factory.mktemp("lost-claims")
    with fresh_database(test_databases, request.param, workdir) as db_url, \
            start_server(db_url, request.param, workdir, {"PANDASRV_DAEMON": json.dumps({"n_proc": 2, "scripts": scripts})},
                         daemon=True, workers=1, threads=4, watcher={"unconfirmed": UNCONFIRMED}) as running:
        yield running


def _get(server: RunningServer, site: str, node: str) -> dict:
    job = pilot_call(server.url, "getJob", {"siteName": site, "prodSourceLabel": "user", "node": node})
    assert job["StatusCode"] == "0", job
    return job


def _update(server: RunningServer, job: dict, state: str, attempt: object = None) -> dict:
    return pilot_call(server.url, "updateJob", {"jobId": job["PandaID"], "state": state, "xml": file_report(job["logFile"]),
                                                "attemptNr": job["attemptNr"] if attempt is None else attempt})


def test_an_unconfirmed_claim_is_handed_out_again_and_the_late_pilot_is_refused(daemon_server):
    server = daemon_server
    site = server.add_queue()
    ids = submit(server.url, [make_job(site, f"lost{i}") for i in range(2)])
    wait_status(server.tb, ids, "activated")
    lost = _get(server, site, "wn-lost")
    confirmed = _get(server, site, "wn-ok")
    assert _update(server, confirmed, "starting")["command"] == "NULL"
    lost_id, first_attempt = int(lost["PandaID"]), int(lost["attemptNr"])
    assert wait_for(lambda: server.tb.get_job_status([lost_id])[lost_id][:2] == ("activated", first_attempt + 1), 30), \
        server.tb.get_job_status([lost_id])
    assert server.tb.get_job_status([int(confirmed["PandaID"])])[int(confirmed["PandaID"])][0] == "starting"
    history = server.tb.monitor_status_history(lost_id)
    assert [h["jobStatus"] for h in history][-2:] == ["sent", "activated"], history

    again = _get(server, site, "wn-second")
    assert (int(again["PandaID"]), int(again["attemptNr"])) == (lost_id, first_attempt + 1)
    late = _update(server, lost, "running")  # the first pilot's attemptNr
    assert (late["StatusCode"], late["command"]) == ("0", "tobekilled"), late
    assert server.tb.get_job_status([lost_id])[lost_id][:2] == ("sent", first_attempt + 1)
    for state in ("running", "finished"):
        assert _update(server, again, state)["StatusCode"] == "0"
    wait_status(server.tb, [lost_id], "finished", timeout=60)


@pytest.mark.parametrize("final", ["finished", "failed"])
def test_a_repeated_final_update_after_archival_gets_the_first_answer(daemon_server, final):
    server = daemon_server
    site = server.add_queue()
    (panda_id,) = submit(server.url, [make_job(site, f"repeat-{final}")])
    wait_status(server.tb, [panda_id], "activated")
    job = _get(server, site, "wn-repeat")
    assert _update(server, job, "running")["StatusCode"] == "0"
    first = _update(server, job, final)
    assert first["StatusCode"] == "0", first
    assert _update(server, job, final) == first  # still holding
    wait_status(server.tb, [panda_id], final, timeout=60)
    assert _update(server, job, final) == first  # archived
    other = "failed" if final == "finished" else "finished"
    assert _update(server, job, other)["command"] == "tobekilled"  # not the update that was applied
    assert _update(server, job, final, attempt=int(job["attemptNr"]) + 5)["command"] == "tobekilled"


# --- the taskbuffer side: who is given back, and the reply the ConBridge knows was lost ---------------------
def _reasons(proxy: DBProxy, panda_id: int) -> list[tuple[str, str | None]]:
    return [(h["jobStatus"], h["reason"]) for h in proxy.monitor_status_history(panda_id)]


def test_only_unconfirmed_claims_are_given_back_and_only_so_often(db_url):
    proxy = DBProxy(db_url)
    try:
        lost, confirmed = proxy.insert_jobs([make_db_job("lost"), make_db_job("ok")], "activated")
        settings = load_settings(db_url=db_url, watcher={"unconfirmed": 60, "unconfirmed_requeues": 2})
        later = _dt.datetime.now(_dt.UTC).replace(tzinfo=None) + _dt.timedelta(seconds=120)
        for attempt in range(2):
            claimed = sorted(job.PandaID for job in proxy.claim_jobs(TWO_FOR_WN))
            assert claimed == (sorted([lost, confirmed]) if attempt == 0 else [lost])
            if attempt == 0:
                assert proxy.update_job(Heartbeat(confirmed, "starting", {}, attempt_nr=0))["result"] == "ok"
            assert requeue_unconfirmed(proxy, settings) == []  # not old enough yet
            assert requeue_unconfirmed(proxy, settings, now=later) == [lost]
            assert proxy.get_job_status([lost, confirmed]) == {lost: ("activated", attempt + 1, None),
                                                               confirmed: ("starting", 0, None)}
            assert proxy.update_job(Heartbeat(lost, "running", {}, attempt_nr=attempt))["result"] == "badattemptnr"
        assert [job.PandaID for job in proxy.claim_jobs(TWO_FOR_WN)] == [lost]
        assert requeue_unconfirmed(proxy, settings, now=later) == []  # given back twice: left to the sent timeout
        (behind,) = proxy.insert_jobs([make_db_job("behind")], "activated")
        assert [job.PandaID for job in proxy.claim_jobs(TWO_FOR_WN)] == [behind]
        assert requeue_unconfirmed(proxy, settings, now=later, batch_size=1) == [behind]  # not hidden by ``lost``
        reason = REQUEUE_PREFIX + unconfirmed_reason(60)
        assert _reasons(proxy, lost) == [("activated", None), ("sent", None), ("activated", reason), ("sent", None),
                                         ("activated", reason), ("sent", None)]
        assert requeue_unconfirmed(proxy, load_settings(db_url=db_url, watcher={"unconfirmed": 0}), now=later) == []
    finally:
        proxy.close()


def test_a_claim_whose_reply_meets_a_broken_pipe_is_given_back_at_once(db_url):
    """The ConBridge child's own loop: its caller (a web worker) sends getJob's claim and goes away before
    the reply; the child's send fails with a broken pipe, and it gives the claim back without waiting."""
    proxy = DBProxy(db_url)
    try:
        (panda_id,) = proxy.insert_jobs([make_db_job("pipe")], "activated")
        context = multiprocessing.get_context("forkserver")
        ours, theirs = context.Pipe()
        child = context.Process(target=con_bridge._serve, args=(theirs, db_url, None), daemon=True)
        child.start()
        theirs.close()
        ok, _session = ours.recv()
        assert ok
        os.kill(child.pid, signal.SIGSTOP)  # so that the child cannot reply before the caller is gone
        ours.send(("claim_jobs", (ClaimRequest(site="SITE", labels=MANAGED, node="wn-gone"),), {}))
        ours.close()  # the web worker is gone before the reply
        os.kill(child.pid, signal.SIGCONT)
        child.join(60)
        assert child.exitcode == 0
        assert proxy.get_job_status([panda_id]) == {panda_id: ("activated", 1, None)}
        reason = REQUEUE_PREFIX + con_bridge.UNDELIVERED_REASON.format(exc="BrokenPipeError")
        assert _reasons(proxy, panda_id)[-2:] == [("sent", None), ("activated", reason)]
        assert [job.attemptNr for job in proxy.claim_jobs(ClaimRequest(site="SITE", labels=MANAGED, node="wn-next"))] == [1]
    finally:
        proxy.close()
