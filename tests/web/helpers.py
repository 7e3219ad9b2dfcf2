"""Small client-side helpers for the web tests: build jobs, submit them, talk like a pilot."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
from falcon import testing

from pandasrv.taskbuffer.file_spec import FileSpec
from pandasrv.taskbuffer.job_spec import JobSpec
from tests.waiting import wait_for

JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
LOOPBACK = "127.0.0.1"


class LocalClient(testing.TestClient):
    """An in-process falcon client whose requests come from loopback unless a test says otherwise
    (``auth = none`` refuses every other peer, and falcon's default peer is none at all)."""

    def simulate_request(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("remote_addr", LOOPBACK)
        return super().simulate_request(*args, **kwargs)


def make_job(site: str, name: str = "job", label: str = "user", **values: Any) -> JobSpec:
    job = JobSpec(jobName=name, transformation="http://127.0.0.1/cache/run.sh", prodSourceLabel=label,
                  computingSite=site, jobParameters="hello", attemptNr=0, maxAttempt=1, currentPriority=1000,
                  **values)
    job.add_file(FileSpec(lfn=f"{name}.log.tgz", type="log", dataset="user.test.log",
                          destinationDBlock="user.test.log", destinationSE=site))
    return job


def submit(url: str, jobs: list[JobSpec], headers: dict[str, str] | None = None) -> list[int]:
    reply = httpx.post(f"{url}/api/v1/job/submit", json={"jobs": json.dumps([j.to_state() for j in jobs])},
                       headers=headers or JSON_HEADERS, timeout=60)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["success"], body
    return [item[0] for item in body["data"]]


def wait_status(tb: Any, ids: list[int], status: str, timeout: float = 30) -> None:
    """Poll until every job has ``status`` (the Setupper runs asynchronously after the reply)."""
    found: dict[int, Any] = {}

    def reached() -> bool:
        found.update(tb.get_job_status(ids))
        return all(found.get(i, ("",))[0] == status for i in ids)

    assert wait_for(reached, timeout), f"jobs not {status} after {timeout} s: {found}"


def submit_activated(server: Any, site: str, n: int = 1, **values: Any) -> list[int]:
    ids = submit(server.url, [make_job(site, f"job{i}", **values) for i in range(n)])
    wait_status(server.tb, ids, "activated")
    return ids


def pilot_post(url: str, method: str, data: dict[str, Any], **headers: str) -> httpx.Response:
    """pilot3's transport: gzip(JSON), Content-Type json, no Content-Encoding, no Accept."""
    return httpx.post(f"{url}/server/panda/{method}", content=gzip.compress(json.dumps(data).encode()),
                      headers={"Content-Type": "application/json", **headers}, timeout=60)


def parse_reply(text: str) -> dict[str, Any]:
    """How pilot3 reads a legacy reply: JSON objects as JSON, else a query string."""
    if text.startswith("{"):
        return json.loads(text)
    return {key: values[0] for key, values in parse_qs(text).items()}


def pilot_call(url: str, method: str, data: dict[str, Any], **headers: str) -> dict[str, Any]:
    reply = pilot_post(url, method, data, **headers)
    assert reply.status_code == 200, reply.text
    return parse_reply(reply.text)


def pilot_call_retrying(url: str, method: str, data: dict[str, Any], retries: int = 60) -> tuple[dict[str, Any], int]:
    """``pilot_call`` that tries a 503 again after a short pause, as the real pilot does (load shedding answers
    it before any database work, always with Retry-After); returns the reply and the number of 503s."""
    shed = 0
    while (reply := pilot_post(url, method, data)).status_code == 503 and shed < retries:
        assert reply.headers.get("Retry-After"), reply.headers
        shed += 1
        time.sleep(0.2)
    assert reply.status_code == 200, reply.text
    return parse_reply(reply.text), shed


def v1(url: str, path: str, data: dict[str, Any] | None = None, method: str = "POST",
       **headers: str) -> dict[str, Any]:
    if method == "GET":
        reply = httpx.get(f"{url}/api/v1/{path}", params=data, headers={**JSON_HEADERS, **headers}, timeout=60)
    else:
        reply = httpx.post(f"{url}/api/v1/{path}", json=data or {}, headers={**JSON_HEADERS, **headers}, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()


def write_jwks(path: Path, key: Any, kid: str) -> Path:
    """Publish the public half of ``key`` as a one-key JWKS file, as an OIDC issuer would."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    path.write_text(json.dumps({"keys": [{**jwk, "kid": kid, "use": "sig", "alg": "RS256"}]}))
    return path
