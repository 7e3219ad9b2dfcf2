"""dataset_manager (sync): the Activator and the Finisher, plus recovery of jobs the Setupper never saw.

arguments: ``[batch_size, defined_grace_seconds]`` (defaults 1000 and 600).
"""

from __future__ import annotations

from pandasrv.config import Settings
from pandasrv.dataservice.activator import run_activator
from pandasrv.dataservice.finisher import run_finisher
from pandasrv.dataservice.setupper import recover_defined
from pandasrv.taskbuffer.store import Store


def main(task_buffer: Store, settings: Settings, arguments: list[str]) -> None:
    batch = int(arguments[0]) if arguments else 1000
    grace = float(arguments[1]) if len(arguments) > 1 else 600.0
    recover_defined(task_buffer, settings, grace, batch)
    run_activator(task_buffer, settings, batch)
    run_finisher(task_buffer, settings, batch)
