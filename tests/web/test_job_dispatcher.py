"""The pilot calls, legacy and v1: getJob, updateJob and the status calls."""

from __future__ import annotations

import json

import httpx

from pandasrv.taskbuffer.file_spec import FileSpec
from tests.realclients import output_reports
from tests.web.helpers import make_job, pilot_call, submit, submit_activated, v1, wait_status


def _get_job(server, site, **extra):
    return pilot_call(server.url, "getJob", {"siteName": site, "prodSourceLabel": "user", "node": "wn01", **extra})


def test_get_job_single_form_fields(server, fresh_queue):
    job = make_job(fresh_queue, "withfiles", jobsetID=42)
    job.add_file(FileSpec(lfn="in1.root", type="input", dataset="data.in", GUID="g-1", fsize=10, checksum="ad:1",
                          scope="data", prodDBlock="data.in"))
    job.add_file(FileSpec(lfn="out1.root", type="output", dataset="user.out", destinationDBlock="user.out",
                          scope="user"))
    (panda_id,) = submit(server.url, [job])
    wait_status(server.tb, [panda_id], "activated")
    reply = _get_job(server, fresh_queue, computingElement="ce01", schedulerID="sched")
    assert reply["StatusCode"] == "0" and int(reply["PandaID"]) == panda_id
    assert reply["inFiles"] == "in1.root" and reply["GUID"] == "g-1" and reply["checksum"] == "ad:1"
    assert reply["ddmEndPointIn"] == "LOCAL_DISK"
    assert reply["outFiles"] == "out1.root,withfiles.log.tgz"
    assert reply["ddmEndPointOut"] == "LOCAL_DISK,LOCAL_DISK" and reply["scopeOut"] == "user"
    assert reply["logFile"] == "withfiles.log.tgz" and reply["jobPars"] == "hello"
    assert reply["jobsetID"] == "42" and reply["coreCount"] == "1" and reply["nSent"] == "0"
    assert reply["cmtConfig"] == "NULL" and reply["swRelease"] == "NULL"
    stored = server.tb.peek_jobs([panda_id])[0]
    assert (stored.jobStatus, stored.modificationHost, stored.computingElement, stored.schedulerID) == (
        "sent", "wn01", "ce01", "sched")
    assert _get_job(server, fresh_queue)["StatusCode"] == "20"


def test_get_job_bulk_forms(server, fresh_queue):
    ids = submit_activated(server, fresh_queue, 3)
    urlencoded = _get_job(server, fresh_queue, nJobs=2)
    assert urlencoded["StatusCode"] == "0"
    first = [job["PandaID"] for job in json.loads(urlencoded["jobs"])]
    as_json = httpx.post(f"{server.url}/server/panda/getJob", headers={"Accept": "application/json"},
                         data={"siteName": fresh_queue, "prodSourceLabel": "user", "nJobs": "5"}).json()
    second = [job["PandaID"] for job in as_json["jobs"]]
    assert sorted(first + second) == sorted(ids)


def test_get_job_unknown_and_offline_queue(server, fresh_queue):
    assert _get_job(server, "NO_SUCH_QUEUE") == {"StatusCode": "20", "errorDialog": "no queue named NO_SUCH_QUEUE"}
    submit_activated(server, fresh_queue)
    server.tb.update_queue(fresh_queue, status="offline")
    assert _get_job(server, fresh_queue)["errorDialog"] == f"queue {fresh_queue} is offline"
    server.tb.update_queue(fresh_queue, status="test")
    assert _get_job(server, fresh_queue)["StatusCode"] == "20"  # user label becomes test: user jobs not given
    server.tb.update_queue(fresh_queue, status="online")
    assert _get_job(server, fresh_queue)["StatusCode"] == "0"


def _running_job(server, site):
    (panda_id,) = submit_activated(server, site)
    assert int(_get_job(server, site)["PandaID"]) == panda_id
    return panda_id


