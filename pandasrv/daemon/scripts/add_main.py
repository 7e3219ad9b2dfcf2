"""add_main (loop mode): the Adder — finalise jobs from their output reports.

arguments: ``[reports_per_round, idle_seconds]`` (defaults 100 and 2). Returns True so that the worker keeps
calling it until the period is over; a round that finds nothing waits ``idle_seconds`` first.
"""

from __future__ import annotations

import time

from pandasrv.config import Settings
from pandasrv.dataservice.adder import Adder
from pandasrv.taskbuffer.store import Store

_adders: dict[int, Adder] = {}


def main(task_buffer: Store, settings: Settings, arguments: list[str]) -> bool:
    per_round = int(arguments[0]) if arguments else 100
    idle = float(arguments[1]) if len(arguments) > 1 else 2.0
    adder = _adders.setdefault(id(task_buffer), Adder(task_buffer, settings))
    if adder.run_round(per_round) == 0:
        time.sleep(idle)
    return True
