"""The project's one clock: "now" as a naive UTC datetime, and the ``Clock`` seam of the daemon.

Every layer stores and compares naive UTC (the database columns carry no zone, on every backend), so every
layer takes "now" from here; a test that moves time patches or passes one value instead of six spellings.
The daemon master and its script runner read the time and wait through a ``Clock``, so tests drive them with
a simulated one (every decision exact, no wall-clock windows) while production uses ``SYSTEM_CLOCK``.
"""

from __future__ import annotations

import datetime as _dt
import time
from multiprocessing.connection import wait
from typing import Any, Protocol, Sequence


def utcnow() -> _dt.datetime:
    """Naive UTC "now": what the SQL receives as ``:now`` and what every timeout is measured against."""
    return _dt.datetime.now(_dt.UTC).replace(tzinfo=None)


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch: what schedules, run records and timeouts are counted in."""

    def monotonic(self) -> float:
        """A clock that never goes back: for deadlines within one process (a loop-mode run's period)."""

    def wait(self, handles: Sequence[Any], timeout: float) -> list[Any]:
        """The handles (connections, process sentinels) that are ready, waiting for one at most ``timeout``
        seconds: ``multiprocessing.connection.wait``."""


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, handles: Sequence[Any], timeout: float) -> list[Any]:
        return list(wait(handles, timeout))


SYSTEM_CLOCK: Clock = SystemClock()