def _update(server, panda_id, state, **extra):
    return pilot_call(server.url, "updateJob", {"jobId": str(panda_id), "state": state, "attemptNr": 0, **extra})


def test_update_job_lifecycle_and_final_report(server, fresh_queue):
    panda_id = _running_job(server, fresh_queue)
    assert _update(server, panda_id, "starting") == {"StatusCode": "0", "command": "NULL"}
    reply = _update(server, panda_id, "running", cpuConsumptionTime="12", maxRSS="2048", totRCHAR=4096,
                    pilotErrorCode="-1", startTime=1767225600.0, jobMetrics="leak=1.5 chi2=0.2", coreCount=8,
                    cpuConversionFactor="bad-number", nEvents="x")
    assert reply["command"] == "NULL"
    job = server.tb.peek_jobs([panda_id])[0]
    assert (job.jobStatus, job.cpuConsumptionTime, job.maxRSS, job.totRCHAR, job.pilotErrorCode) == (
        "running", 12, 2048, 4, 1)
    assert (job.actualCoreCount, job.memory_leak, job.startTime.year) == (8, 1.5, 2026)
    report = json.dumps({"job.log.tgz": {"guid": "g", "fsize": 3}})
    assert _update(server, panda_id, "finished", xml=report, pilotLog="the log")["StatusCode"] == "0"
    assert server.tb.peek_jobs([panda_id])[0].jobStatus == "holding"
    (row,) = output_reports(server.db_url, panda_id)
    assert (row["attemptNr"], row["jobStatus"], json.loads(row["data"])) == (0, "finished", json.loads(report))
    # a second final report is acknowledged but not stored twice
    assert _update(server, panda_id, "failed", xml="{}")["StatusCode"] == "0"
    assert len(output_reports(server.db_url, panda_id)) == 1


def test_update_job_guards_and_commands(server, fresh_queue):
    panda_id = _running_job(server, fresh_queue)
    assert _update(server, panda_id, "running", attemptNr=5)["command"] == "tobekilled"
    assert server.tb.peek_jobs([panda_id])[0].jobStatus == "sent"
    assert _update(server, 987654321, "running")["command"] == "tobekilled"
    assert _update(server, panda_id, "bogus-state") == {"StatusCode": "0"}
    assert pilot_call(server.url, "updateJob", {"jobId": "NULL", "state": "running"}) == {"StatusCode": "0"}
    assert _update(server, "not-a-number", "running")["StatusCode"] == "50"
    assert v1(server.url, "job/set_debug_mode", {"job_id": panda_id, "mode": True})["success"]
    assert _update(server, panda_id, "running")["command"] == "debug"
    assert v1(server.url, "job/set_command", {"job_id": panda_id, "command": "tobekilled"})["success"]
    assert _update(server, panda_id, "running")["command"] == "debug,tobekilled"


def test_update_jobs_in_bulk(server, fresh_queue):
    panda_id = _running_job(server, fresh_queue)
    job_list = json.dumps([{"jobId": panda_id, "state": "running", "attemptNr": 0}, {"state": "running"}])
    reply = httpx.post(f"{server.url}/server/panda/updateJobsInBulk", data={"jobList": job_list})
    ok, replies = json.loads(reply.text)
    assert ok is True and replies[0] == {"StatusCode": 0, "command": "NULL"} and replies[1]["StatusCode"] == 30
    bad = httpx.post(f"{server.url}/server/panda/updateJobsInBulk", data={"jobList": "{not json"})
    assert json.loads(bad.text)[0] is False


def test_get_status_and_check_job_status(server, fresh_queue):
    (panda_id,) = submit_activated(server, fresh_queue)
    reply = pilot_call(server.url, "getStatus", {"ids": f"{panda_id} 987654321"})
    assert reply == {"StatusCode": "0", "status": "activated notfound", "attemptNr": "0 0"}
    check = httpx.post(f"{server.url}/server/panda/checkJobStatus", data={"ids": f"{panda_id},987654321"}).json()
    assert check == {"StatusCode": 0, "data": [{"status": "activated", "command": "NULL"},
                                               {"status": "unknown", "command": "tobekilled"}]}


