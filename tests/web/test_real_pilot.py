"""The real PanDA pilot (``panda-pilot`` 3.7.0.36 from PyPI), unmodified, against our server.

That version downloads payload scripts only from its built-in list of hosts, so against a local server
its payload step fails with pilot error 1149 after getJob and ``starting``; it then stages out its log
with the ``mv`` copytool and sends ``failed`` with a file report. The test judges the run from the
server side: the job's recorded states, ``holding`` with pilot error 1149 and the pilot's file report
stored (the log file, whose size and checksum match the staged file), then ``failed`` after the Adder.

A run takes about two minutes (the pilot waits for its threads at wrap-up); it runs on every backend.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from pandasrv.pilot.stageout import adler32
from pandasrv.submit import JobRequest, submit_jobs
from tests.realclients import (
    can_unshare,
    output_reports,
    peek_job,
    run_adder,
    run_real_pilot,
    skip_or_fail,
    status_history,
    wait_activated,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SCRIPT = "#!/bin/sh\necho \"payload says: $*\"\n"


def test_real_pilot_runs_a_job(server, fresh_queue, tmp_path):
    if not can_unshare():
        skip_or_fail("unshare --pid is not permitted here; the real pilot must not run outside a PID namespace")
    script = tmp_path / "realpilot_echo.sh"
    script.write_text(SCRIPT)
    (panda_id,) = submit_jobs(server.url, JobRequest(site=fresh_queue, transformation="",
                                                     arguments="hello from the real pilot"), 1, upload=str(script))
    wait_activated(server.db_url, [panda_id])
    queuedata = httpx.get(f"{server.url}/cache/schedconfig/{fresh_queue}.all.json").json()
    assert queuedata.get("panda_resource") == fresh_queue, "getJob's siteName is the queue's panda_resource"

    proc = run_real_pilot(port=httpx.URL(server.url).port, queue=fresh_queue, queuedata=queuedata,
                          workdir=tmp_path / "pilot")
    pilot_log = (proc.stdout + proc.stderr)[-3000:]

    job = peek_job(server.db_url, panda_id)
    log_lfn = next(f.lfn for f in job.Files if f.type == "log")
    assert job.jobStatus == "holding", (job.jobStatus, pilot_log)
    assert job.pilotErrorCode == 1149, (job.pilotErrorDiag, pilot_log)
    assert job.pilotID and "3.7.0.36" in job.pilotID
    history = status_history(server.db_url, panda_id)
    assert history.index("sent") < history.index("starting") < history.index("holding"), history

    (row,) = output_reports(server.db_url, panda_id)
    assert row["jobStatus"] == "failed"
    report = json.loads(row["data"])
    assert list(report) == [log_lfn]
    entry = report[log_lfn]
    staged = tmp_path / "pilot" / "se"
    assert entry["surl"].startswith(f"file://localhost{staged}")
    # this pilot's mv copytool reports the storage path as surl but leaves the file in its PILOT_HOME
    staged_log = tmp_path / "pilot" / "home" / log_lfn
    assert entry["fsize"] == staged_log.stat().st_size and entry["adler32"] == adler32(staged_log)
    uuid.UUID(entry["guid"])

    run_adder(server)
    job = peek_job(server.db_url, panda_id)
    assert job.jobStatus == "failed" and job.pilotErrorCode == 1149
    log_file = next(f for f in job.Files if f.type == "log")
    assert (log_file.GUID, log_file.fsize) == (entry["guid"], entry["fsize"])
    assert output_reports(server.db_url, panda_id) == []
