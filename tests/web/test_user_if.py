"""User calls, v1 and legacy (pickle and JSON): submit, describe, kill, reassign, debug, statistics."""

from __future__ import annotations

import datetime as _dt
import json
import os
import pickle
from urllib.parse import urlencode

import httpx

from pandasrv.web import pickles
from tests.web.helpers import JSON_HEADERS, make_job, submit, submit_activated, v1, wait_status


def test_submit_reply_forms_and_owner(server, fresh_queue):
    user_job = make_job(fresh_queue, "u1", prodUserName="someone-else", prodUserID="/CN=someone-else")
    managed_job = make_job(fresh_queue, "m1", label="managed")
    reply = v1(server.url, "job/submit", {"jobs": json.dumps([user_job.to_state(), managed_job.to_state()])})
    assert reply["success"]
    (user_id, user_def, jobset), (managed_id, _, name) = reply["data"]
    assert jobset == {"jobsetID": jobset["jobsetID"]} and name == "m1"
    stored = server.tb.peek_jobs([user_id])[0]
    assert stored.prodUserName == "pandasrv" and stored.prodUserID == server.settings.local_dn
    assert stored.jobDefinitionID == user_def and stored.jobsetID == jobset["jobsetID"]
    again = v1(server.url, "job/submit", {"jobs": json.dumps([make_job(fresh_queue, "u2").to_state()])})
    assert again["data"][0][1] == user_def + 1 and again["data"][0][2]["jobsetID"] == jobset["jobsetID"] + 1


def test_submit_refusals(server):
    unknown = v1(server.url, "job/submit", {"jobs": json.dumps([make_job("NO_SUCH_QUEUE").to_state()])})
    assert unknown["success"] is False and "unknown queue 'NO_SUCH_QUEUE'" in unknown["message"]
    assert v1(server.url, "job/submit", {"jobs": "[]"})["message"] == "No jobs were submitted"
    assert "not valid JSON" in v1(server.url, "job/submit", {"jobs": "[[1,"})["message"]
    assert "Type error" in v1(server.url, "job/submit", {"jobs": 5})["message"]
    label = make_job(server.queue, label="weird-label")
    assert "unknown prodSourceLabel" in v1(server.url, "job/submit", {"jobs": json.dumps([label.to_state()])})["message"]


def test_describe_status_kill_reassign(server, fresh_queue):
    ids = submit_activated(server, fresh_queue, 3)
    described = v1(server.url, "job/get_description", {"job_ids": ids + [987654321]})["data"]
    assert [d["PandaID"] for d in described[:3]] == ids and described[3] is None
    assert described[0]["Files"][0]["lfn"] == "job0.log.tgz" and described[0]["jobStatus"] == "activated"
    incl = v1(server.url, "job/get_description_incl_archive", {"job_ids": ids[:1]})["data"]
    assert incl[0]["PandaID"] == ids[0]
    assert v1(server.url, "job/kill", {"job_ids": ids[:1]})["data"] == [True]
    assert server.tb.get_job_status(ids[:1])[ids[0]][0] == "cancelled"
    assert v1(server.url, "job/reassign", {"job_ids": ids[1:2]})["data"] == [True]
    wait_status(server.tb, ids[1:2], "activated")
    status = v1(server.url, "job/get_status", {"job_ids": ids}, method="GET")["data"]
    assert [s["status"] for s in status] == ["cancelled", "activated", "activated"]


def test_debug_mode_command_and_offline_script(server, fresh_queue):
    (panda_id,) = submit_activated(server, fresh_queue)
    assert v1(server.url, "job/set_debug_mode", {"job_id": panda_id, "mode": True})["message"] == "Succeeded"
    assert "dm" in server.tb.peek_jobs([panda_id])[0].specialHandling.split(",")
    assert v1(server.url, "job/set_debug_mode", {"job_id": panda_id, "mode": False})["success"]
    assert not server.tb.peek_jobs([panda_id])[0].specialHandling
    assert v1(server.url, "job/set_debug_mode", {"job_id": 987654321, "mode": True})["success"] is False
    assert v1(server.url, "job/set_command", {"job_id": panda_id, "command": "softkill"})["success"]
    assert server.tb.peek_jobs([panda_id])[0].commandToPilot == "softkill"
    script = v1(server.url, "job/generate_offline_execution_script", {"job_id": panda_id}, method="GET")["data"]
    assert script.startswith("#!/bin/bash") and "run.sh hello" in script
    legacy = httpx.post(f"{server.url}/server/panda/setDebugMode", data={"pandaID": panda_id, "modeOn": "True"})
    assert legacy.text == "Succeeded"