def test_get_resource_types(server):
    reply = httpx.post(f"{server.url}/server/panda/getResourceTypes", headers={"Accept": "application/json"}).json()
    assert reply["Returns"] == 0 and isinstance(reply["ResourceTypes"], list)
    assert v1(server.url, "metaconfig/get_resource_types", method="GET")["data"] == reply["ResourceTypes"]


def test_update_worker_pilot_status(server):
    server.tb.update_workers("h1", [{"workerID": 7, "status": "running"}])
    data = {"workerID": 7, "harvesterID": "h1", "status": "started", "site": "TEST_QUEUE", "node_id": "wn"}
    assert pilot_call(server.url, "updateWorkerPilotStatus", data) == {"StatusCode": "0"}
    (worker,) = server.tb.get_workers("h1", [7])
    assert (worker["pilotStatus"], worker["nodeID"]) == ("started", "wn") and worker["pilotStartTime"]
    bad = httpx.post(f"{server.url}/server/panda/updateWorkerPilotStatus", data={**data, "status": "exploded"})
    assert "not allowed" in bad.text


def test_v1_pilot_endpoints(server, fresh_queue):
    (panda_id,) = submit_activated(server, fresh_queue)
    none_left = v1(server.url, "pilot/acquire_jobs", {"site_name": "NO_SUCH_QUEUE"})
    assert none_left["success"] is False and none_left["message"] == "No jobs in PanDA"
    acquired = v1(server.url, "pilot/acquire_jobs", {"site_name": fresh_queue, "prod_source_label": "user",
                                                     "n_jobs": 3, "node": "wn02"})
    assert acquired["success"] and [j["PandaID"] for j in acquired["data"]["jobs"]] == [panda_id]
    status = v1(server.url, "pilot/get_job_status", {"job_ids": [panda_id, 987654321]}, method="GET")["data"]
    assert status == [{"job_id": panda_id, "status": "sent", "attempt_number": 0},
                      {"job_id": 987654321, "status": "not found", "attempt_number": 0}]
    updated = v1(server.url, "pilot/update_job", {"job_id": panda_id, "job_status": "running", "attempt_nr": 0,
                                                  "max_rss": 100, "cpu_consumption_time": 5})
    assert updated == {"success": True, "message": "", "data": {"StatusCode": 0, "command": None}}
    assert server.tb.peek_jobs([panda_id])[0].maxRSS == 100
    bad = v1(server.url, "pilot/update_job", {"job_id": panda_id, "job_status": "exploded"})
    assert bad["success"] is False and bad["data"] == {"StatusCode": 50}
    bulk = v1(server.url, "pilot/update_jobs_bulk", {"job_list": [{"job_id": panda_id, "job_status": "running"},
                                                                  {"job_status": "running"}]})
    assert [item["success"] for item in bulk["data"]] == [True, False]
    node = {"site": fresh_queue, "host_name": "wn02", "cpu_model": "EPYC", "n_logical_cpus": 64}
    assert v1(server.url, "pilot/update_worker_node", node)["success"]
    gpu = {"site": fresh_queue, "host_name": "wn02", "vendor": "nvidia", "count": 2}
    assert v1(server.url, "pilot/update_worker_node_gpu", gpu)["success"]
    stored = json.loads(server.tb.get_config_values("worker_node", fresh_queue)["wn02"])
    assert stored["cpu_model"] == "EPYC" and stored["n_logical_cpus"] == 64
    wrong_method = httpx.get(f"{server.url}/api/v1/pilot/update_job", params={"job_id": 1})
    assert wrong_method.status_code == 405 and wrong_method.headers["Allow"] == "POST"
    assert wrong_method.json()["success"] is False and "expecting POST" in wrong_method.json()["message"]
