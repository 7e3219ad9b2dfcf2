"""The v1 Harvester API on every backend, with requests shaped like Harvester's communicator sends them.

One x509 server per backend behind a (simulated) trusted front server, so each request chooses its caller:
the Harvester robot with a production role, a plain user, or nobody.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pandasrv.web.harvester_api import WireError, parse_time, worker_values
from tests.web.harvester_client import (
    ANONYMOUS_H,
    PROD_H,
    USER_H,
    acquire,
    call,
    report_stats,
    request,
    stamp,
    submit_managed,
    update_workers,
    worker,
)


def new_id() -> str:
    return f"harvester_test_{secrets.token_hex(3)}"


# --- wire parsing (no server) ----------------------------------------------------------------------

@given(st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2100, 1, 1)))
def test_harvester_datetimes_round_trip(moment):
    assert parse_time("t", stamp(moment)) == moment
    assert parse_time("t", moment.strftime("%Y-%m-%d %H:%M:%S.%f")) == moment


@given(st.one_of(st.text(max_size=5).filter(lambda t: not t.strip().lstrip("-").isdigit()), st.booleans(),
                 st.lists(st.integers(), max_size=2)))
def test_worker_with_a_bad_integer_is_refused_naming_it(value):
    if value in ("", "NULL"):
        return
    with pytest.raises(WireError, match="nCore"):
        worker_values({"workerID": 1, "nCore": value})


def test_worker_values_cast_cut_and_ignore_unknown_keys():
    values = worker_values({**worker(7, "Q"), "diagMessage": "x" * 900, "unknownKey": 1, "pandaid_list": ["12"]})
    assert values["workerID"] == 7 and values["submitTime"] == dt.datetime(2026, 12, 2, 10, 0, 0, 123456)
    assert len(values["diagMessage"]) == 500 and "unknownKey" not in values and values["pandaid_list"] == [12]
    for bad in ({}, {"workerID": None}, {"workerID": 1, "submitTime": "yesterday"}, [1]):
        with pytest.raises(WireError):
            worker_values(bad)


# --- instances and workers -------------------------------------------------------------------------

def test_heartbeat_records_the_instance(hserver):
    hid = new_id()
    data = {"startTime": stamp(dt.datetime(2026, 12, 2, 9, 0)), "sw_version": "0.7.5", "commit_stamp": "abc123",
            "commands": [{"command": "SET_N_WORKERS_JOBTYPE", "computingSite": "Q", "resourceType": "SCORE"}]}
    for _ in range(2):
        assert call(hserver.url, "POST", "harvester/heartbeat", {"harvester_id": hid, "data": data}) == \
            {"success": True, "message": "", "data": None}
    assert call(hserver.url, "POST", "harvester/heartbeat", {"harvester_id": hid, "data": {}})["success"]
    (row,) = [i for i in hserver.tb.list_harvester_instances() if i["harvester_ID"] == hid]
    assert row["owner"] == "harvester robot" and row["sw_version"] == "0.7.5"
    assert row["startTime"] == dt.datetime(2026, 12, 2, 9, 0)


def test_workers_insert_update_and_current_id(hserver):
    hid, site = new_id(), hserver.add_queue()
    assert call(hserver.url, "GET", "harvester/get_current_worker_id", {"harvester_id": hid})["data"] is None
    body = update_workers(hserver.url, hid, [worker(i, site) for i in (1, 2, 3)])
    assert body == {"success": True, "message": "", "data": [True, True, True]}
    assert update_workers(hserver.url, hid, [worker(2, site, "running", nodeID="wn42")])["data"] == [True]
    workers = {w["workerID"]: w for w in hserver.tb.get_workers(hid)}
    assert workers[1]["status"] == "submitted" and workers[2]["status"] == "running"
    assert workers[2]["nodeID"] == "wn42" and workers[2]["computingElement"] == "ce1.example.org"
    assert workers[3]["submitTime"] == dt.datetime(2026, 12, 2, 10, 0, 0, 123456)
    assert call(hserver.url, "GET", "harvester/get_current_worker_id", {"harvester_id": hid})["data"] == 3


def test_a_final_worker_status_is_kept_against_late_reports(hserver):
    hid, site = new_id(), hserver.add_queue()
    update_workers(hserver.url, hid, [worker(1, site, "finished")])
    update_workers(hserver.url, hid, [worker(1, site, "running")])
    assert hserver.tb.get_workers(hid)[0]["status"] == "finished"


def test_job_worker_relation_from_acquire_and_from_update_workers(hserver):
    hid, site = new_id(), hserver.add_queue()
    first, second, third = submit_managed(hserver, site, 3)
    update_workers(hserver.url, hid, [worker(5, site)])
    assert acquire(hserver, site, 1, hid, worker_id=5) == [first]
    assert hserver.tb.get_workers(hid, [5])[0]["pandaid_list"] == [first]
    acquired = acquire(hserver, site, 2, hid)
    update_workers(hserver.url, hid, [worker(5, site, "running", pandaid_list=acquired)])
    assert hserver.tb.get_workers(hid, [5])[0]["pandaid_list"] == sorted([second, third])


def test_bad_workers_are_refused_and_store_nothing(hserver):
    hid, site = new_id(), hserver.add_queue()
    for workers, message in (([worker(1, site), {"batchID": "x"}], "workerID"),
                             ([worker(1, site), worker(2, site, nCore="many")], "nCore"),
                             ([worker(1, site), worker(1, site)], "twice"),
                             ([worker(1, site, submitTime="soon")], "submitTime")):
        body = update_workers(hserver.url, hid, workers)
        assert body["success"] is False and message in body["message"], body
    body = call(hserver.url, "POST", "harvester/update_workers", {"harvester_id": hid, "workers": "all"})
    assert body["success"] is False and "workers" in body["message"]
    assert hserver.tb.get_workers(hid) == []


# --- statistics ------------------------------------------------------------------------------------

def test_worker_statistics_round_trip(hserver):
    hid, site = new_id(), hserver.add_queue()
    stats = {"managed": {"SCORE": {"running": 3, "submitted": 2}, "Undefined": {"running": 9}},
             "user": {"MCORE": {"running": 1}}}
    assert report_stats(hserver.url, hid, site, stats) == {"success": True, "message": "OK", "data": None}
    got = call(hserver.url, "GET", "harvester/get_worker_statistics")["data"][site]
    assert got == {hid: {"managed": {"SCORE": {"running": 3, "submitted": 2}}, "user": {"MCORE": {"running": 1}}}}
    report_stats(hserver.url, hid, site, {"managed": {"SCORE": {"running": 1}}})
    assert call(hserver.url, "GET", "harvester/get_worker_statistics")["data"][site] == \
        {hid: {"managed": {"SCORE": {"running": 1}}}}
    for bad in ("not json", json.dumps({"managed": 3}), json.dumps({"managed": {"SCORE": {"running": "x"}}})):
        body = call(hserver.url, "POST", "harvester/report_worker_statistics",
                    {"harvester_id": hid, "panda_queue": site, "statistics": bad})
        assert body["success"] is False and "statistics" in body["message"]
    assert call(hserver.url, "GET", "harvester/get_worker_statistics")["data"][site] == \
        {hid: {"managed": {"SCORE": {"running": 1}}}}


# --- commands, sweeps, slots -----------------------------------------------------------------------

def test_commands_are_acquired_once_and_acknowledged(hserver):
    hid = new_id()
    ids = [hserver.tb.add_harvester_command(hid, "SYNC_WORKERS_KILL", [i], ack_requested=True) for i in (1, 2, 3)]
    first = call(hserver.url, "POST", "harvester/acquire_commands", {"harvester_id": hid, "n_commands": 2})["data"]
    assert [c["command_id"] for c in first] == ids[:2]
    assert first[0]["command"] == "SYNC_WORKERS_KILL" and first[0]["params"] == [1]
    assert first[0]["ack_requested"] is True and dt.datetime.fromisoformat(first[0]["creation_date"])
    rest = call(hserver.url, "POST", "harvester/acquire_commands", {"harvester_id": hid, "n_commands": 10})["data"]
    assert [c["command_id"] for c in rest] == ids[2:]
    assert call(hserver.url, "POST", "harvester/acquire_commands", {"harvester_id": hid, "n_commands": 10})["data"] == []
    assert call(hserver.url, "POST", "harvester/acknowledge_commands", {"command_ids": ids[:2]}) == \
        {"success": True, "message": "", "data": None}
    states = [c["status"] for c in hserver.tb.list_harvester_commands(hid)]
    assert states == ["acknowledged", "acknowledged", "retrieved"]


def test_sweep_command_goes_to_the_instance_serving_the_queue(hserver):
    hid, site = new_id(), hserver.add_queue()
    args = {"panda_queue": site, "status_list": ["submitted", "running"], "ce_list": "ALL",
            "submission_host_list": ["submit1.example.org"]}
    body = call(hserver.url, "POST", "harvester/add_sweep_command", args)
    assert body == {"success": False, "message": "Queue not served by any harvester ID", "data": None}
    update_workers(hserver.url, hid, [worker(1, site)])
    assert call(hserver.url, "POST", "harvester/add_sweep_command", args)["success"]
    (command,) = call(hserver.url, "POST", "harvester/acquire_commands", {"harvester_id": hid, "n_commands": 5})["data"]
    assert command["command"] == "KILL_WORKERS"
    assert command["params"] == {"status": ["submitted", "running"], "computingSite": [site],
                                 "computingElement": "ALL", "submissionHost": ["submit1.example.org"]}
    unknown = call(hserver.url, "POST", "harvester/add_sweep_command", {**args, "panda_queue": "NO_SUCH_QUEUE"})
    assert unknown["success"] is False


def test_target_slots_set_replace_and_remove(hserver):
    site = hserver.add_queue()
    body = call(hserver.url, "POST", "harvester/add_target_slots", {"panda_queue": site, "slots": 100})
    assert body["success"] and body["message"] == f"set numSlots=100 for PQ={site} gshare=None resource=None"
    call(hserver.url, "POST", "harvester/add_target_slots",
         {"panda_queue": site, "slots": 5, "resource_type": "MCORE", "expiration_date": "2"})
    call(hserver.url, "POST", "harvester/add_target_slots", {"panda_queue": site, "slots": 200})
    slots = {s["resourceType"]: s for s in hserver.tb.get_target_slots(site)}
    assert slots[None]["numSlots"] == 200 and slots[None]["expirationTime"] is None
    assert slots["MCORE"]["numSlots"] == 5 and slots["MCORE"]["expirationTime"] > dt.datetime.now() + dt.timedelta(days=1)
    call(hserver.url, "POST", "harvester/add_target_slots", {"panda_queue": site, "slots": -1})
    assert [s["resourceType"] for s in hserver.tb.get_target_slots(site)] == ["MCORE"]
    bad = call(hserver.url, "POST", "harvester/add_target_slots", {"panda_queue": site, "slots": 1,
                                                                   "expiration_date": "next week"})
    assert bad["success"] is False and "expiration_date" in bad["message"]


# --- dialogs and service metrics ---------------------------------------------------------------------

def test_dialogs_and_service_metrics_are_stored(hserver):
    hid = new_id()
    created = "2026-12-02 10:00:00.000001"
    dialogs = [{"diagID": i, "moduleName": "submitter", "identifier": f"worker {i}", "creationTime": created,
                "messageLevel": "ERROR", "diagMessage": f"failed to submit {i}"} for i in (1, 2)]
    assert call(hserver.url, "POST", "harvester/add_dialogs", {"harvester_id": hid, "dialogs": dialogs}) == \
        {"success": True, "message": "", "data": None}
    call(hserver.url, "POST", "harvester/add_dialogs",
         {"harvester_id": hid, "dialogs": [{**dialogs[0], "diagMessage": "replaced"}]})
    stored = hserver.tb.list_harvester_dialogs(hid)
    assert [(d["diagID"], d["diagMessage"]) for d in stored] == [(1, "replaced"), (2, "failed to submit 2")]
    metric = json.dumps({"rss_mib": 2737.36, "cpu_pc": 15.23, "cert_lifetime": {"/data/proxy": 81}})
    body = call(hserver.url, "POST", "harvester/update_service_metrics",
                {"harvester_id": hid, "metrics": [[created, "harvester1.example.org", metric]]})
    assert body == {"success": True, "message": "", "data": [True]}
    (row,) = hserver.tb.list_service_metrics(hid)
    assert json.loads(row["metrics"])["rss_mib"] == 2737.36
    for bad in ([["not a time", "h", "{}"]], [["2026-12-02 10:00:00.000001", "h"]], ["x"]):
        assert call(hserver.url, "POST", "harvester/update_service_metrics",
                    {"harvester_id": hid, "metrics": bad})["success"] is False
    assert call(hserver.url, "POST", "harvester/add_dialogs",
                {"harvester_id": hid, "dialogs": [{"moduleName": "x"}]})["success"] is False
    assert len(hserver.tb.list_service_metrics(hid)) == 1 and len(hserver.tb.list_harvester_dialogs(hid)) == 2


# --- roles and HTTP methods ----------------------------------------------------------------------------

SECURE_CALLS = (
    ("POST", "harvester/update_workers", {"harvester_id": "h", "workers": []}),
    ("POST", "harvester/update_service_metrics", {"harvester_id": "h", "metrics": []}),
    ("POST", "harvester/add_dialogs", {"harvester_id": "h", "dialogs": []}),
    ("POST", "harvester/heartbeat", {"harvester_id": "h", "data": {}}),
    ("GET", "harvester/get_current_worker_id", {"harvester_id": "h"}),
    ("GET", "harvester/get_worker_statistics", {}),
    ("POST", "harvester/report_worker_statistics", {"harvester_id": "h", "panda_queue": "Q", "statistics": "{}"}),
)
PRODUCTION_CALLS = (
    ("POST", "harvester/acquire_commands", {"harvester_id": "h", "n_commands": 1}),
    ("POST", "harvester/acknowledge_commands", {"command_ids": []}),
    ("POST", "harvester/add_sweep_command", {"panda_queue": "Q", "status_list": [], "ce_list": [],
                                             "submission_host_list": []}),
    ("POST", "harvester/add_target_slots", {"panda_queue": "ROLE_Q", "slots": 1}),
)


@pytest.mark.parametrize("method,path,data", SECURE_CALLS + PRODUCTION_CALLS, ids=lambda v: str(v)[:40])
def test_roles_and_http_methods(hserver, method, path, data):
    production = (method, path, data) in PRODUCTION_CALLS
    anonymous = call(hserver.url, method, path, data, ANONYMOUS_H)
    assert anonymous["success"] is False and "secure" in anonymous["message"]
    as_user = call(hserver.url, method, path, data, USER_H)
    if production:
        assert as_user["success"] is False and "production role" in as_user["message"]
    elif path != "harvester/add_sweep_command":
        assert as_user["success"] is True, as_user
    assert call(hserver.url, method, path, data, PROD_H)["success"] is (path != "harvester/add_sweep_command")
    wrong = request(hserver.url, "GET" if method == "POST" else "POST", path, data, PROD_H)
    assert wrong.status_code == 405 and wrong.headers["Allow"] == method
    assert wrong.json() == {"success": False, "message": f"expecting {method}, received {wrong_method(method)}",
                            "data": None}


def wrong_method(method: str) -> str:
    return "GET" if method == "POST" else "POST"


def test_missing_parameters_are_named(hserver):
    body = call(hserver.url, "POST", "harvester/update_workers", {"workers": []})
    assert body["success"] is False and "harvester_id" in body["message"]
    reply = request(hserver.url, "POST", "harvester/no_such_call", {})
    assert reply.status_code == 403
