"""The pilot's wire format, byte for byte: what pilot3 and the PyPI pilot send, parsed the way they parse.

pilot3 POSTs gzip(JSON) with ``Content-Type: application/json``, no ``Content-Encoding`` and no
``Accept`` on legacy paths, and reads the reply with ``parse_qs`` unless it starts with ``{``. Its curl
fallback (the only path of the PyPI pilot 3.7) sends a form-urlencoded body with ``Accept: application/json``.
"""

from __future__ import annotations

import gzip
import json
from urllib.parse import parse_qs, urlencode

import httpx
import pytest

from pandasrv.submit import JobRequest, UserClient, build_jobs
from tests.realclients import output_reports, peek_job, wait_activated

PILOT_AGENT = "pilot/3.11.5.1 (Python 3.11.7; Linux x86_64)"


def pilot_parse(text: str) -> dict:
    """pilot3's reply parsing: JSON when it looks like an object, ``Succeeded`` maps to 0, else parse_qs."""
    if text.startswith("{"):
        return json.loads(text)
    if text == "Succeeded":
        return {"StatusCode": "0"}
    return {key: values[0] for key, values in parse_qs(text).items()}


def send_gzip_json(url: str, method: str, data: dict) -> dict:
    """Built as a bare Request so that no client default (``Accept: */*``) is added, as with urllib."""
    request = httpx.Request("POST", f"{url}/server/panda/{method}", content=gzip.compress(json.dumps(data).encode()),
                            headers={"Content-Type": "application/json", "User-Agent": PILOT_AGENT})
    with httpx.Client() as client:
        response = client.send(request)
    assert response.status_code == 200, response.text
    assert "Content-Encoding" not in request.headers and "Accept" not in request.headers
    return pilot_parse(response.text)


def send_curl_form(url: str, method: str, data: dict) -> dict:
    """The curl fallback: ``data="k=v"`` lines become one form body; the reply is ``json.loads``-ed."""
    response = httpx.post(f"{url}/server/panda/{method}", content=urlencode(data).encode(),
                          headers={"Content-Type": "application/x-www-form-urlencoded",
                                   "Accept": "application/json", "User-Agent": PILOT_AGENT})
    assert response.status_code == 200, response.text
    return json.loads(response.text)


def get_job_request(queue: str) -> dict:
    return {"siteName": queue, "computingElement": queue, "prodSourceLabel": "user", "diskSpace": 20000,
            "workingGroup": "", "cpu": 2600.0, "mem": 24105.5, "node": "wn01.example", "allowOtherCountry": False}


def heartbeat(panda_id: int, state: str, queue: str, **extra) -> dict:
    data = {"jobId": str(panda_id), "state": state, "timestamp": "2026-03-10T10:00:00+00:00", "siteName": queue,
            "node": "wn01.example", "attemptNr": 0, "schedulerID": "unknown", "pilotID": "unknown|PR|3.11.5.1",
            "startTime": 1773136800.5, "xml": "", "metaData": "", "coreCount": 1, "cpuConsumptionUnit": "s+CPU"}
    data.update(extra)
    return data


def submit_active(server, queue: str, n: int, outputs: tuple[str, ...] = ()) -> list[int]:
    client = UserClient(server.url)
    try:
        ids = client.submit(build_jobs(JobRequest(site=queue, transformation="/bin/echo",
                                                  arguments="hello wire", outputs=list(outputs)), n))
    finally:
        client.close()
    wait_activated(server.db_url, ids)
    return ids


