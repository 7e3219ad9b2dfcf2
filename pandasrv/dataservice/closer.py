"""The Closer: after jobs are finalised, close their output datasets once nothing in them is on the way.

A closed dataset may be another job's input, so closing it starts the Activator for it (PanDA's chain).
"""

from __future__ import annotations

import logging

from pandasrv.config import Settings
from pandasrv.dataservice.activator import activate_dataset
from pandasrv.dataservice.plugins import Plugins
from pandasrv.taskbuffer.store import Store

log = logging.getLogger("pandasrv.dataservice.closer")


def run_closer(task_buffer: Store, settings: Settings, datasets: dict[str, str | None]) -> dict[str, str]:
    """Close what can be closed among ``datasets`` (name -> VO of the job that wrote it); returns new statuses."""
    if not datasets:
        return {}
    plugins = Plugins("closer", task_buffer, settings)
    closed: dict[str, str] = {}
    for name, states in task_buffer.dataset_file_states(sorted(datasets)).items():
        status = plugins.for_vo(datasets[name]).close(name, states)
        if status is None:
            continue
        task_buffer.set_dataset_status(name, "output", status)
        closed[name] = status
        activated = activate_dataset(task_buffer, settings, name)
        log.info("dataset %s %s; %d waiting jobs activated", name, status, len(activated))
    return closed
