"""``pandasrv pilot`` against a real server: payload, heartbeats, kill, stage-out and the file report.

Each scenario is judged from the database: the final heartbeat leaves the job ``holding`` with a job
output report; then the Adder runs and the job must end in ``jobs_archived``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import httpx

from pandasrv.pilot.runner import Pilot, PilotOptions
from pandasrv.pilot.stageout import adler32
from pandasrv.submit import JobRequest, submit_jobs
from tests.realclients import output_reports, peek_job, run_adder, served_calls, wait_activated
from tests.waiting import wait_for

WRITER = """#!/bin/sh
echo "payload args: $*"
echo "$PANDA_ID $1" > out.txt
"""


def submit(server, queue: str, tmp_path: Path, script: str, arguments: str = "", outputs: tuple[str, ...] = ()) -> int:
    path = tmp_path / f"payload_{time.monotonic_ns()}.sh"
    path.write_text(script)
    (panda_id,) = submit_jobs(server.url, JobRequest(site=queue, transformation="", arguments=arguments,
                                                     outputs=list(outputs)), 1, upload=str(path))
    wait_activated(server.db_url, [panda_id])
    return panda_id


def options(server, queue: str, tmp_path: Path, **extra) -> PilotOptions:
    return PilotOptions(url=server.url, site=queue, workdir=tmp_path / "work",
                        stage_dir=tmp_path / "storage", **extra)


def single_report(server, panda_id: int) -> tuple[str, dict]:
    (row,) = output_reports(server.db_url, panda_id)
    return row["jobStatus"], json.loads(row["data"])


def test_payload_output_is_staged_and_reported(server, fresh_queue, tmp_path):
    panda_id = submit(server, fresh_queue, tmp_path, WRITER, arguments="first-arg", outputs=("out.txt",))
    proc = subprocess.run([sys.executable, "-m", "pandasrv.cli", "pilot", "--url", server.url, "--site", fresh_queue,
                           "--workdir", str(tmp_path / "work"), "--stage-dir", str(tmp_path / "storage")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"ran 1 job(s): {panda_id}" in proc.stdout

    job = peek_job(server.db_url, panda_id)
    assert job.jobStatus == "holding"
    assert job.transExitCode in ("0", 0) and job.pilotErrorCode == 0
    status, report = single_report(server, panda_id)
    assert status == "finished"
    log_lfn = next(f.lfn for f in job.Files if f.type == "log")
    assert set(report) == {"out.txt", log_lfn}

    staged = tmp_path / "storage" / str(panda_id) / "out.txt"
    assert staged.read_text() == f"{panda_id} first-arg\n"
    entry = report["out.txt"]
    assert entry["fsize"] == staged.stat().st_size and entry["adler32"] == adler32(staged)
    assert entry["surl"] == f"file://localhost{staged.resolve()}"

    log_entry = report[log_lfn]
    cached = httpx.get(log_entry["surl"])
    assert cached.status_code == 200 and len(cached.content) == log_entry["fsize"]
    tarball = tmp_path / "log.tgz"
    tarball.write_bytes(cached.content)
    assert log_entry["adler32"] == adler32(tarball)
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    assert any(name.endswith("payload.stdout") for name in names)

    run_adder(server)
    job = peek_job(server.db_url, panda_id)
    assert job.jobStatus == "finished"
    assert output_reports(server.db_url, panda_id) == []
    files = {f.lfn: f for f in job.Files}
    assert files["out.txt"].GUID == entry["guid"] and files["out.txt"].fsize == entry["fsize"]
    assert files[log_lfn].GUID == log_entry["guid"]


def test_failing_payload_reports_failed(server, fresh_queue, tmp_path):
    panda_id = submit(server, fresh_queue, tmp_path, "#!/bin/sh\necho broken >&2\nexit 3\n", outputs=("never.txt",))
    pilot = Pilot(options(server, fresh_queue, tmp_path))
    outcome = pilot.run_job(pilot.get_job())
    assert outcome.state == "failed" and outcome.trans_exit_code == 3

    job = peek_job(server.db_url, panda_id)
    assert job.jobStatus == "holding" and job.exeErrorCode == 3
    status, report = single_report(server, panda_id)
    assert status == "failed"
    assert list(report) == [next(f.lfn for f in job.Files if f.type == "log")]
    run_adder(server)
    assert peek_job(server.db_url, panda_id).jobStatus == "failed"


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_server_kill_stops_the_payload(server, fresh_queue, tmp_path):
    child_pid = tmp_path / "child.pid"
    panda_id = submit(server, fresh_queue, tmp_path, f"#!/bin/sh\nsleep 300 &\necho $! > {child_pid}\nwait\n")
    pilot = Pilot(options(server, fresh_queue, tmp_path, heartbeat=0.5))
    job = pilot.get_job()
    assert int(job["PandaID"]) == panda_id
    result = {}
    runner = threading.Thread(target=lambda: result.update(outcome=pilot.run_job(job)))
    runner.start()
    assert wait_for(lambda: peek_job(server.db_url, panda_id).jobStatus == "running" and child_pid.exists(), 30,
                    step=0.2), "the pilot never reported running"
    pid = int(child_pid.read_text())
    assert alive(pid)

    killed = httpx.post(f"{server.url}/api/v1/job/kill", json={"job_ids": [panda_id]}).json()
    assert killed["data"] == [True]
    runner.join(60)
    assert not runner.is_alive()
    assert result["outcome"].pilot_error[0] == 1144
    assert not alive(pid), "the payload's child survived the kill"

    job = peek_job(server.db_url, panda_id)
    assert job.jobStatus == "holding"
    assert job.pilotErrorCode == 1144 and job.pilotErrorDiag == "This job was killed by panda server"
    status, report = single_report(server, panda_id)
    assert status == "failed" and len(report) == 1
    run_adder(server)
    assert peek_job(server.db_url, panda_id).jobStatus == "cancelled"


def test_no_job_means_no_work(server, fresh_queue, tmp_path):
    assert Pilot(options(server, fresh_queue, tmp_path)).run() == []


def test_submit_reuses_an_uploaded_script(server, fresh_queue, tmp_path):
    script = tmp_path / "same.sh"
    script.write_text(WRITER)
    first = submit_jobs(server.url, JobRequest(site=fresh_queue, transformation=""), 1, upload=str(script))
    second = submit_jobs(server.url, JobRequest(site=fresh_queue, transformation=""), 2, upload=str(script))
    trfs = {peek_job(server.db_url, pid).transformation for pid in first + second}
    assert len(trfs) == 1 and httpx.get(trfs.pop()).text == WRITER
    script.write_text(WRITER + "exit 0\n")
    (changed,) = submit_jobs(server.url, JobRequest(site=fresh_queue, transformation=""), 1, upload=str(script))
    assert httpx.get(peek_job(server.db_url, changed).transformation).text == WRITER + "exit 0\n"


def test_pilot_waits_for_a_job_submitted_after_it_started(server, fresh_queue, tmp_path):
    done: list[int] = []
    pilot = threading.Thread(target=lambda: done.extend(
        Pilot(options(server, fresh_queue, tmp_path, wait=60.0, poll=0.5)).run()))
    log_before = len(server.log())
    pilot.start()
    # the pilot has asked once and found nothing (the tests of a session run one at a time)
    assert wait_for(lambda: ("panda", "getJob", 200) in served_calls(server.log()[log_before:]), 30)
    script = tmp_path / "late.sh"
    script.write_text(WRITER)
    (panda_id,) = submit_jobs(server.url, JobRequest(site=fresh_queue, transformation=""), 1, upload=str(script))
    pilot.join(timeout=90)
    assert not pilot.is_alive() and done == [panda_id]
    assert peek_job(server.db_url, panda_id).jobStatus == "holding"


def test_pilot_gives_up_after_its_wait(server, fresh_queue, tmp_path):
    started = time.monotonic()
    assert Pilot(options(server, fresh_queue, tmp_path, wait=1.0, poll=0.4)).run() == []
    assert time.monotonic() - started >= 0.8


def test_status_command_shows_live_and_unknown_jobs(server, fresh_queue, tmp_path):
    panda_id = submit(server, fresh_queue, tmp_path, WRITER)
    proc = subprocess.run([sys.executable, "-m", "pandasrv.cli", "status", "--url", server.url, str(panda_id),
                           str(panda_id + 10**9)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr  # one of the jobs is not found
    assert proc.stdout.splitlines() == [f"{panda_id}\tactivated\t{fresh_queue}", f"{panda_id + 10**9}\tnot found"]


def test_a_vanished_pilot_ends_failed_with_lost_heartbeat(server, fresh_queue, tmp_path):
    """getJob, one ``running`` heartbeat, then silence: the Watcher (copy_archive) fails the job, code 100."""
    import datetime as dt

    from pandasrv.config import load_settings
    from pandasrv.dataservice.watcher import run_watcher
    from pandasrv.taskbuffer.task_buffer import TaskBuffer

    panda_id = submit(server, fresh_queue, tmp_path, WRITER)
    pilot = Pilot(options(server, fresh_queue, tmp_path))
    job = pilot.get_job()
    reply = pilot.dispatcher.call("updateJob", {"jobId": str(panda_id), "state": "running", "attemptNr": "0"})
    assert int(job["PandaID"]) == panda_id and reply["command"] == "NULL"

    settings = load_settings(db_url=server.db_url)
    task_buffer = TaskBuffer(settings)
    try:
        assert run_watcher(task_buffer, settings) == {}
        later = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=settings.watcher.heartbeat + 60)
        moved = run_watcher(task_buffer, settings, now=later)
    finally:
        task_buffer.close()
    assert [panda_id] in moved.values()
    job = peek_job(server.db_url, panda_id)
    assert job.jobStatus == "failed" and job.jobDispatcherErrorCode == 100
    assert "lost heartbeat" in job.jobDispatcherErrorDiag
