"""Harvester's flow over HTTP, with the parameter names its communicator uses: fetch jobs for a queue,
report workers submitted -> running -> finished, update the jobs in bulk, finish them through the Adder;
a worker failing under a running job fails the job at once; a server-side kill reaches the worker as a
command that Harvester acknowledges. Also the small pilot playing a pilot that Harvester started.
"""

from __future__ import annotations

import json
import secrets
import uuid

from pandasrv.pilot.runner import Pilot, PilotOptions
from tests.realclients import run_adder
from tests.web.harvester_client import USER_H, acquire, call, request, submit_managed, update_workers, worker
from tests.web.helpers import make_job, submit, wait_status


def bulk(server, jobs: list[dict]) -> list[dict]:
    """``update_jobs``: one ``pilot/update_jobs_bulk`` per 100 jobs; data is one envelope per job."""
    body = call(server.url, "POST", "pilot/update_jobs_bulk", {"job_list": jobs, "harvester_id": "h"})
    assert body["success"], body
    return body["data"]


def job_update(panda_id: int, status: str, site: str, **values) -> dict:
    return {"job_id": panda_id, "site_name": site, "job_status": status, "job_sub_status": None, "attempt_nr": 0,
            "core_count": 1, "node": "wn001.example.org", **values}


def test_jobs_run_in_workers_and_finish_through_the_adder(hserver):
    hid, site, n = f"h_{secrets.token_hex(3)}", hserver.add_queue(), 3
    ids = submit_managed(hserver, site, n)
    assert call(hserver.url, "POST", "harvester/heartbeat", {"harvester_id": hid, "data": {}})["success"]
    assert sorted(acquire(hserver, site, n, hid)) == sorted(ids)
    workers = [worker(i + 1, site, pandaid_list=[pid]) for i, pid in enumerate(ids)]
    assert update_workers(hserver.url, hid, workers)["data"] == [True] * n
    update_workers(hserver.url, hid, [{**w, "status": "running"} for w in workers])
    replies = bulk(hserver, [job_update(pid, "running", site) for pid in ids])
    assert [r["data"] for r in replies] == [{"StatusCode": 0, "command": None}] * n
    report = {pid: json.dumps({f"m{i}.log.tgz": {"guid": str(uuid.uuid4()), "fsize": 10, "adler32": "0a0b0c0d"}})
              for i, pid in enumerate(ids)}
    bulk(hserver, [job_update(pid, "finished", site, job_output_report=report[pid], meta_data="{}") for pid in ids])
    update_workers(hserver.url, hid, [worker(i + 1, site, "finished") for i in range(n)])
    assert {j.jobStatus for j in hserver.tb.peek_jobs(ids, with_files=False)} == {"holding"}
    run_adder(hserver)
    assert {j.jobStatus for j in hserver.tb.peek_jobs(ids, with_files=False)} == {"finished"}
    assert {w["status"] for w in hserver.tb.get_workers(hid)} == {"finished"}
    assert sorted(p for w in hserver.tb.get_workers(hid) for p in w["pandaid_list"]) == sorted(ids)


def test_a_failed_worker_fails_its_running_job_at_once(hserver):
    hid, site = f"h_{secrets.token_hex(3)}", hserver.add_queue()
    running, starting, untouched = submit_managed(hserver, site, 3)
    acquire(hserver, site, 3, hid)
    update_workers(hserver.url, hid, [worker(1, site, "running", pandaid_list=[running, starting]),
                                      worker(2, site, "running", pandaid_list=[untouched])])
    bulk(hserver, [job_update(running, "running", site), job_update(starting, "starting", site),
                   job_update(untouched, "running", site)])
    update_workers(hserver.url, hid, [worker(1, site, "failed", errorCode=1, diagMessage="batch job held: OOM")])
    jobs = {j.PandaID: j for j in hserver.tb.peek_jobs([running, starting, untouched], with_files=False)}
    for pid, was in ((running, "running"), (starting, "starting")):
        assert jobs[pid].jobStatus == "failed" and jobs[pid].taskBufferErrorCode == 300
        assert jobs[pid].taskBufferErrorDiag == f"The worker was failed while the job was {was} : batch job held: OOM"
        assert (jobs[pid].supErrorCode, jobs[pid].supErrorDiag) == (1, "Diag from worker : batch job held: OOM")
    assert jobs[untouched].jobStatus == "running"


