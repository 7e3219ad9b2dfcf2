"""Setupper (in-process and through its helper process), Activator, Closer chain."""

from __future__ import annotations

import logging
import os
import signal
import time

import psutil
import pytest

from pandasrv.dataservice.activator import run_activator
from pandasrv.dataservice.closer import run_closer
from pandasrv.dataservice.setupper import recover_defined, run_setupper
from pandasrv.logic.handover import start_setupper, stop_setupper
from tests.daemon.helpers import live_children
from tests.dataservice.helpers import job, make_job, status_of, store, task_buffer
from tests.waiting import wait_for
from tests.web.gated_setupper import GATE_DIR_VARIABLE, GATED_VO, PLUGIN


@pytest.fixture
def tb(db_url):
    buffer = task_buffer(db_url)
    yield buffer
    buffer.close()


def test_setupper_activates_jobs_whose_inputs_need_no_transfer(tb):
    no_inputs = store(tb, "defined")[0]
    ready_inputs = store(tb, "defined", inputs=2, dispatch="panda.dis.1", input_status="ready")[0]
    no_dispatch = store(tb, "defined", inputs=1)[0]
    to_transfer = store(tb, "defined", inputs=2, dispatch="panda.dis.2")[0]
    done = run_setupper(tb, [no_inputs, ready_inputs, no_dispatch, to_transfer], tb.settings)
    assert sorted(done["activated"]) == sorted([no_inputs, ready_inputs, no_dispatch])
    assert done["assigned"] == [to_transfer]
    assert status_of(tb, to_transfer) == "assigned"
    for panda_id in (no_inputs, to_transfer):
        assert all(f.GUID for f in job(tb, panda_id).Files if f.type in ("output", "log"))


def test_setupper_leaves_jobs_that_are_no_longer_defined_alone(tb):
    panda_id = store(tb, "activated")[0]
    assert run_setupper(tb, [panda_id], tb.settings) == {"activated": [], "assigned": []}
    assert status_of(tb, panda_id) == "activated"


def test_start_setupper_hands_jobs_to_a_helper_process_and_returns_at_once(tb):
    settings = tb.settings
    first = store(tb, "defined")
    start_setupper(settings, first)
    assert wait_for(lambda: status_of(tb, first[0]) == "activated", 30)
    second = store(tb, "defined", n=3)
    start_setupper(settings, second)  # the same helper takes the next batch
    assert wait_for(lambda: all(status_of(tb, i) == "activated" for i in second), 30)


def helpers() -> list[psutil.Process]:
    """This process's live Setupper helpers."""
    return live_children(os.getpid(), "pandasrv.dataservice.setupper")


def test_a_killed_helper_is_restarted_and_what_it_had_not_set_up_is_not_lost(db_url, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(GATE_DIR_VARIABLE, str(tmp_path))  # the helper holds gated jobs until their gate opens
    tb = task_buffer(db_url, plugins={"setupper": {GATED_VO: PLUGIN}})
    stop_setupper()  # the helper of an earlier test is not one to kill
    held = []
    try:
        with caplog.at_level(logging.WARNING, logger="pandasrv.supervisor"):
            for i in range(3):  # the third death in a row is the alarm
                spec = make_job()
                spec.jobName, spec.VO = f"held{i}", GATED_VO
                held += tb.insert_jobs([spec])
                deadline = time.monotonic() + 30
                while not helpers():  # after the first death the restart waits out a backoff
                    assert time.monotonic() < deadline
                    start_setupper(tb.settings, held[-1:])
                    time.sleep(0.1)
                (helper,) = helpers()
                os.kill(helper.pid, signal.SIGKILL)
                assert wait_for(lambda: not helpers(), 30)  # a zombie until the next send reaps it
            for i in range(3):
                (tmp_path / f"held{i}").touch()
            later = store(tb, "defined")
            assert wait_for(lambda: start_setupper(tb.settings, later) or
                            all(status_of(tb, i) == "activated" for i in held + later), 60)
        messages = [r.getMessage() for r in caplog.records]
        assert sum("setupper helper died (killed by SIGKILL)" in m for m in messages) == 3, messages
        assert sum("setupper helper keeps dying" in m for m in messages) == 1, messages
    finally:
        stop_setupper()
        tb.close()


def test_jobs_the_setupper_never_saw_are_recovered(tb):
    panda_id = store(tb, "defined")[0]
    assert recover_defined(tb, tb.settings, older_than=3600) == {"activated": [], "assigned": []}
    assert recover_defined(tb, tb.settings, older_than=0)["activated"] == [panda_id]


def test_activator_activates_assigned_jobs_once_inputs_are_ready(tb):
    waiting = store(tb, "assigned", inputs=1, dispatch="panda.dis.3")[0]
    ready = store(tb, "assigned", inputs=1, dispatch="panda.dis.4", input_status="ready")[0]
    assert run_activator(tb, tb.settings) == [ready]
    assert status_of(tb, waiting) == "assigned"


def test_closer_closes_a_finished_dataset_and_activates_the_jobs_reading_it(tb):
    writer = store(tb, "holding", dataset="chain.step1")[0]
    reader = store(tb, "assigned", inputs=1, input_dataset="chain.step1", dispatch="chain.step1")[0]
    assert run_closer(tb, tb.settings, {"chain.step1": "generic"}) == {}  # outputs still unknown
    files = [{"row_ID": f.row_ID, "status": "ready"} for f in job(tb, writer).Files]
    assert tb.finalise_jobs([{"PandaID": writer, "attemptNr": 1, "status": "finished", "values": {},
                              "files": files}], ["holding"]) == [writer]
    assert run_closer(tb, tb.settings, {"chain.step1": "generic"}) == {"chain.step1": "closed"}
    assert status_of(tb, reader) == "activated"
