"""Bad input: every refused request gets a clear error and leaves the database exactly as it was."""

from __future__ import annotations

import gzip
import json
import pickle
import typing
from typing import Any, Iterator
from urllib.parse import parse_qs, urlencode

import httpx
import pytest

from pandasrv.web import pickles
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


def _chunks(data: bytes) -> Iterator[bytes]:
    """A body httpx sends with Transfer-Encoding: chunked (no Content-Length)."""
    for start in range(0, len(data), 1 << 20):
        yield data[start:start + (1 << 20)]


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
        "chunked body": (dict(method="POST", url=f"{legacy}/getJob", content=_chunks(b"siteName=NO_SUCH_QUEUE"),
                              headers={"Content-Type": "application/x-www-form-urlencoded"}), 200, "no+queue+named"),
        "chunked body too large": (dict(method="POST", url=f"{v1}/job/submit", headers=JSON_HEADERS,
                                        content=_chunks(b"x" * (MAX_BODY_BYTES + 1))), 413, "request body too large"),
        "PUT": (dict(method="PUT", url=f"{v1}/job/kill", json={"job_ids": [1]}), 405, ""),
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
    if request["url"].startswith(f"{server.url}/api/v1") and status != 405:
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


# --- the inputs the security review found answered 500, by name ------------------------------------------

def _nested_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def _pickled_job(site: str, **values: Any) -> str:
    job = make_job(site, "pickled")
    for name, value in values.items():
        object.__setattr__(job, name, value)
    return pickles.dumps([job]).decode("latin1")


def _amplifying(levels: int) -> Any:
    """A list that references the one below it twice per level: tiny pickled, 2**levels items expanded."""
    value: Any = ["x" * 10]
    for _ in range(levels):
        value = [value, value]
    return value


def _form(**values: Any) -> dict[str, Any]:
    return {"body": urlencode(values, errors="surrogateescape"),
            "headers": {"Content-Type": "application/x-www-form-urlencoded"}}


def _json(values: Any) -> dict[str, Any]:
    return {"body": values if isinstance(values, str) else json.dumps(values), "headers": {"Content-Type": JSON_TYPE}}


