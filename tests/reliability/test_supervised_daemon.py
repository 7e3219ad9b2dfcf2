"""``pandasrv serve`` and ``pandasrv apache`` keep their daemon master running: kill -9 of the master, and
reported jobs still finish."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import psutil
import pytest

from pandasrv.config import load_settings
from pandasrv.taskbuffer.task_buffer import TaskBuffer
from tests.daemon.helpers import live_children
from tests.deploy.conftest import start_apache
from tests.waiting import wait_for
from tests.web.conftest import fresh_database, start_server
from tests.web.helpers import make_job, pilot_call, submit, wait_status


def _masters(server_pid: int) -> list[psutil.Process]:
    return live_children(server_pid, "pandasrv.daemon.master")


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


@dataclass
class Front:
    """One running front end with its daemon: where it answers, its pid, its log, a TaskBuffer on its database."""

    url: str
    pid: int
    log: Callable[[], str]
    tb: TaskBuffer

    def add_queue(self) -> str:
        name = f"Q_{uuid.uuid4().hex[:8].upper()}"
        self.tb.add_queue(name, name, "online", {"astorages": {a: ["LOCAL_DISK"] for a in ("pr", "pw", "pl")}})
        return name


@contextlib.contextmanager
def front_with_daemon(kind: str, test_databases: Any, tmp_path: Path, daemon: dict[str, Any]) -> Iterator[Front]:
    """``pandasrv serve`` on SQLite or ``pandasrv apache`` on PostgreSQL (its production layout), daemon on."""
    backend = "sqlite" if kind == "serve" else "postgresql"
    with fresh_database(test_databases, backend, tmp_path) as db_url, contextlib.ExitStack() as stack:
        tb = TaskBuffer(load_settings(db_url=db_url, db_bridge=False, db_connections=1))
        stack.callback(tb.close)
        if kind == "serve":
            running = stack.enter_context(start_server(db_url, backend, tmp_path, {"PANDASRV_DAEMON": json.dumps(daemon)},
                                                       daemon=True, workers=1, threads=2))
        else:
            running = stack.enter_context(start_apache(db_url, tmp_path, extra=[], daemon=json.dumps(daemon),
                                                       log_level="INFO"))
        yield Front(running.url, running.process.pid, running.log, tb)


@pytest.mark.parametrize("kind", ["serve", "apache"])
def test_a_killed_daemon_master_is_restarted_and_reported_jobs_finish(test_databases, tmp_path, kind):
    daemon = {"n_proc": 1, "scripts": {"add_main": {"period": 240, "loop": True, "arguments": ["100", "0.5"]}}}
    with front_with_daemon(kind, test_databases, tmp_path, daemon) as running:
        site = running.add_queue()
        ids = submit(running.url, [make_job(site, f"s{i}") for i in range(6)])
        wait_status(running.tb, ids, "activated")
        pid = running.pid
        assert wait_for(lambda: len(_masters(pid)) == 1, 30), running.log()
        for _ in range(2):  # the second kill comes right after a restart: backoff, still restarted
            (first,) = _masters(pid)
            os.kill(first.pid, signal.SIGKILL)
            gone = ([], [first.pid])
            assert wait_for(lambda gone=gone: [m.pid for m in _masters(pid)] not in gone, 30), running.log()
            finished = _report_finished(running.url, site, 3)
            wait_status(running.tb, finished, "finished", timeout=60)
        log = running.log()
        assert log.count("daemon master died") == 2 and log.count("daemon master restarted") == 2, log