def test_a_killed_job_sends_a_kill_command_to_its_worker(hserver):
    hid, site = f"h_{secrets.token_hex(3)}", hserver.add_queue()
    running, queued = submit_managed(hserver, site, 2)
    acquire(hserver, site, 2, hid)
    update_workers(hserver.url, hid, [worker(7, site, "running", pandaid_list=[running]),
                                      worker(8, site, "submitted", pandaid_list=[queued])])
    bulk(hserver, [job_update(running, "running", site)])
    assert call(hserver.url, "POST", "job/kill", {"job_ids": [running, queued]})["data"] == [True, True]
    killed = {j.PandaID: j for j in hserver.tb.peek_jobs([running, queued], with_files=False)}
    assert (killed[queued].jobStatus, killed[queued].taskBufferErrorCode) == ("cancelled", 100)
    assert killed[queued].taskBufferErrorDiag == "killed by harvester robot"
    assert (killed[running].jobStatus, killed[running].commandToPilot) == ("running", "tobekilled")
    assert bulk(hserver, [job_update(running, "running", site)])[0]["data"]["command"] == "tobekilled"
    (command,) = call(hserver.url, "POST", "harvester/acquire_commands", {"harvester_id": hid, "n_commands": 20})["data"]
    assert (command["command"], command["params"], command["ack_requested"]) == ("SYNC_WORKERS_KILL", [7, 8], True)
    assert call(hserver.url, "POST", "harvester/acknowledge_commands", {"command_ids": [command["command_id"]]})["success"]
    assert hserver.tb.list_harvester_commands(hid)[0]["status"] == "acknowledged"
    # a user may not read the command queue
    refused = call(hserver.url, "POST", "harvester/acquire_commands", {"harvester_id": hid, "n_commands": 1}, USER_H)
    assert refused["success"] is False


def test_kill_codes_record_the_real_servers_texts(hserver):
    site = hserver.add_queue()
    plain, expired, aborted = submit_managed(hserver, site, 3)
    call(hserver.url, "POST", "job/kill", {"job_ids": [expired], "code": 2})
    call(hserver.url, "POST", "job/kill", {"job_ids": [aborted], "code": 3})
    call(hserver.url, "POST", "job/kill", {"job_ids": [plain]})
    jobs = {j.PandaID: j for j in hserver.tb.peek_jobs([plain, expired, aborted], with_files=False)}
    assert (jobs[plain].jobStatus, jobs[plain].taskBufferErrorCode, jobs[plain].taskBufferErrorDiag) == \
        ("cancelled", 100, "killed by harvester robot")
    assert (jobs[expired].jobStatus, jobs[expired].jobSubStatus, jobs[expired].taskBufferErrorCode) == \
        ("closed", "toreassign", 102)
    assert jobs[expired].taskBufferErrorDiag.startswith("expired in activated")
    assert (jobs[aborted].taskBufferErrorCode, jobs[aborted].taskBufferErrorDiag) == (103, "aborted by ExtIF")


def test_pilot_worker_status_v1_and_legacy(hserver):
    hid, site = f"h_{secrets.token_hex(3)}", hserver.add_queue()
    update_workers(hserver.url, hid, [worker(3, site, "running")])
    body = call(hserver.url, "POST", "pilot/update_worker_status",
                {"worker_id": 3, "harvester_id": hid, "status": "started", "node_id": "wn9"})
    assert body == {"success": True, "message": "", "data": None}
    (stored,) = hserver.tb.get_workers(hid)
    assert stored["pilotStatus"] == "started" and stored["pilotStartTime"] and stored["nodeID"] == "wn9"
    bad = call(hserver.url, "POST", "pilot/update_worker_status", {"worker_id": 3, "harvester_id": hid, "status": "x"})
    assert bad["success"] is False and "started" in bad["message"]
    assert call(hserver.url, "POST", "pilot/update_worker_status",
                {"worker_id": 3, "harvester_id": hid, "status": "finished"}, USER_H)["success"] is False
    assert request(hserver.url, "GET", "pilot/update_worker_status",
                   {"worker_id": 3, "harvester_id": hid, "status": "finished"}).status_code == 405


def test_small_pilot_started_by_harvester(server, fresh_queue):
    hid = f"h_{secrets.token_hex(3)}"
    (panda_id,) = submit(server.url, [make_job(fresh_queue, "hp")])
    wait_status(server.tb, [panda_id], "activated")
    server.tb.update_workers(hid, [{"workerID": 11, "status": "running", "computingSite": fresh_queue}])
    options = PilotOptions(url=server.url, site=fresh_queue, harvester_id=hid, worker_id=11)
    pilot = Pilot(options)
    assert pilot.job_request()["harvester_id"] == hid and pilot.job_request()["worker_id"] == 11
    pilot.report_worker("started")
    assert int(pilot.get_job()["PandaID"]) == panda_id
    pilot.report_worker("finished")
    (stored,) = server.tb.get_workers(hid)
    assert stored["pandaid_list"] == [panda_id] and stored["pilotStatus"] == "finished"
    assert stored["pilotStartTime"] and stored["pilotEndTime"]
