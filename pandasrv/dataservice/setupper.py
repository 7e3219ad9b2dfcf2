"""The Setupper: prepares newly submitted jobs (GUIDs for their outputs) and activates or assigns them.

``run_setupper`` does the work. ``start_setupper`` is what the submit path calls: it hands the PandaIDs to a
helper process and returns at once (the seed's asynchronous request: the reply does not wait). The jobs
themselves travel through the database only; the helper receives nothing but their IDs.

The helper is one long-lived child per web process, started on first use, with its own TaskBuffer: a
submit then costs one pipe write, where a fresh process per request would pay interpreter start-up and a
new database session every time. If the helper is gone it is restarted; jobs it never saw stay ``defined``
and are picked up by ``dataset_manager`` (``recover_defined``).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import subprocess
import sys
import threading
from typing import Any, Sequence

from pandasrv.config import Settings
from pandasrv.dataservice.plugins import Plugins

log = logging.getLogger("pandasrv.dataservice.setupper")


def run_setupper(task_buffer: Any, panda_ids: Sequence[int], settings: Settings | None = None) -> dict[str, list[int]]:
    """Set up the ``defined`` jobs among ``panda_ids``; returns {"activated": [...], "assigned": [...]}."""
    settings = settings or task_buffer.settings
    jobs = [job for job in task_buffer.peek_jobs(list(panda_ids), with_files=True, archived=False)
            if job is not None and job.jobStatus == "defined"]
    plugins = Plugins("setupper", task_buffer, settings)
    by_vo: dict[str | None, list[Any]] = {}
    for job in jobs:
        by_vo.setdefault(job.VO, []).append(job)
    done: dict[str, list[int]] = {"activated": [], "assigned": []}
    for vo, group in by_vo.items():
        plan = plugins.for_vo(vo).setup(group)
        if plan["guids"]:
            task_buffer.set_file_guids(plan["guids"])
        for status, key in (("activated", "activate"), ("assigned", "assign")):
            if plan[key]:
                done[status] += task_buffer.set_job_status(plan[key], status, expected=["defined"])
    return done


def recover_defined(task_buffer: Any, settings: Settings, older_than: float, batch_size: int = 1000) -> dict[str, list[int]]:
    """Set up jobs left ``defined`` for longer than ``older_than`` seconds (their helper died, or none ran)."""
    before = _dt.datetime.now(_dt.UTC).replace(tzinfo=None) - _dt.timedelta(seconds=older_than)
    jobs = task_buffer.jobs_in_status("defined", modified_before=before, limit=batch_size)
    return run_setupper(task_buffer, [job.PandaID for job in jobs], settings)


class _Helper:
    """The per-process helper child and the pipe that feeds it."""

    lock = threading.Lock()
    process: subprocess.Popen | None = None
    owner_pid = 0
    settings_json = ""

    @classmethod
    def send(cls, settings: Settings, panda_ids: list[int]) -> None:
        line = (json.dumps(panda_ids) + "\n").encode()
        with cls.lock:
            for _ in range(2):
                process = cls._running(settings)
                try:
                    assert process.stdin is not None
                    process.stdin.write(line)
                    process.stdin.flush()
                    return
                except (BrokenPipeError, OSError):
                    cls.process = None
            log.error("setupper helper unavailable; %d jobs stay defined until recovered", len(panda_ids))

    @classmethod
    def _running(cls, settings: Settings) -> subprocess.Popen:
        # After a fork (gunicorn workers) the inherited handle belongs to the parent: start our own.
        settings_json = settings.model_dump_json()
        if cls.process is not None and cls.owner_pid == os.getpid() and cls.settings_json != settings_json:
            cls.process.stdin.close()  # type: ignore[union-attr]  # the old helper ends at end of input
            cls.process = None
        if cls.process is None or cls.owner_pid != os.getpid() or cls.process.poll() is not None:
            cls.process = subprocess.Popen([sys.executable, "-m", "pandasrv.dataservice.setupper"],
                                           stdin=subprocess.PIPE, close_fds=True)
            cls.owner_pid, cls.settings_json = os.getpid(), settings_json
            assert cls.process.stdin is not None
            cls.process.stdin.write((settings_json + "\n").encode())
        return cls.process


def stop_setupper(timeout: float = 10.0) -> None:
    """End this process's helper after it has set up what it was given, so a caller that drops its database
    afterwards (``bench/daemon_scripts.py``) leaves no session behind."""
    with _Helper.lock:
        process, _Helper.process = _Helper.process, None
        if process is None or _Helper.owner_pid != os.getpid():
            return
        try:
            process.stdin.close()  # type: ignore[union-attr]
            process.wait(timeout)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()


def start_setupper(settings: Settings, panda_ids: Sequence[int]) -> None:
    """Hand ``panda_ids`` to this process's Setupper helper and return without waiting for it."""
    if panda_ids:
        _Helper.send(settings, [int(i) for i in panda_ids])


def _helper_main() -> None:
    """The helper child: settings on the first line of stdin, then one JSON list of PandaIDs per line."""
    from pandasrv.taskbuffer.task_buffer import TaskBuffer

    settings = Settings.model_validate_json(sys.stdin.readline())
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    task_buffer = TaskBuffer(settings)
    try:
        for line in sys.stdin:
            try:
                run_setupper(task_buffer, json.loads(line), settings)
            except Exception:
                log.exception("setupper failed for %s; the jobs stay defined until recovered", line.strip()[:200])
    finally:
        task_buffer.close()


if __name__ == "__main__":
    _helper_main()
