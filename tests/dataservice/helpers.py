"""Jobs for the agent tests, built through the TaskBuffer and moved along the state machine."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from pandasrv.config import load_settings
from pandasrv.logic.heartbeat import Heartbeat
from pandasrv.taskbuffer.file_spec import FileSpec
from pandasrv.taskbuffer.job_spec import JobSpec
from pandasrv.taskbuffer.task_buffer import TaskBuffer

# The way from defined to each status, one legal transition at a time.
PATHS = {
    "defined": [], "assigned": ["assigned"], "pending": ["pending"], "waiting": ["waiting"],
    "activated": ["activated"], "sent": ["activated", "sent"], "starting": ["activated", "sent", "starting"],
    "running": ["activated", "sent", "running"], "holding": ["activated", "sent", "running", "holding"],
    "transferring": ["activated", "sent", "running", "transferring"],
}
PILOT_STEPS = ("starting", "running", "holding", "transferring")


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC).replace(tzinfo=None)


def task_buffer(db_url: str, **overrides: Any) -> TaskBuffer:
    return TaskBuffer(load_settings(db_url=db_url, db_bridge=False, **overrides))


def make_job(*, site: str = "SITE_A", label: str = "managed", inputs: int = 0, outputs: int = 1,
             dataset: str = "user.out", input_dataset: str = "data.in", dispatch: str | None = None,
             input_status: str | None = None, **values: Any) -> JobSpec:
    job = JobSpec(jobName="job", computingSite=site, prodSourceLabel=label, transformation="run.sh",
                  VO="generic", attemptNr=1, currentPriority=100, dispatchDBlock=dispatch, **values)
    for i in range(inputs):
        job.add_file(FileSpec(lfn=f"in.{i}", type="input", dataset=input_dataset, prodDBlock=input_dataset,
                              dispatchDBlock=dispatch, status=input_status, scope="data"))
    for i in range(outputs):
        job.add_file(FileSpec(lfn=f"out.$PANDAID.{i}", type="output", dataset=dataset, destinationDBlock=dataset,
                              scope="user"))
    job.add_file(FileSpec(lfn="log.$PANDAID.tgz", type="log", dataset=dataset, destinationDBlock=dataset,
                          scope="user"))
    return job


def store(tb: TaskBuffer, status: str, n: int = 1, **kwargs: Any) -> list[int]:
    """n new jobs brought to ``status``; returns their PandaIDs."""
    ids = tb.insert_jobs([make_job(**kwargs) for _ in range(n)])
    for step in PATHS[status]:
        if step in PILOT_STEPS:  # as a pilot would, so that startTime, endTime... are set
            assert all(tb.update_job(Heartbeat(i, step, {}))["result"] == "ok" for i in ids)
        else:
            assert tb.set_job_status(ids, step) == ids
    return ids


def status_of(tb: TaskBuffer, panda_id: int) -> str:
    return tb.get_job_status([panda_id])[panda_id][0]


def job(tb: TaskBuffer, panda_id: int) -> JobSpec:
    found = tb.peek_jobs([panda_id])[0]
    assert found is not None
    return found
