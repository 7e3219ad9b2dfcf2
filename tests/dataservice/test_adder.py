"""The Adder: file reports, final states, kills, transfers, and two Adders on the same reports."""

from __future__ import annotations

import json
import threading
import uuid

import pytest

from pandasrv.dataservice.adder import EC_ADDER, Adder
from pandasrv.dataservice.finisher import run_finisher
from pandasrv.logic.heartbeat import Heartbeat
from tests.dataservice import plugins_for_tests
from tests.dataservice.helpers import job, status_of, store, task_buffer


@pytest.fixture
def tb(db_url):
    buffer = task_buffer(db_url)
    yield buffer
    buffer.close()


def file_report(spec_job, **overrides):
    report = {}
    for f in spec_job.Files:
        if f.type in ("output", "log"):
            report[f.lfn] = {"guid": str(uuid.uuid4()), "fsize": 1234, "adler32": "0a1b2c3d",
                             "surl": f"file:///data/{f.lfn}", **overrides.get(f.type, {})}
    return report


def finish(tb, panda_id, state="finished", report=None, **values):
    text = json.dumps(report) if report is not None else ""
    reply = tb.update_job(Heartbeat(panda_id, state, values, attempt_nr=1, report=text))
    assert reply["result"] == "ok" and status_of(tb, panda_id) == "holding"


def test_good_report_finishes_the_job_and_records_file_metadata(tb):
    panda_id = store(tb, "running")[0]
    report = file_report(job(tb, panda_id))
    finish(tb, panda_id, report=report)
    assert Adder(tb, tb.settings).run_round() == 1
    assert tb.peek_jobs([panda_id], archived=False) == [None]
    done = job(tb, panda_id)
    assert done.jobStatus == "finished" and done.endTime is not None
    for f in done.Files:
        if f.type in ("output", "log"):
            entry = report[f.lfn]
            assert (f.GUID, f.fsize, f.checksum, f.status) == (entry["guid"], 1234, "ad:0a1b2c3d", "ready")
    assert tb.lock_output_reports("check", 10, 600) == []  # the report is gone


@pytest.mark.parametrize("bad", [{"guid": None}, {"guid": "not-a-guid"}, {"fsize": None}])
def test_bad_or_missing_file_metadata_fails_the_job_with_a_ddm_error(tb, bad):
    panda_id = store(tb, "running")[0]
    finish(tb, panda_id, report=file_report(job(tb, panda_id), output=bad))
    Adder(tb, tb.settings).run_round()
    failed = job(tb, panda_id)
    assert (failed.jobStatus, failed.ddmErrorCode) == ("failed", EC_ADDER)
    assert failed.ddmErrorDiag.startswith("Could not get GUID/LFN/MD5/FSIZE/SURL from pilot JSON")
    assert all(f.status == "failed" for f in failed.Files if f.type == "output")


def test_missing_report_fails_the_job(tb):
    panda_id = store(tb, "running")[0]
    finish(tb, panda_id, report=None)
    Adder(tb, tb.settings).run_round()
    assert (job(tb, panda_id).jobStatus, job(tb, panda_id).ddmErrorCode) == ("failed", EC_ADDER)


def test_failed_job_keeps_the_pilot_error_and_its_uploaded_log(tb):
    panda_id = store(tb, "running")[0]
    report = {k: v for k, v in file_report(job(tb, panda_id)).items() if k.startswith("log.")}
    finish(tb, panda_id, state="failed", report=report, pilotErrorCode=1137, pilotErrorDiag="payload crashed")
    Adder(tb, tb.settings).run_round()
    failed = job(tb, panda_id)
    assert (failed.jobStatus, failed.pilotErrorCode, failed.pilotErrorDiag) == ("failed", 1137, "payload crashed")
    assert failed.ddmErrorCode in (0, None)
    assert {f.type: f.status for f in failed.Files} == {"output": "failed", "log": "ready"}


def test_killed_job_that_failed_is_cancelled(tb):
    panda_id = store(tb, "running")[0]
    assert tb.kill_jobs([panda_id], user="owner", is_production=True) == [True]
    finish(tb, panda_id, state="failed", report={}, pilotErrorCode=1144, pilotErrorDiag="killed by signal")
    Adder(tb, tb.settings).run_round()
    cancelled = job(tb, panda_id)
    assert (cancelled.jobStatus, cancelled.pilotErrorCode) == ("cancelled", 1144)


def test_outputs_to_move_go_through_transferring_and_the_finisher(db_url):
    tb = task_buffer(db_url, plugins={"adder": {"any": "tests.dataservice.plugins_for_tests:TransferringAdder"},
                                      "finisher": {"generic": "tests.dataservice.plugins_for_tests:ArrivedFinisher"}})
    panda_id = store(tb, "running")[0]
    finish(tb, panda_id, report=file_report(job(tb, panda_id)))
    Adder(tb, tb.settings).run_round()
    moving = job(tb, panda_id)
    assert moving.jobStatus == "transferring"
    assert {f.status for f in moving.Files if f.type != "input"} == {"transferring"}
    assert all(f.GUID for f in moving.Files)
    assert run_finisher(tb, tb.settings) == {panda_id: "finished"}
    Adder(tb, tb.settings).run_round()
    assert status_of(tb, panda_id) == "finished"
    tb.close()


def test_generic_finisher_waits_while_outputs_are_on_the_way(db_url):
    tb = task_buffer(db_url, plugins={"adder": {"any": "tests.dataservice.plugins_for_tests:TransferringAdder"}})
    panda_id = store(tb, "running")[0]
    finish(tb, panda_id, report=file_report(job(tb, panda_id)))
    Adder(tb, tb.settings).run_round()
    assert run_finisher(tb, tb.settings) == {}
    assert status_of(tb, panda_id) == "transferring"
    tb.close()


def test_two_concurrent_adders_never_process_one_report_twice(db_url):
    settings_override = {"plugins": {"adder": {"any": "tests.dataservice.plugins_for_tests:RecordingAdder"}}}
    setup = task_buffer(db_url)
    ids = store(setup, "running", n=30)
    for panda_id in ids:
        finish(setup, panda_id, report=file_report(job(setup, panda_id)))
    plugins_for_tests.PROCESSED.clear()
    buffers = [task_buffer(db_url, **settings_override) for _ in range(2)]
    adders = [Adder(b, b.settings) for b in buffers]

    def drain(adder):
        while adder.run_round(3):
            pass

    threads = [threading.Thread(target=drain, args=(adder,)) for adder in adders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(plugins_for_tests.PROCESSED) == sorted(ids)
    assert {status for status, _, _ in setup.get_job_status(ids).values()} == {"finished"}
    for b in buffers + [setup]:
        b.close()
