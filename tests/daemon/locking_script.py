"""A daemon script for the tests: locks every output report (as the Adder does), then fails.

arguments: ``[how, marker file]``. ``how`` is a name from ``pandasrv.taskbuffer.errors`` or ``RuntimeError``
(raised), ``hang`` (block, so that the run's timeout or a kill of the master ends it) or ``exit`` (the worker
process dies at once). The marker file, if given, is written once the reports are locked.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from pandasrv.taskbuffer import errors
from pandasrv.taskbuffer.owners import owner_token


def main(task_buffer: Any, settings: Any, arguments: list[str]) -> None:
    task_buffer.lock_output_reports(owner_token(), 1000, 600)
    how = arguments[0]
    if len(arguments) > 1:
        Path(arguments[1]).write_text(str(os.getpid()))
    if how == "hang":
        time.sleep(300)
    if how == "exit":
        os._exit(3)
    raise getattr(errors, how, RuntimeError)("the database went away in the middle of the run")
