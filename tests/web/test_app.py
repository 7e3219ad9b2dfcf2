"""Routing, the whitelist, the OpenAPI document, request decoding and reply encoding."""

from __future__ import annotations

import gzip
import json
import re

import httpx

from tests.web.helpers import JSON_HEADERS, parse_reply, pilot_call, submit_activated, v1


def test_unknown_methods_are_forbidden(server):
    for path in ("/server/panda/noSuchMethod", "/api/v1/job/no_such_method", "/api/v1/nomodule/x",
                 "/api/v1/panda/isAlive", "/server/panda/is_alive"):
        reply = httpx.post(server.url + path, data={"a": "1"})
        assert reply.status_code == 403
        assert reply.text == f"ERROR : method {path.rsplit('/', 1)[1]} is forbidden"
    assert httpx.get(server.url + "/api/latest/system/is_alive").status_code == 403
    assert httpx.get(server.url + "/server/panda/a/b").status_code == 403


def test_liveness_and_server_name(server):
    assert httpx.get(server.url + "/server/panda/isAlive").text == "alive=yes"
    assert httpx.get(server.url + "/server/panda/getServer").text == f"127.0.0.1:{server.settings.port}"
    reply = httpx.get(server.url + "/api/v1/system/is_alive", headers=JSON_HEADERS)
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json()["success"] is True


def test_get_attributes_reports_identity_and_environment(server):
    data = v1(server.url, "system/get_attributes", method="GET")["data"]
    assert data["dn"] == server.settings.local_dn and data["production"] is True
    assert data["environment"]["REQUEST_METHOD"] == "GET"


def test_openapi_document_lists_every_registered_method(server):
    doc = httpx.get(server.url + "/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    assert {"/server/panda/getJob", "/server/panda/updateJob", "/api/v1/job/submit",
            "/api/v1/pilot/acquire_jobs", "/api/v1/file_server/upload_cache_file"} <= set(paths)
    submit_body = paths["/api/v1/job/submit"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert submit_body["properties"]["jobs"] == {"type": "string"} and submit_body["required"] == ["jobs"]
    status_params = {p["name"]: p for p in paths["/api/v1/job/get_status"]["get"]["parameters"]}
    assert status_params["job_ids"]["schema"] == {"type": "array", "items": {
        "type": "integer", "format": "int64", "minimum": -(2**63), "maximum": 2**63 - 1}}
    assert "production role" in paths["/api/v1/job/set_command"]["post"]["description"]


def test_gzip_json_without_content_encoding(server, fresh_queue):
    (panda_id,) = submit_activated(server, fresh_queue)
    job = pilot_call(server.url, "getJob", {"siteName": fresh_queue, "prodSourceLabel": "user", "mem": 2000.0,
                                            "allowOtherCountry": True, "unknownExtra": "ignored"})
    assert job["StatusCode"] == "0" and int(job["PandaID"]) == panda_id


def test_form_body_with_accept_json_gets_json(server, fresh_queue):
    (panda_id,) = submit_activated(server, fresh_queue)
    reply = httpx.post(server.url + "/server/panda/getJob", data={"siteName": fresh_queue, "prodSourceLabel": "user"},
                       headers={"Accept": "application/json"})
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json()["PandaID"] == panda_id and reply.json()["StatusCode"] == 0


def test_query_string_and_json_content_type_without_body(server, fresh_queue):
    (panda_id,) = submit_activated(server, fresh_queue)
    reply = httpx.get(server.url + "/server/panda/getStatus", params={"ids": str(panda_id)},
                      headers={"Content-Type": "application/json"})
    assert parse_reply(reply.text) == {"StatusCode": "0", "status": "activated", "attemptNr": "0"}
    reply = httpx.get(server.url + "/api/v1/job/get_status", params=[("job_ids", panda_id), ("job_ids", 987654321)],
                      headers=JSON_HEADERS)
    assert reply.json()["data"] == [{"status": "activated", "command": None}, None]


def test_v1_get_casts_none_and_booleans(server):
    reply = v1(server.url, "job/generate_offline_execution_script", {"job_id": "987654321", "days": "None"}, method="GET")
    assert reply["success"] is False and "not found" in reply["message"]
    bad = v1(server.url, "job/generate_offline_execution_script", {"job_id": "abc"}, method="GET")
    assert bad["success"] is False and bad["message"].startswith("Type error: job_id")


def test_legacy_json_true_false_become_strings(server, fresh_queue):
    (panda_id,) = submit_activated(server, fresh_queue)
    job = pilot_call(server.url, "getJob", {"siteName": fresh_queue, "prodSourceLabel": "user",
                                            "getProxyKey": True}, Accept="application/json")
    assert job["PandaID"] == panda_id and job["credname"] == ""


def test_legacy_reply_encodings(server, fresh_queue):
    request = {"siteName": fresh_queue, "prodSourceLabel": "user"}
    urlencoded = httpx.post(server.url + "/server/panda/getJob", data=request)
    assert urlencoded.text.startswith("StatusCode=20")
    as_json = httpx.post(server.url + "/server/panda/getJob", data=request,
                         headers={"Accept": "text/html, application/json"})
    assert as_json.json() == {"StatusCode": 20, "errorDialog": "no jobs in PanDA"}


def test_v1_datetimes_and_envelope(server, fresh_queue):
    (panda_id,) = submit_activated(server, fresh_queue)
    reply = httpx.post(server.url + "/api/v1/job/get_description", json={"job_ids": [panda_id]})
    body = reply.json()
    assert set(body) == {"success", "message", "data"}
    assert re.match(r"\d{4}-\d\d-\d\dT", body["data"][0]["creationTime"]["__datetime__"])


def test_access_log_line_per_request(server):
    httpx.get(server.url + "/server/panda/isAlive", params={"probe": "access-log"})
    httpx.post(server.url + "/server/panda/notAMethod")
    log = server.log()
    assert re.search(r"pandasrv\.access .*GET panda isAlive caller=\S+ status=200 time=[\d.]+ms", log)
    assert re.search(r"pandasrv\.access .*POST panda notAMethod caller=- status=403 time=", log)


def test_gzip_json_on_v1_with_header(server):
    body = gzip.compress(json.dumps({"job_ids": [987654321, 987654322]}).encode())
    reply = httpx.post(server.url + "/api/v1/job/get_description", content=body,
                       headers={**JSON_HEADERS, "Content-Encoding": "gzip"})
    assert reply.json() == {"success": True, "message": "", "data": [None, None]}
