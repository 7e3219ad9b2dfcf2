"""Each daemon run that was not skipped leaves its last start, end, result and error text in daemon_runs."""

from __future__ import annotations

import socket

from pandasrv.daemon.schedule import load_schedule
from pandasrv.daemon.worker import ScriptRunner
from pandasrv.taskbuffer.task_buffer import TaskBuffer
from tests.daemon.helpers import daemon_settings, probe, records


def test_runs_are_recorded_with_result_and_error(db_url, tmp_path):
    record = tmp_path / "calls.jsonl"
    settings = daemon_settings(db_url, {"good": probe(record, "sleep", 0.05, period=60),
                                        "broken": probe(record, "fail", period=60),
                                        "exclusive": probe(record, "sleep", 0.0, "sync", period=60, sync=True)})
    schedule = load_schedule(settings)
    tb = TaskBuffer(settings)
    try:
        runner = ScriptRunner(tb, settings, schedule)
        assert runner.run(schedule["good"])[0] == "ok"
        assert runner.run(schedule["broken"])[0] == "error"
        assert tb.acquire_lease(schedule["exclusive"].lease_component, "another-machine", 600)
        assert runner.run(schedule["exclusive"])[0] == "skipped"
        assert runner.run(schedule["broken"])[0] == "error"
        runs = {run["script"]: run for run in tb.daemon_runs()}
    finally:
        tb.close()
    assert set(runs) == {"good", "broken"} and len(records(record, "fail")) == 2
    assert runs["good"]["result"] == "ok" and runs["good"]["message"] is None
    assert runs["good"]["host"] == socket.gethostname()
    assert (runs["good"]["endTime"] - runs["good"]["startTime"]).total_seconds() >= 0.05
    assert runs["broken"]["result"] == "error" and runs["broken"]["message"] == "RuntimeError: this script always fails"
