"""The real PanDA pilot (``panda-pilot`` 3.7.0.36 from PyPI), unmodified, against our server.

What the pilot does over HTTP, all to our server on 127.0.0.1: ``GET /cache/schedconfig/<queue>.all.json``
(its queuedata; checked in the pilot's log, the cache has no access log), then, checked in the server's
access log, ``POST /server/panda/getJob`` (the job, claimed by the server's normal dispatcher) followed only
by ``POST /server/panda/updateJob`` calls: ``starting``, ``running`` and ``finished`` (the last with the log
file's report), checked in the job's recorded states. Nothing else: no Harvester call, no file fetched (the
job's transformation points to a port where nothing listens).

Between getJob and the final update the pilot runs the job itself: the payload script with the job's
arguments, then its log tarball staged out with the ``mv`` copytool. That version of the pilot downloads
payload scripts only from its built-in hosts, so the script comes from ``$HARVESTER_WORKDIR``
(``tests.realclients.place_job_script``), which the generic pilot copies instead of downloading; that
variable changes nothing else (see ``run_real_pilot``).

The test judges the run from the server side: the recorded states, the job ``holding`` with the pilot's
report stored (the log file, whose size and checksum match the staged file, holding the payload's output),
then ``finished`` after the Adder.

A failed payload would cost two more minutes per run: this pilot version then waits 115 s for a stage-out
it has already done before its final update. The failed-job wire form is covered by tests/web/test_pilot_wire.py.
A run takes about 30 s; it runs on every backend.
"""

from __future__ import annotations

import json
import tarfile
import uuid

import httpx
import pytest

from pandasrv.pilot.stageout import adler32
from pandasrv.submit import JobRequest, submit_jobs
from tests.realclients import (
    can_unshare,
    output_reports,
    peek_job,
    place_job_script,
    run_adder,
    run_real_pilot,
    served_calls,
    skip_or_fail,
    status_history,
    wait_activated,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SCRIPT = "#!/bin/sh\necho \"payload says: $*\"\n"
ARGUMENTS = "hello from the real pilot"


def test_real_pilot_runs_a_job(server, fresh_queue, tmp_path):
    if not can_unshare():
        skip_or_fail("unshare --pid is not permitted here; the real pilot must not run outside a PID namespace")
    job_scripts = tmp_path / "harvester"
    transformation = place_job_script(job_scripts, SCRIPT)
    (panda_id,) = submit_jobs(server.url, JobRequest(site=fresh_queue, transformation=transformation,
                                                     arguments=ARGUMENTS), 1)
    wait_activated(server.db_url, [panda_id])
    queuedata = httpx.get(f"{server.url}/cache/schedconfig/{fresh_queue}.all.json").json()
    assert queuedata.get("panda_resource") == fresh_queue, "getJob's siteName is the queue's panda_resource"

    log_before = len(server.log())
    proc = run_real_pilot(port=httpx.URL(server.url).port, queue=fresh_queue, queuedata=queuedata,
                          workdir=tmp_path / "pilot", job_scripts=job_scripts)
    pilot_log = (proc.stdout + proc.stderr)[-3000:]
    # the tests of a session run one at a time, so every request in this stretch of the log is the pilot's
    calls = served_calls(server.log()[log_before:])
    assert calls[:1] == [("panda", "getJob", 200)], (calls, pilot_log)
    assert len(calls) >= 4 and set(calls[1:]) == {("panda", "updateJob", 200)}, (calls, pilot_log)
    queuedata_url = f"{server.url}/cache/schedconfig/{fresh_queue}.all.json"
    assert f'saved data from "{queuedata_url}"' in proc.stdout + proc.stderr, pilot_log

    job = peek_job(server.db_url, panda_id)
    log_lfn = next(f.lfn for f in job.Files if f.type == "log")
    assert job.jobStatus == "holding", (job.jobStatus, job.pilotErrorCode, job.pilotErrorDiag, pilot_log)
    assert job.pilotErrorCode == 0 and job.transExitCode == "0", (job.pilotErrorDiag, pilot_log)
    assert job.pilotID and "3.7.0.36" in job.pilotID
    history = status_history(server.db_url, panda_id)
    assert history.index("sent") < history.index("starting") < history.index("running") < history.index("holding"), \
        history

    (row,) = output_reports(server.db_url, panda_id)
    assert row["jobStatus"] == "finished"
    report = json.loads(row["data"])
    assert list(report) == [log_lfn]
    entry = report[log_lfn]
    staged = tmp_path / "pilot" / "se"
    assert entry["surl"].startswith(f"file://localhost{staged}")
    # this pilot's mv copytool reports the storage path as surl but leaves the file in its PILOT_HOME
    staged_log = tmp_path / "pilot" / "home" / log_lfn
    assert entry["fsize"] == staged_log.stat().st_size and entry["adler32"] == adler32(staged_log)
    uuid.UUID(entry["guid"])
    with tarfile.open(staged_log) as tar:
        stdout = next(m for m in tar.getmembers() if m.name.endswith("payload.stdout"))
        assert f"payload says: {ARGUMENTS}" in tar.extractfile(stdout).read().decode()

    run_adder(server)
    job = peek_job(server.db_url, panda_id)
    assert job.jobStatus == "finished" and job.pilotErrorCode == 0
    log_file = next(f for f in job.Files if f.type == "log")
    assert (log_file.GUID, log_file.fsize) == (entry["guid"], entry["fsize"])
    assert output_reports(server.db_url, panda_id) == []
