"""The DB layer on every backend: the same tests, unchanged, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from pandasrv.logic.heartbeat import Heartbeat
from pandasrv.taskbuffer.claim_request import ClaimRequest
from pandasrv.taskbuffer.db_proxy import DBProxy
from pandasrv.taskbuffer.db_proxy_mods.base import transaction
from pandasrv.taskbuffer.file_spec import FileSpec
from pandasrv.taskbuffer.job_spec import JobSpec
from pandasrv.taskbuffer.job_states import IllegalTransition


def make_job(name: str = "job", *, site: str = "SITE", label: str = "managed", priority: int = 100,
             n_outputs: int = 1, **values: Any) -> JobSpec:
    """A job with one input, ``n_outputs`` outputs and a log file, as a submitter would build it."""
    values = {"prodUserName": "alice", **values}
    job = JobSpec(jobName=name, computingSite=site, prodSourceLabel=label, currentPriority=priority,
                  assignedPriority=priority, transformation="run.sh", jobParameters=f"--name {name}",
                  cloud="WORLD", **values)
    job.add_file(FileSpec(lfn=f"{name}.in", type="input", dataset="in.ds", status="ready", GUID="g-in"))
    for i in range(n_outputs):
        job.add_file(FileSpec(lfn=f"{name}.$PANDAID.out{i}", type="output", dataset="out.ds"))
    job.add_file(FileSpec(lfn=f"{name}.$PANDAID.log.tgz", type="log", dataset="log.ds"))
    return job


@pytest.fixture
def proxy(db_url: str) -> Iterator[DBProxy]:
    db = DBProxy(db_url)
    yield db
    db.close()


def activated(proxy: DBProxy, *jobs: JobSpec) -> list[int]:
    return proxy.insert_jobs(list(jobs), status="activated")


def running(proxy: DBProxy, site: str = "SITE") -> int:
    """A job a pilot has claimed and reported running."""
    (panda_id,) = activated(proxy, make_job("run", site=site))
    assert [job.PandaID for job in proxy.claim_jobs(ClaimRequest(site=site, labels=("managed",), node="wn"))] == [panda_id]
    assert proxy.update_job(Heartbeat(panda_id, "running", {}))["result"] == "ok"
    return panda_id


# --- insert / peek --------------------------------------------------------------------------------
def test_insert_then_peek_roundtrip(proxy):
    jobs = [make_job(f"j{i}", n_outputs=2) for i in range(3)]
    ids = proxy.insert_jobs(jobs)
    assert len(set(ids)) == 3 and ids == sorted(ids) == [job.PandaID for job in jobs]

    peeked = proxy.peek_jobs(ids + [10**12])
    assert peeked[-1] is None
    for original, job in zip(jobs, peeked):
        assert job.PandaID == original.PandaID
        assert job.jobStatus == "defined"
        assert job.creationTime == job.modificationTime == job.stateChangeTime is not None
        assert job.jobParameters == f"--name {original.jobName}"
        assert (job.transformation, job.cloud, job.currentPriority) == ("run.sh", "WORLD", 100)
        lfns = [f.lfn for f in job.Files]
        assert lfns == [f.lfn for f in original.Files]
        assert f"{job.jobName}.{job.PandaID}.out1" in lfns and f"{job.jobName}.{job.PandaID}.log.tgz" in lfns
        assert {f.lfn: f.status for f in job.Files}[f"{job.jobName}.in"] == "ready"
        assert {f.status for f in job.Files if f.type != "input"} == {"unknown"}
        assert len({f.row_ID for f in job.Files}) == 4 and {f.PandaID for f in job.Files} == {job.PandaID}
    assert proxy.get_job_status(ids) == {i: ("defined", 0, None) for i in ids}


def test_insert_in_the_stage_table_of_the_status(proxy):
    (panda_id,) = activated(proxy, make_job())
    assert proxy.get_job_status([panda_id]) == {panda_id: ("activated", 0, None)}
    assert proxy.peek_jobs([panda_id], archived=False)[0].jobStatus == "activated"


# --- claim ------------------------------------------------------------------------------------------
def test_claim_hands_out_matching_jobs_best_first(proxy):
    low, high, same_a, same_b = activated(
        proxy, make_job("low", priority=10), make_job("high", priority=900),
        make_job("same_a", priority=500), make_job("same_b", priority=500),
    )
    activated(proxy, make_job("other_site", site="ELSEWHERE", priority=999),
              make_job("user_job", label="user", priority=999))
    proxy.insert_jobs([make_job("not_activated", priority=999)])

    first = proxy.claim_jobs(ClaimRequest(site="SITE", labels=("managed",), n=2, node="wn1", computing_element="ce1",
                                          scheduler_id="harvester"))
    assert [job.PandaID for job in first] == [high, same_a]
    job = first[0]
    assert (job.jobStatus, job.modificationHost, job.computingElement, job.schedulerID) == ("sent", "wn1", "ce1", "harvester")
    assert job.startTime == job.modificationTime == job.stateChangeTime is not None
    assert job.jobExecutionID == 0
    assert job.jobParameters == "--name high" and [f.type for f in job.Files] == ["input", "output", "log"]

    assert [job.PandaID for job in proxy.claim_jobs(ClaimRequest(site="SITE", labels=("managed",), n=10))] == [same_b, low]
    assert proxy.claim_jobs(ClaimRequest(site="SITE", labels=("managed",), n=10)) == []
    assert proxy.get_job_status([high, low]) == {high: ("sent", 0, None), low: ("sent", 0, None)}
    assert [job.jobName for job in proxy.claim_jobs(ClaimRequest(site="SITE", n=5, labels=("user", "panda")))] == ["user_job"]


def test_claim_filters(proxy):
    ids = dict(zip(
        ("big_ram", "any_ram", "big_disk", "long", "no_walltime", "mcore", "bob", "task7", "background"),
        activated(
            proxy,
            make_job("big_ram", minRamCount=8000, maxDiskCount=1, maxWalltime=1),
            make_job("any_ram", minRamCount=0, maxDiskCount=1, maxWalltime=1),
            make_job("big_disk", minRamCount=1, maxDiskCount=90000, maxWalltime=1),
            make_job("long", minRamCount=1, maxDiskCount=1, maxWalltime=99999),
            make_job("no_walltime", minRamCount=1, maxDiskCount=1),
            make_job("mcore", resource_type="MCORE", minRamCount=1, maxDiskCount=1, maxWalltime=1),
            make_job("bob", prodUserName="bob", minRamCount=1, maxDiskCount=1, maxWalltime=1),
            make_job("task7", jediTaskID=7, minRamCount=1, maxDiskCount=1, maxWalltime=1),
            make_job("background", jobExecutionID=1, minRamCount=1, maxDiskCount=1, maxWalltime=1),
        ),
    ))

    def names(**filters: Any) -> set[str]:
        claimed = proxy.claim_jobs(ClaimRequest(site="SITE", labels=("managed",), n=100, **filters))
        if claimed:  # put them back for the next filter
            proxy.set_job_status([job.PandaID for job in claimed], "activated")
        return {job.jobName for job in claimed}

    assert names(background=True) == {"background"}  # first: any other claim resets jobExecutionID
    assert names(memory=2000) == set(ids) - {"big_ram"}
    assert names(disk=1000) == set(ids) - {"big_disk"}
    assert names(walltime=3600) == set(ids) - {"long"}
    assert names(resource_type="MCORE") == {"mcore"}
    assert names(owner="bob") == {"bob"}
    assert names(task_id=7) == {"task7"}
    assert names(memory=2000, disk=1000, walltime=3600, resource_type="MCORE") == {"mcore"}


# --- heartbeat --------------------------------------------------------------------------------------
def test_heartbeat_running_then_final(proxy):
    (panda_id,) = activated(proxy, make_job())
    proxy.claim_jobs(ClaimRequest(site="SITE", labels=("managed",)))
    reply = proxy.update_job(Heartbeat(panda_id, "starting", {"pilotID": "pilot-1"}, attempt_nr=0))
    assert reply == {"found": True, "result": "ok", "status": "starting", "command": None, "debug": False}
    assert proxy.update_job(Heartbeat(panda_id, "running", {"cpuConsumptionTime": 12}))["status"] == "running"
    job = proxy.peek_jobs([panda_id])[0]
    assert (job.jobStatus, job.pilotID, job.cpuConsumptionTime) == ("running", "pilot-1", 12)
    assert proxy.update_job(Heartbeat(panda_id, "starting", {}))["status"] == "running"

    reply = proxy.update_job(Heartbeat(panda_id, "finished", {"transExitCode": "0"}, report='{"f.out": {}}',
                             metadata='{"files": {}}', pilot_log="pilot says", stdout="x" * 5000))
    assert reply["result"] == "ok" and reply["status"] == "holding"
    job = proxy.peek_jobs([panda_id])[0]
    assert (job.jobStatus, job.transExitCode, job.metadata) == ("holding", "0", '{"files": {}}')
    assert job.endTime is not None
    reports = proxy.lock_output_reports("adder", 10, 60)
    assert [(r["PandaID"], r["jobStatus"], r["data"], r["attemptNr"]) for r in reports] == [
        (panda_id, "finished", '{"f.out": {}}', 0)
    ]
    # A repeated final heartbeat must not report the files twice.
    assert proxy.update_job(Heartbeat(panda_id, "finished", {}, report="{}"))["result"] == "alreadydone"
    assert proxy.update_job(Heartbeat(panda_id, "running", {}))["status"] == "holding"


def test_heartbeat_guards(proxy):
    assert proxy.update_job(Heartbeat(10**12, "running", {})) == {
        "found": False, "result": "notfound", "status": None, "command": "tobekilled", "debug": False,
    }
    panda_id = running(proxy)
    reply = proxy.update_job(Heartbeat(panda_id, "running", {"pilotID": "late"}, attempt_nr=3))
    assert (reply["result"], reply["command"]) == ("badattemptnr", "tobekilled")
    assert proxy.peek_jobs([panda_id])[0].pilotID is None
    with pytest.raises(ValueError):
        proxy.update_job(Heartbeat(panda_id, "activated", {}))
    with pytest.raises(ValueError):
        proxy.update_job(Heartbeat(panda_id, "running", {"PandaID": 1}))


def test_heartbeat_returns_commands(proxy):
    (panda_id,) = activated(proxy, make_job(specialHandling="dm"))
    proxy.claim_jobs(ClaimRequest(site="SITE", labels=("managed",)))
    assert proxy.update_job(Heartbeat(panda_id, "running", {}))["debug"] is True
    assert proxy.kill_jobs([panda_id], user="alice", is_production=False) == [True]
    reply = proxy.update_job(Heartbeat(panda_id, "running", {}))
    assert (reply["command"], reply["debug"]) == ("debug,tobekilled", True)


def test_heartbeat_refuses_an_illegal_transition(proxy):
    (panda_id,) = activated(proxy, make_job())
    with pytest.raises(IllegalTransition):
        proxy.update_job(Heartbeat(panda_id, "running", {}))
    assert proxy.get_job_status([panda_id])[panda_id][0] == "activated"


# --- the generic transition --------------------------------------------------------------------------
def test_set_job_status_moves_between_stage_tables(proxy):
    a, b = proxy.insert_jobs([make_job("a"), make_job("b")])
    assert sorted(proxy.set_job_status([a, b], "activated", {"computingSite": "NEW"})) == [a, b]
    assert proxy.peek_jobs([a], archived=False)[0].computingSite == "NEW"
    assert [job.PandaID for job in proxy.claim_jobs(ClaimRequest(site="NEW", labels=("managed",), n=1))] == [a]

    assert proxy.set_job_status([a, b], "cancelled", {"taskBufferErrorDiag": "stop"}, expected=["activated"]) == [b]
    job_b = proxy.peek_jobs([b])[0]
    assert (job_b.jobStatus, job_b.taskBufferErrorDiag) == ("cancelled", "stop")
    assert job_b.endTime is not None and job_b.Files and job_b.jobParameters == "--name b"
    assert proxy.peek_jobs([b], archived=False) == [None]
    assert proxy.set_job_status([10**12], "cancelled") == []


def test_set_job_status_refuses_illegal_transitions_and_writes_nothing(proxy):
    ok, final = proxy.insert_jobs([make_job("ok"), make_job("final")])
    proxy.set_job_status([final], "failed")
    before = proxy.get_job_status([ok, final])
    with pytest.raises(IllegalTransition):
        proxy.set_job_status([ok, final], "cancelled")
    with pytest.raises(IllegalTransition):
        proxy.set_job_status([ok], "running")
    with pytest.raises(ValueError):
        proxy.set_job_status([ok], "activated", {"no_such_column": 1})
    with pytest.raises(ValueError):
        proxy.set_job_status([ok], "no_such_status")
    assert proxy.get_job_status([ok, final]) == before
    assert before[ok][0] == "defined" and proxy.peek_jobs([ok], archived=False)[0] is not None


# --- kill and reassign -----------------------------------------------------------------------------
def test_kill_jobs(proxy):
    running_id = running(proxy)
    waiting_id, other_id = proxy.insert_jobs([make_job("w"), make_job("o", prodUserName="bob")])
    ids = [running_id, waiting_id, other_id, 10**12]

    assert proxy.kill_jobs(ids, user="alice", is_production=False) == [True, True, False, False]
    status = proxy.get_job_status(ids)
    assert status[running_id] == ("running", 0, "tobekilled")
    assert status[waiting_id] == ("cancelled", 0, "tobekilled")
    assert status[other_id] == ("defined", 0, None)
    assert proxy.peek_jobs([waiting_id])[0].taskBufferErrorDiag == "killed by alice"

    assert proxy.kill_jobs([other_id], user="prod", is_production=True, code=2) == [True]
    job = proxy.peek_jobs([other_id])[0]
    assert (job.jobStatus, job.jobSubStatus) == ("closed", "toreassign")
    assert proxy.kill_jobs([running_id], user="prod", is_production=True, code=9) == [True]
    assert proxy.get_job_status([running_id])[running_id][0] == "cancelled"
    assert proxy.kill_jobs([running_id], user="prod", is_production=True) == [False]


def test_reassign_jobs(proxy):
    running_id = running(proxy)
    (queued_id,) = activated(proxy, make_job("q"))
    (bobs_id,) = activated(proxy, make_job("b", prodUserName="bob"))
    ids = [running_id, queued_id, bobs_id]
    assert proxy.reassign_jobs(ids, user="alice", is_production=False, site="OTHER") == [False, True, False]
    job = proxy.peek_jobs([queued_id])[0]
    assert (job.jobStatus, job.computingSite) == ("defined", "OTHER")
    assert proxy.reassign_jobs([bobs_id], user="prod", is_production=True) == [True]
    assert proxy.get_job_status(ids)[bobs_id][0] == "defined"


# --- output reports -----------------------------------------------------------------------------------
def test_output_reports_are_taken_once_until_their_lock_expires(proxy):
    proxy.insert_output_report(1, 0, "managed", "finished", "{}")
    proxy.insert_output_report(2, 1, "user", "failed", "{}")
    taken = proxy.lock_output_reports("adder-1", 10, 600)
    assert sorted((r["PandaID"], r["attemptNr"], r["lockedBy"]) for r in taken) == [(1, 0, "adder-1"), (2, 1, "adder-1")]
    assert proxy.lock_output_reports("adder-2", 10, 600) == []
    assert [r["PandaID"] for r in proxy.lock_output_reports("adder-2", 1, -1)] == [1]
    assert proxy.unlock_output_report(2, 1) is True
    assert [r["PandaID"] for r in proxy.lock_output_reports("adder-3", 10, 600)] == [2]
    assert proxy.delete_output_report(1, 0) is True
    assert proxy.delete_output_report(1, 0) is False
    assert [r["PandaID"] for r in proxy.lock_output_reports("adder-4", 10, -1)] == [2]


# --- leases ---------------------------------------------------------------------------------------------
def test_leases(proxy):
    assert proxy.acquire_lease("copy_archive", "host-a", 60) is True
    assert proxy.acquire_lease("copy_archive", "host-a", 60) is True  # re-entrant for its owner
    assert proxy.acquire_lease("copy_archive", "host-b", 60) is False
    assert proxy.renew_lease("copy_archive", "host-b", 60) is False
    assert proxy.release_lease("copy_archive", "host-b") is False
    assert proxy.renew_lease("copy_archive", "host-a", 60) is True
    assert proxy.release_lease("copy_archive", "host-a") is True
    assert proxy.acquire_lease("copy_archive", "host-b", -1) is True  # taken, already expired
    assert proxy.renew_lease("copy_archive", "host-b", 60) is False
    assert proxy.release_lease("copy_archive", "host-b") is False
    assert proxy.acquire_lease("copy_archive", "host-a", 60) is True  # expired: anyone may take it
    assert proxy.acquire_lease("other", "host-b", 60) is True


# --- transactions ---------------------------------------------------------------------------------------
def test_a_failed_call_leaves_nothing_behind(proxy):
    ids = proxy.insert_jobs([make_job("x"), make_job("y")])
    proxy.set_job_status(ids[:1], "failed")
    with pytest.raises(IllegalTransition):
        proxy.set_job_status(ids, "activated")  # y would move first, x refuses: all rolled back
    assert proxy.get_job_status(ids) == {ids[0]: ("failed", 0, None), ids[1]: ("defined", 0, None)}
    assert proxy.peek_jobs(ids[1:], archived=False)[0].jobStatus == "defined"


def test_insert_ignoring_duplicates_keeps_the_transaction_usable(proxy):
    """The upsert path of leases and datasets: a second insert of the same key is a no-op, not an error."""
    proxy.set_dataset_status("user.out", "output", "open")
    proxy.set_dataset_status("user.out", "output", "closed")
    other = DBProxy(proxy.db_url)
    try:
        other.set_dataset_status("user.out", "output", "tobeclosed")
    finally:
        other.close()

    @transaction
    def insert_twice(db: DBProxy) -> list[tuple]:
        row = {"name": "dup", "type": "output", "status": "a", "creationTime": None, "modificationTime": None}
        db._insert_ignoring_duplicates("datasets", tuple(row), "name", row)
        db._insert_ignoring_duplicates("datasets", tuple(row), "name", {**row, "status": "b"})
        return db._fetchall("SELECT name, status FROM datasets ORDER BY name")

    assert insert_twice(proxy) == [("dup", "a"), ("user.out", "tobeclosed")]


def test_first_submissions_of_a_new_user_do_not_collide(proxy):
    """Concurrent first submissions race to create the user's row; each still gets its own jobsetID."""
    import threading

    results: list[tuple[int, int]] = []
    failures: list[BaseException] = []
    start = threading.Barrier(6)

    def reserve() -> None:
        db = DBProxy(proxy.db_url)
        try:
            start.wait()
            results.append(db.reserve_user_ids("newcomer", "/CN=newcomer"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=reserve) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert sorted(jobset for _, jobset in results) == [1, 2, 3, 4, 5, 6]
