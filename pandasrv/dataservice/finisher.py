"""The Finisher: transferring jobs whose outputs have arrived (or failed to) are finalised.

It does not finalise them itself: it writes a job output report, exactly as the pilot's final heartbeat
does, and the Adder takes it from there — one path to a final state.
"""

from __future__ import annotations

import logging

from pandasrv.config import Settings
from pandasrv.dataservice.plugins import Plugins
from pandasrv.taskbuffer.store import Store

log = logging.getLogger("pandasrv.dataservice.finisher")


def run_finisher(task_buffer: Store, settings: Settings, batch_size: int = 1000) -> dict[int, str]:
    """One pass over transferring jobs; returns {PandaID: reported status}."""
    plugins = Plugins("finisher", task_buffer, settings)
    reported: dict[int, str] = {}
    for job in task_buffer.jobs_in_status("transferring", limit=batch_size):
        status = plugins.for_vo(job.VO).decide(job)
        if status is None:
            continue
        task_buffer.insert_output_report(job.PandaID, job.attemptNr, job.prodSourceLabel, status, "")
        reported[job.PandaID] = status
    if reported:
        log.info("finisher: %d transferring jobs reported for the Adder", len(reported))
    return reported
