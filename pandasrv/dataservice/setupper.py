"""The Setupper: prepares newly submitted jobs (GUIDs for their outputs) and activates or assigns them.

``run_setupper`` does the work. Run as ``python -m pandasrv.dataservice.setupper`` this module is the
per-process helper child that ``pandasrv.logic.handover.start_setupper`` (the submit path's hand-over)
feeds with PandaIDs; jobs no helper ever saw stay ``defined`` and are picked up by ``dataset_manager``
(``recover_defined``).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import sys
from typing import Any, Sequence

from pandasrv.clock import utcnow
from pandasrv.config import Settings
from pandasrv.dataservice.plugins import Plugins
from pandasrv.taskbuffer.store import Store

log = logging.getLogger("pandasrv.dataservice.setupper")


def run_setupper(task_buffer: Store, panda_ids: Sequence[int], settings: Settings) -> dict[str, list[int]]:
    """Set up the ``defined`` jobs among ``panda_ids``; returns {"activated": [...], "assigned": [...]}."""
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


def recover_defined(task_buffer: Store, settings: Settings, older_than: float, batch_size: int = 1000) -> dict[str, list[int]]:
    """Set up jobs left ``defined`` for longer than ``older_than`` seconds (their helper died, or none ran)."""
    before = utcnow() - _dt.timedelta(seconds=older_than)
    jobs = task_buffer.jobs_in_status("defined", modified_before=before, limit=batch_size)
    return run_setupper(task_buffer, [job.PandaID for job in jobs], settings)


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
            sys.stdout.write("\n")  # confirmed: the parent need not hand this batch to a successor
            sys.stdout.flush()
    finally:
        task_buffer.close()


if __name__ == "__main__":
    _helper_main()