@pytest.mark.parametrize("send", [send_gzip_json, send_curl_form], ids=["gzip-json", "curl-form"])
def test_job_lifecycle_on_the_wire(server, fresh_queue, send):
    (panda_id,) = submit_active(server, fresh_queue, 1, outputs=("wire.out",))
    job = send(server.url, "getJob", get_job_request(fresh_queue))
    assert int(job["StatusCode"]) == 0
    assert int(job["PandaID"]) == panda_id
    assert job["jobPars"] == "hello wire"
    assert job["transformation"] == "/bin/echo"
    stored = peek_job(server.db_url, panda_id)
    log_lfn = next(f.lfn for f in stored.Files if f.type == "log")
    assert job["logFile"] == log_lfn
    assert job["outFiles"].split(",") == ["wire.out", log_lfn]
    assert stored.jobStatus == "sent"
    assert int(send(server.url, "getJob", get_job_request(fresh_queue))["StatusCode"]) != 0

    for state in ("starting", "running"):
        reply = send(server.url, "updateJob", heartbeat(panda_id, state, fresh_queue))
        assert int(reply["StatusCode"]) == 0 and reply.get("command", "NULL") == "NULL"
        assert peek_job(server.db_url, panda_id).jobStatus == state

    report = {"wire.out": {"guid": "9a3f6f26-7d11-4c3e-9f55-2f5c3c7e9d01", "fsize": 12, "adler32": "1c2b03e4",
                           "surl": "file://localhost/se/wire.out", "endpoint": "LOCAL_DISK"},
              log_lfn: {"guid": "0c3e2f1a-8d4a-4e0b-9a55-1b2c3d4e5f60", "fsize": 8584, "adler32": "4ac5c6ee",
                        "surl": f"file://localhost/se/{log_lfn}", "endpoint": "LOCAL_DISK"}}
    final = heartbeat(panda_id, "finished", fresh_queue, xml=json.dumps(report), pilotErrorCode=0,
                      pilotErrorDiag="", transExitCode=0, exeErrorCode=0, exeErrorDiag="",
                      endTime=1773136860.25, pilotTiming="1|2|3|4|5")
    assert int(send(server.url, "updateJob", final)["StatusCode"]) == 0
    stored = peek_job(server.db_url, panda_id)
    assert stored.jobStatus == "holding"
    (row,) = output_reports(server.db_url, panda_id)
    assert row["jobStatus"] == "finished"
    assert json.loads(row["data"]) == report


def test_get_status_is_urlencoded(server, fresh_queue):
    ids = submit_active(server, fresh_queue, 2)
    reply = send_gzip_json(server.url, "getStatus", {"ids": " ".join(map(str, ids + [999999999]))})
    assert reply["StatusCode"] == "0"
    assert reply["status"].split() == ["activated", "activated", "notfound"]
    assert reply["attemptNr"].split() == ["0", "0", "0"]


def test_kill_back_channel(server, fresh_queue):
    (panda_id,) = submit_active(server, fresh_queue, 1)
    assert int(send_gzip_json(server.url, "getJob", get_job_request(fresh_queue))["PandaID"]) == panda_id
    assert send_gzip_json(server.url, "updateJob", heartbeat(panda_id, "running", fresh_queue)).get("command") == "NULL"

    killed = httpx.post(f"{server.url}/api/v1/job/kill", json={"job_ids": [panda_id]},
                        headers={"Accept": "application/json"}).json()
    assert killed["success"] and killed["data"] == [True]
    assert peek_job(server.db_url, panda_id).commandToPilot == "tobekilled"

    reply = send_gzip_json(server.url, "updateJob", heartbeat(panda_id, "running", fresh_queue))
    assert "tobekilled" in reply["command"].split(",")
    final = heartbeat(panda_id, "failed", fresh_queue, pilotErrorCode=1144,
                      pilotErrorDiag="This job was killed by panda server", xml="{}")
    assert int(send_gzip_json(server.url, "updateJob", final)["StatusCode"]) == 0
    stored = peek_job(server.db_url, panda_id)
    assert stored.jobStatus == "holding" and stored.pilotErrorCode == 1144
    (row,) = output_reports(server.db_url, panda_id)
    assert row["jobStatus"] == "failed"


def test_update_of_unknown_job_asks_to_kill(server, fresh_queue):
    reply = send_gzip_json(server.url, "updateJob", heartbeat(987654321, "running", fresh_queue))
    assert int(reply["StatusCode"]) == 0 and "tobekilled" in reply["command"]