def _review_cases(queue: str) -> dict[str, tuple[str, str, dict[str, Any], int, str]]:
    """name -> (HTTP method, path, request kwargs, expected status, text the reply must contain)."""
    v1, legacy = "/api/v1", "/server/panda"
    huge = str(2**63)
    state_1e999 = json.dumps([make_job(queue, "big").to_state()]).replace("1000", "1e999", 1)  # currentPriority
    return {
        "job_ids beyond int64 (v1 GET)": ("GET", f"{v1}/job/get_status", {"query_string": f"job_ids={huge}"},
                                          200, "job_ids[] must be a 64-bit integer"),
        "job_ids beyond int64 (pilot GET)": ("GET", f"{v1}/pilot/get_job_status", {"query_string": f"job_ids={huge}"},
                                             200, "job_ids[] must be a 64-bit integer"),
        "mem=1e30": ("POST", f"{legacy}/getJob", _form(siteName=queue, mem="1e30"), 400, "mem must be a 64-bit"),
        "jobId=1e30": ("POST", f"{legacy}/updateJob", _form(jobId="1e30", state="running"), 200, "StatusCode=50"),
        "1e999 in a job state (v1)": ("POST", f"{v1}/job/submit", _json({"jobs": state_1e999}), 200,
                                      "invalid job state"),
        "1e999 in a job state (legacy)": ("POST", f"{legacy}/submitJobs", _form(jobs=state_1e999), 200, "ERROR: invalid job"),
        "siteName list": ("POST", f"{legacy}/getJob", _json({"siteName": ["SECQ"]}), 400, "siteName must be a string"),
        "site_name list (v1)": ("POST", f"{v1}/pilot/acquire_jobs", _json({"site_name": ["SECQ"]}), 200,
                                "site_name must be a string"),
        "prodUserID list": ("POST", f"{legacy}/getJob", _json({"siteName": queue, "prodUserID": ["x"]}), 400,
                            "prodUserID must be a string"),
        "state list": ("POST", f"{legacy}/updateJob", _json({"jobId": 1, "state": ["running"]}), 400,
                       "state must be a string"),
        "job_status list (v1)": ("POST", f"{v1}/pilot/update_job", _json({"job_id": 1, "job_status": ["running"]}), 200,
                                 "job_status must be a string"),
        "JSON body 1000 deep (v1)": ("POST", f"{v1}/job/kill", _json(_nested_json(1000)), 400, "nested more than 32"),
        "JSON body 1000 deep (legacy)": ("POST", f"{legacy}/getJob", _json(_nested_json(1000)), 400, "nested more than"),
        "jobs 1000 deep": ("POST", f"{v1}/job/submit", _json({"jobs": _nested_json(1000)}), 200, "nested more than"),
        "JSON body 33 deep": ("POST", f"{v1}/job/kill", _json({"job_ids": _deep(33)}), 400, "nested more than"),
        "pickled JobSpec with Files=[None]": ("POST", f"{legacy}/submitJobs", _form(jobs=_pickled_job(queue, Files=[None])),
                                              200, "Files must hold FileSpecs"),
        "pickle amplification": ("POST", f"{legacy}/submitJobs",
                                 _form(jobs=_pickled_job(queue, jobParameters=_amplifying(24))), 200,
                                 "too large once decoded"),
        "ids beyond int64 (pickle)": ("POST", f"{legacy}/killJobs", _form(ids=pickle.dumps([2**63], 0).decode()), 400,
                                      "ids[] must be a 64-bit integer"),
        "killJobs code superscript": ("POST", f"{legacy}/killJobs", _form(ids="[1]", code="\u00b9"), 200, ""),
        "setDebugMode pandaID superscript": ("POST", f"{legacy}/setDebugMode", _form(pandaID="\u00b9"), 400,
                                             "pandaID must be a 64-bit integer"),
        "getScriptOfflineRunning pandaID superscript": ("POST", f"{legacy}/getScriptOfflineRunning",
                                                        _form(pandaID="\u00b9"), 400, "pandaID must be a 64-bit"),
        "NUL in a string": ("POST", f"{legacy}/getJob", _form(siteName="a\x00b"), 400, "NUL"),
        "undecodable bytes in a string": ("POST", f"{legacy}/getJob", _form(siteName="\udcff"), 400, "UTF-8"),
        "PUT (v1)": ("PUT", f"{v1}/job/kill", _json({"job_ids": [1]}), 405, ""),
        "PUT (legacy)": ("PUT", f"{legacy}/getJob", _form(siteName=queue), 405, ""),
        "GET on a POST method (v1)": ("GET", f"{v1}/job/kill", {"query_string": "job_ids=1"}, 405, "expecting POST"),
    }


REVIEW_CASES = list(_review_cases("Q"))


@pytest.mark.parametrize("case", REVIEW_CASES)
def test_reviewed_bad_input_is_refused_cleanly(app, case):
    method, path, request, status, text = _review_cases(app.queue)[case]
    before = table_counts(app.db_url)
    result = app.request(method, path, **request)
    assert result.status_code == status, result.text[:500]
    assert text in result.text, result.text[:500]
    if path.startswith("/api/v1") and (status != 405 or "expecting" in text):
        assert set(result.json) == {"success", "message", "data"} and result.json["success"] is False
    assert table_counts(app.db_url) == before


@pytest.mark.parametrize("form", ["legacy", "v1"])
def test_heartbeat_for_a_job_never_sent_is_refused_in_band(app, form):
    """A pilot still running a job that was reassigned (activated again) gets a refusal and tobekilled."""
    (panda_id,) = app.tb.insert_jobs([make_job(app.queue, "never-sent")], "activated")
    if form == "legacy":
        result = app.request("POST", "/server/panda/updateJob", **_form(jobId=panda_id, state="running"))
        assert result.status_code == 200 and parse_qs(result.text)["StatusCode"] == ["30"], result.text
        assert parse_qs(result.text)["command"] == ["tobekilled"]
    else:
        result = app.request("POST", "/api/v1/pilot/update_job", **_json({"job_id": panda_id, "job_status": "running"}))
        assert result.status_code == 200 and result.json["success"] is False, result.text
        assert "illegal job status transition activated -> running" in result.json["message"]
    assert app.tb.get_job_status([panda_id])[panda_id][0] == "activated"
