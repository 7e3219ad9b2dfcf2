"""Bad input: every refused request gets a clear error and leaves the database exactly as it was."""

from __future__ import annotations

import gzip
import json
import pickle
import typing
from typing import Any, Iterator
from urllib.parse import urlencode

import httpx
import pytest

from pandasrv.web.codecs import JSON_TYPE
from pandasrv.web.registry import REGISTRY, _unwrap
from tests.conftest import selected_backends
from tests.web.conftest import MAX_BODY_BYTES, MAX_UPLOAD_BYTES, table_counts
from tests.web.helpers import JSON_HEADERS, make_job
from tests.web.inproc import InProcess, in_process_app


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
                                 headers=JSON_HEADERS), 200, "Type error: job_ids[] must be a 64-bit integer"),
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


# --- bad input by class, in process: every registered method x every parameter x bad values of its type ---

def _bad_values(annotation: Any) -> list[tuple[str, Any]]:
    """(label, value) pairs that no parameter of this declared type may turn into a 500."""
    kind, _, _ = _unwrap(annotation)
    origin = typing.get_origin(kind) or kind
    containers = [("list", ["x"]), ("object", {"a": "b"}), ("deep", _deep(40))]
    if origin is int:
        return [("int64+1", 2**63), ("int64-1", -(2**63) - 1), ("int64+1 text", str(2**63)), ("1e30", "1e30"),
                ("1e999", "1e999"), ("inf", float("inf")), ("nan text", "nan"), ("superscript", "\u00b9"),
                ("arabic digit", "\u0661"), ("bool", True), ("float", 1.5), *containers]
    if origin is float:
        return [("1e999", "1e999"), ("inf", float("inf")), ("nan", float("nan")), ("huge int", 10**400),
                ("superscript", "\u00b9"), *containers]
    if origin is str:
        return [("NUL", "a\x00b"), ("surrogate", "\udcff"), ("int", 12), ("float", 1e999), *containers]
    if origin is bool:
        return [("text", "maybe"), ("int", 2), *containers]
    if origin is list:
        return [("string", "1,x"), ("int64+1 item", [2**63]), ("nested", [[1]]), ("deep", _deep(40)),
                ("object", {"a": 1})]
    if origin is dict:
        return [("string", "x"), ("list", [1]), ("deep", _deep(40))]
    return [("deep", _deep(40)), ("huge int", 10**400), ("NUL", "\x00")]


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _good_value(annotation: Any, queue: str) -> Any:
    kind, _, _ = _unwrap(annotation)
    origin = typing.get_origin(kind) or kind
    return {int: 1, float: 1.0, bool: True, list: [1], dict: {}}.get(origin, queue)


def _class_cases() -> list[tuple[str, str, str, str]]:
    """(method path, parameter, bad value label, transport) for every registered method."""
    cases = []
    for method in REGISTRY:
        for param in method.params:
            for label, _ in _bad_values(param.annotation):
                transports = ["json"] if method.legacy else ["json" if "POST" in method.http else "query"]
                if method.legacy:
                    transports.append("form")
                cases += [(method.path, param.name, label, transport) for transport in transports]
    return cases


def _json_text(value: Any) -> str:
    return json.dumps(value)  # inf and nan as Infinity/NaN, which json.loads reads back


@pytest.fixture(scope="module", params=[b for b in selected_backends() if b in ("sqlite", "postgresql")])
def app(request, test_databases, tmp_path_factory) -> Iterator[InProcess]:
    with in_process_app(test_databases, request.param, tmp_path_factory.mktemp("inproc")) as running:
        yield running


def test_every_parameter_refuses_bad_values_of_its_type(app):
    """No bad value of a parameter's declared type gets a 500 from any registered method, in any transport."""
    by_path = {method.path: method for method in REGISTRY}
    answered: dict[int, int] = {}
    for path, name, label, transport in _class_cases():
        method = by_path[path]
        bad = dict(_bad_values(next(p.annotation for p in method.params if p.name == name)))[label]
        params = {p.name: _good_value(p.annotation, app.queue) for p in method.params if p.required}
        params[name] = bad
        if transport == "json":
            result = app.request("POST", path, body=_json_text(params), headers={"Content-Type": JSON_TYPE})
        else:  # strings as they are (a lone surrogate stands for an undecodable byte), the rest as JSON text
            form = urlencode({k: v if isinstance(v, str) else _json_text(v) for k, v in params.items()},
                             errors="surrogateescape")
            if transport == "query":
                result = app.request("GET", path, query_string=form)
            else:
                result = app.request("POST", path, body=form,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert result.status_code < 500, (path, name, label, transport, result.text[:300])
        if not method.legacy:
            assert set(result.json) == {"success", "message", "data"}, (path, name, label, result.text[:300])
        answered[result.status_code] = answered.get(result.status_code, 0) + 1
    assert set(answered) <= {200, 400, 403, 413}, answered
