"""The small pilot's pieces that need no server: reply parsing, the file report, the payload group kill."""

from __future__ import annotations

import json
import tarfile
import zlib
from pathlib import Path

from pandasrv.pilot.payload import Payload, prepare_command
from pandasrv.pilot.protocol import encode_body, parse_reply, status_code
from pandasrv.pilot.stageout import MissingOutput, Storage, adler32, stage_out
from tests.waiting import wait_for

JOB = {"PandaID": 4242, "outFiles": "a.root,b.txt,job.log.tgz", "logFile": "job.log.tgz",
       "logGUID": "0c3e2f1a-8d4a-4e0b-9a55-1b2c3d4e5f60", "ddmEndPointOut": "DISK_A,DISK_B,DISK_LOG"}


def test_replies_are_parsed_like_the_real_pilot():
    assert parse_reply('{"StatusCode": 0, "PandaID": 7}') == {"StatusCode": 0, "PandaID": 7}
    assert parse_reply("StatusCode=0&command=tobekilled") == {"StatusCode": "0", "command": "tobekilled"}
    assert parse_reply("Succeeded") == {"StatusCode": "0"}
    assert status_code({"StatusCode": "20"}) == 20 and status_code({}) == -1
    assert json.loads(__import__("gzip").decompress(encode_body({"a": 1}))) == {"a": 1}


def test_stage_out_reports_every_output_and_the_log(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "a.root").write_bytes(b"alpha" * 100)
    (work / "b.txt").write_text("bravo")
    storage = Storage(tmp_path / "se")
    stage_out(JOB, work, storage, outputs=True)

    assert set(storage.report) == {"a.root", "b.txt", "job.log.tgz"}
    staged = tmp_path / "se" / "4242" / "a.root"
    entry = storage.report["a.root"]
    assert entry["fsize"] == 500 and entry["adler32"] == f"{zlib.adler32(b'alpha' * 100):08x}"
    assert entry["surl"] == f"file://localhost{staged.resolve()}" and entry["endpoint"] == "DISK_A"
    log_entry = storage.report["job.log.tgz"]
    assert log_entry["guid"] == JOB["logGUID"] and log_entry["endpoint"] == "DISK_LOG"
    tarball = tmp_path / "se" / "4242" / "job.log.tgz"
    assert log_entry["adler32"] == adler32(tarball)
    with tarfile.open(tarball) as tar:
        assert tar.getnames()[0] == "job.log"


def test_missing_output_is_an_error(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "a.root").write_text("only one")
    try:
        stage_out(JOB, work, Storage(tmp_path / "se"), outputs=True)
    except MissingOutput as exc:
        assert "b.txt" in str(exc)
    else:
        raise AssertionError("a missing output must fail the stage-out")


def test_url_transformation_is_downloaded(tmp_path):
    job = {"transformation": "http://host/cache/run.sh", "jobPars": "x y"}
    command = prepare_command(job, tmp_path, lambda url: b"#!/bin/sh\necho $*\n")
    assert command == "./run.sh x y"
    assert (tmp_path / "run.sh").stat().st_mode & 0o100
    assert prepare_command({"transformation": "/bin/echo", "jobPars": "NULL"}, tmp_path, None) == "/bin/echo"


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is still running (a zombie does nothing more)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError):
            continue
        if int(group) == pgid and state != "Z":
            return True
    return False


def test_kill_stops_the_whole_process_group(tmp_path):
    marker, child = tmp_path / "survivor", tmp_path / "child.pid"
    payload = Payload(f"(sleep 3; touch {marker}) & echo $! > {child}; sleep 60", tmp_path, {"PATH": "/usr/bin:/bin"})
    assert wait_for(lambda: child.exists() and child.read_text().strip(), 30)  # the would-be survivor runs
    assert payload.wait(0.1) is None
    payload.kill(grace=2)
    payload.close()
    # nothing of the group is left to touch the marker later, so there is no need to wait for its sleep
    assert wait_for(lambda: not group_alive(payload.process.pid), 30)
    assert not marker.exists()
