"""The Activator: assigned jobs whose inputs became available are activated (handed to getJob).

It runs periodically from ``dataset_manager`` over all assigned jobs, and on demand for one dataset that just
became complete (the Closer's chain: a job's output dataset is the next job's input).
"""

from __future__ import annotations

import logging

from pandasrv.config import Settings
from pandasrv.dataservice.plugins import Plugins
from pandasrv.taskbuffer.job_spec import JobSpec
from pandasrv.taskbuffer.store import Store

log = logging.getLogger("pandasrv.dataservice.activator")


def activate_ready(task_buffer: Store, settings: Settings, jobs: list[JobSpec]) -> list[int]:
    """Activate the assigned jobs among ``jobs`` that their VO's plugin finds ready."""
    plugins = Plugins("activator", task_buffer, settings)
    ready = [job.PandaID for job in jobs if job.jobStatus == "assigned" and plugins.for_vo(job.VO).ready(job)]
    if not ready:
        return []
    return task_buffer.set_job_status(ready, "activated", expected=["assigned"])


def run_activator(task_buffer: Store, settings: Settings, batch_size: int = 1000) -> list[int]:
    """One batch of assigned jobs (oldest first), as PanDA's datasetManager does each period."""
    activated = activate_ready(task_buffer, settings, task_buffer.jobs_in_status("assigned", limit=batch_size))
    if activated:
        log.info("activated %d assigned jobs", len(activated))
    return activated


def activate_dataset(task_buffer: Store, settings: Settings, dataset: str) -> list[int]:
    """A dataset became complete: its files are ready as inputs, and the jobs waiting for them may run."""
    panda_ids = task_buffer.mark_inputs_ready(dataset)
    jobs = [job for job in task_buffer.peek_jobs(panda_ids, with_files=True, archived=False) if job is not None]
    return activate_ready(task_buffer, settings, jobs)
