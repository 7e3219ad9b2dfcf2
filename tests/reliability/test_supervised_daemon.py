"""``pandasrv serve`` keeps its daemon master running: kill -9 of the master, and reported jobs still finish."""

from __future__ import annotations

import json
import os
import signal
import uuid

import psutil

from tests.daemon.helpers import wait_for
from tests.web.conftest import fresh_database, start_server
from tests.web.helpers import make_job, pilot_call, submit, wait_status


def _masters(server_pid: int) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(server_pid).children():
        try:
            if "pandasrv.daemon.master" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def file_report(lfn: str) -> str:
    """The pilot's file report for one file, complete enough for the Adder to finish the job."""
    return json.dumps({lfn: {"guid": str(uuid.uuid4()), "fsize": 1, "adler32": "0a0b0c0d"}})


def _report_finished(url: str, site: str, n: int) -> list[int]:
    done = []
    for _ in range(n):
        job = pilot_call(url, "getJob", {"siteName": site, "prodSourceLabel": "user", "node": "wn1"})
        panda_id = int(job["PandaID"])
        for state in ("running", "finished"):
            reply = pilot_call(url, "updateJob", {"jobId": str(panda_id), "state": state, "attemptNr": job["attemptNr"],
                                                  "xml": file_report(job["logFile"])})
            assert reply["StatusCode"] == "0", reply
        done.append(panda_id)
    return done


def test_a_killed_daemon_master_is_restarted_and_reported_jobs_finish(test_databases, tmp_path, backend="sqlite"):
    daemon = {"n_proc": 1, "scripts": {"add_main": {"period": 240, "loop": True, "arguments": ["100", "0.5"]}}}
    with fresh_database(test_databases, backend, tmp_path) as db_url, \
            start_server(db_url, backend, tmp_path, {"PANDASRV_DAEMON": json.dumps(daemon)}, daemon=True, workers=1,
                         threads=2) as running:
        site = running.add_queue()
        ids = submit(running.url, [make_job(site, f"s{i}") for i in range(6)])
        wait_status(running.tb, ids, "activated")
        pid = running.process.pid
        assert wait_for(lambda: len(_masters(pid)) == 1, 30)
        for _ in range(2):  # the second kill comes right after a restart: backoff, still restarted
            (first,) = _masters(pid)
            os.kill(first.pid, signal.SIGKILL)
            gone = ([], [first.pid])
            assert wait_for(lambda gone=gone: [m.pid for m in _masters(pid)] not in gone, 30), running.log()
            finished = _report_finished(running.url, site, 3)
            wait_status(running.tb, finished, "finished", timeout=60)
        log = running.log()
        assert log.count("daemon master died") == 2 and log.count("daemon master restarted") == 2, log
