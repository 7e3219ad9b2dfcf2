"""The generic plugins: a site without a data management system, where files are where the pilot put them.

They follow PanDA's "dummy" plugins: the Setupper only fills in missing GUIDs and activates jobs whose
inputs need no transfer; the Adder accepts the pilot's outputs as final; the Activator and the Finisher
read file statuses; the Closer closes a dataset once none of its files is still on the way.
"""

from __future__ import annotations

import uuid
from typing import Any

from pandasrv.config import Settings
from pandasrv.taskbuffer.job_spec import JobSpec
from pandasrv.taskbuffer.store import Store

READY_INPUT = frozenset({"ready", "cached"})
OPEN_FILE = frozenset({"unknown", "transferring", "pending", "defined"})


class GenericPlugin:
    def __init__(self, task_buffer: Store, settings: Settings) -> None:
        self.task_buffer = task_buffer
        self.settings = settings


def inputs_ready(job: JobSpec) -> bool:
    return all(f.status in READY_INPUT for f in job.Files if f.type == "input")


class SetupperPlugin(GenericPlugin):
    def setup(self, jobs: list[JobSpec]) -> dict[str, Any]:
        """{"activate": [PandaID], "assign": [PandaID], "guids": {row_ID: GUID}} for defined jobs."""
        guids = {f.row_ID: str(uuid.uuid4()) for job in jobs for f in job.Files
                 if f.type in ("output", "log") and not f.GUID}
        activate: list[int] = []
        assign: list[int] = []
        for job in jobs:
            needs_transfer = job.dispatchDBlock and not inputs_ready(job)
            (assign if needs_transfer else activate).append(job.PandaID)
        return {"activate": activate, "assign": assign, "guids": guids}


class ActivatorPlugin(GenericPlugin):
    def ready(self, job: JobSpec) -> bool:
        """An assigned job may run once every input file is ready or cached at its site."""
        return inputs_ready(job)


class AdderPlugin(GenericPlugin):
    def process(self, job: JobSpec, report: dict[str, dict[str, Any]]) -> tuple[str, str | None]:
        """(final status, diag): outputs written by the pilot are already at their destination."""
        return "finished", None


class FinisherPlugin(GenericPlugin):
    def decide(self, job: JobSpec) -> str | None:
        """finished once all outputs are ready, failed if one failed, None while transfers go on."""
        outputs = [f for f in job.Files if f.type in ("output", "log")]
        if any(f.status == "failed" for f in outputs):
            return "failed"
        if all(f.status == "ready" for f in outputs):
            return "finished"
        return None


class CloserPlugin(GenericPlugin):
    def close(self, dataset: str, file_states: dict[str, int]) -> str | None:
        """The dataset's new status once no file is still on the way, else None."""
        if any(status in OPEN_FILE for status in file_states):
            return None
        return "closed"
