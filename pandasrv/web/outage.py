"""Retryable database failures as replies: which errors they are, and one log summary per outage.

A lost session, an unreachable database, a lock not granted in time or a pool with no free proxy is not
the request's fault and not a server bug: the client should come back later. Each such request gets a
503 with ``Retry-After``, one warning line (the traceback only at debug level), and the process logs one
line when an outage (or an overload) starts and one when it ends, with the count and the kinds of failure in
between, instead of a traceback per request.
"""

from __future__ import annotations

import collections
import logging
import threading
import time

from pandasrv.taskbuffer.errors import ConnectionLost, DBTimeout, LockTimeout, PoolTimeout

log = logging.getLogger("pandasrv.web")


class Overloaded(Exception):
    """The request was shed before any database work (pandasrv.web.admission): over the worker's admission
    limit, or it waited longer than ``queue_timeout`` for a web thread."""


RETRYABLE: tuple[type[Exception], ...] = (ConnectionLost, LockTimeout, DBTimeout, PoolTimeout, Overloaded)
# An outage is over at the first request served this long after the last 503: under load shedding,
# successes and 503s interleave, and that is one episode, not one per request.
QUIET_SECONDS = 1.0

_REASONS = {
    ConnectionLost: "database unavailable",
    LockTimeout: "database locked",
    DBTimeout: "database busy",
    PoolTimeout: "server busy",
    Overloaded: "server overloaded",
}


def reason(exc: Exception) -> str:
    """The short text a client gets: what happened, in a few words, and that a retry is expected."""
    kind = next((text for cls, text in _REASONS.items() if isinstance(exc, cls)), "database unavailable")
    return f"{kind}, retry later ({exc.__class__.__name__})"


class OutageLog:
    """Counts the 503s of one outage per process and logs its start and its end (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: float | None = None
        self._last = 0.0
        self._kinds: collections.Counter[str] = collections.Counter()

    def failed(self, where: str, exc: Exception) -> None:
        """A request answered 503 because of ``exc``: one line for it, a start line for a new outage."""
        now = time.monotonic()
        with self._lock:
            first = self._started is None
            if first:
                self._started = now
            self._last = now
            self._kinds[exc.__class__.__name__] += 1
        if first:
            log.warning("database outage started: %s (%s)", exc.__class__.__name__, str(exc).splitlines()[0][:200])
        log.warning("%s: 503 %s", where, reason(exc))
        log.debug("%s: retryable database error", where, exc_info=exc)

    def served(self) -> None:
        """A request completed without a retryable failure: ends the outage once it has been quiet."""
        if self._started is None:  # the common case: no lock taken
            return
        now = time.monotonic()
        with self._lock:
            if self._started is None or now - self._last < QUIET_SECONDS:
                return
            started, kinds = self._started, self._kinds
            self._started, self._kinds = None, collections.Counter()
        log.warning("database outage ended after %.1f s: %d requests answered 503 (%s)", now - started,
                    sum(kinds.values()), ", ".join(f"{k} {n}" for k, n in kinds.most_common()))
