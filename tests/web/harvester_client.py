"""Talk to the server the way Harvester's ``PandaCommunicator.request_ssl`` does, with requests shaped like
the ones its communicator builds (``harvester_id`` from the config, workers from
``WorkSpec.convert_to_propagate``, datetimes as ``datetime/%Y-%m-%d %H:%M:%S.%f``).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx

from tests.web.helpers import make_job, wait_status


def as_user(dn: str, *fqans: str) -> dict[str, str]:
    """Headers a trusted TLS front server sets for a client certificate with VOMS attributes."""
    headers = {"X-SSL-Client-S-DN": dn}
    for i, fqan in enumerate(fqans):
        headers[f"X-GRST-Cred-{i}"] = f"VOMS 0 0 {fqan}"
    return headers


PROD_DN = "/DC=ch/DC=cern/OU=Robots/CN=harvester robot"
USER_DN = "/DC=ch/DC=cern/OU=Users/CN=alice"
PROD_H = as_user(PROD_DN, "/atlas/Role=production")
USER_H = as_user(USER_DN, "/atlas/Role=NULL")
ANONYMOUS_H: dict[str, str] = {}


def request(url: str, method: str, path: str, data: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> httpx.Response:
    """GET: URL-encoded parameters (lists as repeated keys); POST: a JSON body. Accept JSON, close."""
    base = {"Accept": "application/json", "Connection": "close", **(headers if headers is not None else PROD_H)}
    target = f"{url}/api/v1/{path}"
    if method == "GET":
        return httpx.get(target, params=data or {}, headers=base, timeout=60)
    return httpx.post(target, json=data or {}, headers={**base, "Content-Type": "application/json"}, timeout=60)


def call(url: str, method: str, path: str, data: dict[str, Any] | None = None,
         headers: dict[str, str] | None = None) -> dict[str, Any]:
    reply = request(url, method, path, data, headers)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) == {"success", "message", "data"}, body
    return body


def stamp(moment: dt.datetime) -> str:
    return "datetime/" + moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def worker(worker_id: int, site: str, status: str = "submitted", **values: Any) -> dict[str, Any]:
    """One entry of ``update_workers``: the attributes ``convert_to_propagate`` sends when set."""
    now = dt.datetime(2026, 12, 2, 10, 0, 0, 123456)
    data: dict[str, Any] = {
        "workerID": worker_id, "batchID": f"{1000 + worker_id}.0", "queueName": site, "status": status,
        "computingSite": site, "nCore": 1, "submitTime": stamp(now), "jobType": "managed", "resourceType": "SCORE",
        "nJobs": 1, "computingElement": "ce1.example.org", "syncLevel": 0, "submissionHost": "submit1.example.org",
        "harvesterHost": "harvester1.example.org", "minRamCount": 2000,
    }
    if status in ("running", "finished", "failed", "cancelled"):
        data["startTime"] = stamp(now + dt.timedelta(minutes=1))
        data["nodeID"] = "wn001.example.org"
    if status in ("finished", "failed", "cancelled"):
        data["endTime"] = stamp(now + dt.timedelta(minutes=5))
    data.update(values)
    return data


def update_workers(url: str, harvester_id: str, workers: list[dict[str, Any]],
                   headers: dict[str, str] | None = None) -> dict[str, Any]:
    return call(url, "POST", "harvester/update_workers", {"harvester_id": harvester_id, "workers": workers}, headers)


def report_stats(url: str, harvester_id: str, site: str, stats: dict[str, Any]) -> dict[str, Any]:
    """``update_worker_stats``: the statistics travel as a JSON string."""
    return call(url, "POST", "harvester/report_worker_statistics",
                {"harvester_id": harvester_id, "panda_queue": site, "statistics": json.dumps(stats)})


def submit_managed(server, site: str, n: int) -> list[int]:
    jobs = json.dumps([make_job(site, f"m{i}", label="managed").to_state() for i in range(n)])
    reply = httpx.post(f"{server.url}/api/v1/job/submit", json={"jobs": jobs},
                       headers={"Accept": "application/json", **PROD_H}, timeout=60).json()
    assert reply["success"], reply
    ids = [item[0] for item in reply["data"]]
    wait_status(server.tb, ids, "activated")
    return ids


def acquire(server, site: str, n: int, harvester_id: str, worker_id: int | None = None) -> list[int]:
    data = {"site_name": site, "node": "harvester1.example.org", "prod_source_label": "managed",
            "computing_element": "ce1.example.org", "n_jobs": n, "scheduler_id": f"harvester-{harvester_id}"}
    if worker_id is not None:
        data.update(harvester_id=harvester_id, worker_id=worker_id)
    body = call(server.url, "POST", "pilot/acquire_jobs", data)
    assert body["success"], body
    return [job["PandaID"] for job in body["data"]["jobs"]]