def test_statistics_and_site_specs(server, fresh_queue):
    submit_activated(server, fresh_queue, 2)
    by_site = v1(server.url, "statistics/active_job_stats_by_site", method="GET")["data"]
    assert by_site[fresh_queue] == {"activated": 2, "assigned": 0, "running": 0}
    detailed = v1(server.url, "statistics/active_job_detailed_stats_by_site", method="GET")["data"]
    assert detailed[fresh_queue] == {"SCORE": {"user": {"activated": 2, "assigned": 0, "running": 0}}}
    legacy = pickles.loads(httpx.get(f"{server.url}/server/panda/getJobStatisticsPerSite").content)
    assert legacy[fresh_queue] == {"activated": 2}
    specs = v1(server.url, "metaconfig/get_site_specs", method="GET")["data"]
    assert specs[fresh_queue]["nickname"] == fresh_queue and specs[fresh_queue]["astorages"]["pw"] == ["LOCAL_DISK"]


def test_legacy_pickle_round_trip(server, fresh_queue):
    job = make_job(fresh_queue, "pickled", creationTime=_dt.datetime(2026, 1, 2, 3, 4, 5))  # non-ASCII bytes
    body = pickles.dumps([job])
    assert b"pandaserver.taskbuffer.JobSpec" in body
    form = urlencode({"jobs": body})  # old clients urlencode the raw pickle bytes
    reply = httpx.post(f"{server.url}/server/panda/submitJobs", content=form,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    ((panda_id, definition_id, jobset),) = pickles.loads(reply.content)
    assert definition_id > 0 and jobset["jobsetID"] > 0
    wait_status(server.tb, [panda_id], "activated")
    status = httpx.post(f"{server.url}/server/panda/getJobStatus", data={"ids": pickles.dumps([panda_id, 987654321]).decode()})
    jobs = pickles.loads(status.content)
    assert jobs[0].PandaID == panda_id and jobs[0].jobStatus == "activated" and jobs[1] is None
    assert jobs[0].Files[0].lfn == "pickled.log.tgz"
    as_json = httpx.post(f"{server.url}/server/panda/getJobStatus", data={"ids": json.dumps([panda_id])},
                         headers={"Accept": "application/json"}).json()
    assert as_json[0]["jobName"] == "pickled"
    full = pickles.loads(httpx.post(f"{server.url}/server/panda/getFullJobStatus", data={"ids": f"[{panda_id}]"}).content)
    assert full[0].jobName == "pickled"
    reassigned = httpx.post(f"{server.url}/server/panda/reassignJobs", data={"ids": json.dumps([panda_id])})
    assert pickles.loads(reassigned.content) is True
    wait_status(server.tb, [panda_id], "activated")
    script = httpx.get(f"{server.url}/server/panda/getScriptOfflineRunning", params={"pandaID": panda_id}).text
    assert "run.sh hello" in script
    killed = pickles.loads(httpx.post(f"{server.url}/server/panda/killJobs",
                                      data={"ids": pickles.dumps([panda_id]).decode()}).content)
    assert killed == [True]


def test_legacy_json_submit(server, fresh_queue):
    states = json.dumps([make_job(fresh_queue, "asjson").to_state()])
    reply = httpx.post(f"{server.url}/server/panda/submitJobs", data={"jobs": states})
    (panda_id, _, jobset) = reply.json()[0]
    assert jobset["jobsetID"] > 0 and server.tb.peek_jobs([panda_id])[0].jobName == "asjson"


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/pandasrv-pwned",))


def test_malicious_pickle_is_refused(server):
    before = server.tb.list_queues()
    for field, method in (("jobs", "submitJobs"), ("ids", "getJobStatus"), ("ids", "killJobs")):
        reply = httpx.post(f"{server.url}/server/panda/{method}", data={field: pickle.dumps(Exploit(), 0).decode()})
        assert "forbidden class in pickle: posix.system" in reply.text
    assert not os.path.exists("/tmp/pandasrv-pwned")
    truncated = httpx.post(f"{server.url}/server/panda/getJobStatus", data={"ids": "(lp0\nI1\na"})
    assert truncated.status_code == 400 and "invalid pickle" in truncated.text
    assert server.tb.list_queues() == before
    assert httpx.get(f"{server.url}/api/v1/system/is_alive", headers=JSON_HEADERS).json()["success"]


def test_submit_does_not_accept_ids_from_client(server, fresh_queue):
    job = make_job(fresh_queue, "with-id", PandaID=5, jobStatus="finished")
    (panda_id,) = submit(server.url, [job])
    stored = server.tb.peek_jobs([panda_id])[0]
    assert panda_id != 5 or stored.jobName == "with-id"
    assert stored.jobStatus in ("defined", "activated")
