"""add_sub: per-queue counters into ``site_data`` — jobs started in the last window and the latest start.

arguments: ``[window_seconds]`` (default 3600).
"""

from __future__ import annotations

import datetime as _dt

from pandasrv.clock import utcnow
from pandasrv.config import Settings
from pandasrv.taskbuffer.store import Store


def main(task_buffer: Store, settings: Settings, arguments: list[str]) -> None:
    window = float(arguments[0]) if arguments else 3600.0
    now = utcnow()
    task_buffer.update_site_starts(now - _dt.timedelta(seconds=window), now)
