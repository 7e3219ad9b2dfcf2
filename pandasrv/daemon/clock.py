"""The daemon's sense of time, as one seam: the master and the script runner read the time and wait through a
``Clock``, so tests can drive them with a simulated clock (every decision exact, no wall-clock windows) while
production uses ``SYSTEM_CLOCK``."""

from __future__ import annotations

import time
from multiprocessing.connection import wait
from typing import Any, Protocol, Sequence


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
