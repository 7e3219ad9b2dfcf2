"""Bad input: every refused request gets a clear error and leaves the database exactly as it was."""

from __future__ import annotations

import gzip
import json
import pickle

import httpx
import pytest

from tests.web.conftest import MAX_BODY_BYTES, MAX_UPLOAD_BYTES, table_counts
from tests.web.helpers import JSON_HEADERS, make_job


class Exploit:
    def __reduce__(self):
        return (eval, ("1+1",))


def _many_jobs(site: str, n: int) -> str:
    state = make_job(site, "bulk").to_state()
    return json.dumps([state] * n)


def _cases(url: str, site: str) -> dict[str, tuple]:
    """name -> (request kwargs, expected status, text the error must contain)."""
    v1 = f"{url}/api/v1"
    legacy = f"{url}/server/panda"
    return {
        "malformed JSON (v1)": (dict(method="POST", url=f"{v1}/job/submit", content=b'{"jobs": ',
                                     headers=JSON_HEADERS), 400, "received invalid JSON"),
        "malformed JSON (legacy gzip)": (dict(method="POST", url=f"{legacy}/updateJob",
                                              content=gzip.compress(b"{nope"),
                                              headers={"Content-Type": "application/json"}), 400, "invalid JSON"),
        "JSON not an object": (dict(method="POST", url=f"{v1}/job/kill", content=b"[1, 2]", headers=JSON_HEADERS),
                               400, "must be a JSON object"),
        "corrupt gzip": (dict(method="POST", url=f"{legacy}/getJob", content=b"\x1f\x8b\x08garbage",
                              headers={"Content-Type": "application/json"}), 400, "invalid gzip"),
        "wrong type": (dict(method="POST", url=f"{v1}/job/kill", json={"job_ids": "1,2"}, headers=JSON_HEADERS),
                       200, "Type error: job_ids must be a list"),
        "wrong item type": (dict(method="POST", url=f"{v1}/job/kill", json={"job_ids": [1, "x"]},
                                 headers=JSON_HEADERS), 200, "Type error: job_ids[] must be an integer"),
        "missing parameter": (dict(method="POST", url=f"{v1}/job/submit", json={}, headers=JSON_HEADERS),
                              200, "Argument error: missing required parameter jobs"),
        "missing legacy parameter": (dict(method="POST", url=f"{legacy}/getJob", data={"node": "x"}),
                                     400, "missing required parameter siteName"),
        "unknown method": (dict(method="POST", url=f"{legacy}/dropAllTables", data={"x": "1"}),
                           403, "ERROR : method dropAllTables is forbidden"),
        "oversize body": (dict(method="POST", url=f"{v1}/job/submit", content=b"x" * (MAX_BODY_BYTES + 1),
                               headers=JSON_HEADERS), 413, "request body too large"),
        "gzip bomb": (dict(method="POST", url=f"{legacy}/updateJob",
                           content=gzip.compress(b" " * (MAX_BODY_BYTES + 1)),
                           headers={"Content-Type": "application/json"}), 413, "too large once decompressed"),
        "oversize upload": (dict(method="POST", url=f"{v1}/file_server/upload_cache_file",
                                 files={"file": ("big.tgz", b"0" * (MAX_UPLOAD_BYTES + 1))}), 200, "too large"),
        "bad pickle": (dict(method="POST", url=f"{legacy}/submitJobs", data={"jobs": pickle.dumps(Exploit(), 0).decode()}),
                       200, "forbidden class in pickle: __builtin__.eval"),
        "truncated pickle": (dict(method="POST", url=f"{legacy}/killJobs", data={"ids": "(lp0\nI1"}),
                             400, "invalid pickle"),
        "path traversal": (dict(method="POST", url=f"{legacy}/putFile", files={"file": ("..", b"x")}),
                           200, "invalid file name"),
        "traversal download": (dict(method="GET", url=f"{url}/cache/.."), 404, ""),
        "5001 jobs": (dict(method="POST", url=f"{v1}/job/submit", json={"jobs": _many_jobs(site, 5001)},
                           headers=JSON_HEADERS), 200, "too many jobs in one submission: 5001 > 5000"),
        "one bad job among good ones": (dict(method="POST", url=f"{v1}/job/submit", headers=JSON_HEADERS, json={
            "jobs": json.dumps([make_job(site, "ok").to_state(), make_job("NO_SUCH_QUEUE").to_state()])}),
            200, "unknown queue"),
        "bad job state": (dict(method="POST", url=f"{v1}/job/submit", headers=JSON_HEADERS,
                               json={"jobs": json.dumps([["x"] * 200])}), 200, "invalid job state"),
        "non-numeric ids": (dict(method="POST", url=f"{legacy}/getStatus", data={"ids": "1 two"}),
                            400, "ids must be PandaIDs"),
        "too many ids": (dict(method="POST", url=f"{v1}/job/get_description", headers=JSON_HEADERS,
                              json={"job_ids": list(range(5501))}), 200, "too many job ids"),
        "bad multipart": (dict(method="POST", url=f"{v1}/file_server/upload_cache_file", content=b"--x\r\nbroken",
                               headers={"Content-Type": "multipart/form-data; boundary=x"}), 400, "multipart"),
    }


CASE_NAMES = list(_cases("http://x", "Q"))


@pytest.mark.parametrize("case", CASE_NAMES)
def test_bad_request_is_refused_cleanly(server, case):
    request, status, text = _cases(server.url, server.queue)[case]
    before = table_counts(server.db_url)
    reply = httpx.request(timeout=120, **request)
    assert reply.status_code == status, reply.text[:500]
    assert text in reply.text, reply.text[:500]
    if request["url"].startswith(f"{server.url}/api/v1"):
        body = reply.json()  # v1 errors are always the JSON envelope
        assert body["success"] is False and text in body["message"]
    assert table_counts(server.db_url) == before
    assert httpx.get(f"{server.url}/server/panda/isAlive").text == "alive=yes"
