"""Admission: which requests a web process takes on, and which it answers at once with a 503.

A request a process cannot serve soon is worth more to its client as a fast 503 with ``Retry-After`` than
as a long wait that ends in the client's own time-out (the seed's rule, docs/deploy.md "Overload"). Two
bounds, both from the process's T threads and C database connections:

- **a count**, under ``pandasrv serve``: at most ``admission_limit(T, C)`` requests are in a worker at once,
  being served or queued for a thread. The gthread worker (``pandasrv.web.server.ShedWorker``) hands a
  request past that bound to its shed lane instead, a thread that answers it 503 before any database work.
  An accepted request so waits behind at most ``ceil(limit / C)`` database turns, whatever the offered load.
- **an age**, everywhere: a request that still waited longer than ``queue_timeout`` for a thread (a burst
  between two counts, or mod_wsgi's daemon queue, stamped in ``mod_wsgi.queue_start``) is answered 503 too,
  and while a queue stands (``StandingQueue``), one that waited longer than a tenth of it.

The front server records its verdict for the request the current thread serves (``record``); the app asks
``refusal`` before any database work. In-process tests record nothing and nothing is refused.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

_current = threading.local()


def record(queued_at: float | None, shed: bool = False) -> None:
    """Called by the worker thread before it parses a request: ``time.monotonic()`` of its queueing, and
    whether the worker took it over its admission limit; ``record(None)`` after the request."""
    _current.queued_at = queued_at
    _current.shed = shed


def refusal(queue_timeout: float, environ: dict[str, Any]) -> str | None:
    """Why the current request is to be shed, or None to serve it."""
    if getattr(_current, "shed", False):
        return "all web threads busy"
    waited = _waited(environ)
    if waited is None:
        return None
    limit = _queue.limit(waited, queue_timeout)
    if waited > limit:
        return f"waited {waited:.2f} s for a web thread (limit {limit:g} s)"
    return None


class StandingQueue:
    """The wait limit of one process, from the waits of the requests its threads pick up.

    A queue served first in, first out and cut only at ``queue_timeout`` makes every request it serves under
    sustained overload wait almost ``queue_timeout``: the oldest ones are shed, the next ones are just younger.
    So, as in CoDel: while no request has been picked up at once (a thread idle, the queue empty) for a quarter
    of ``queue_timeout``, the queue stands, and the limit is a tenth of ``queue_timeout``; the first request
    picked up at once ends that. Right after an idle moment nothing queued can be older than that moment, so a
    request served under overload waits at most about a quarter of ``queue_timeout``; a short burst on an idle
    server is served whole.
    """

    STANDING_FRACTION = 0.1  # the limit while a queue stands
    INTERVAL_FRACTION = 0.25  # this long without an idle thread: the queue stands
    AT_ONCE_FRACTION = 0.025  # a wait this short means a thread was idle

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.picked_at_once = clock()

    def limit(self, waited: float, queue_timeout: float) -> float:
        """The wait allowed to a request that waited ``waited`` seconds, as it is picked up."""
        now = self.clock()
        if waited <= queue_timeout * self.AT_ONCE_FRACTION:
            self.picked_at_once = now  # one float, written whole: no lock needed
        if now - self.picked_at_once > queue_timeout * self.INTERVAL_FRACTION:
            return queue_timeout * self.STANDING_FRACTION
        return queue_timeout


_queue = StandingQueue()


def _waited(environ: dict[str, Any]) -> float | None:
    queued_at: float | None = getattr(_current, "queued_at", None)
    if queued_at is not None:
        return time.monotonic() - queued_at
    stamp = environ.get("mod_wsgi.queue_start")  # microseconds since the epoch, when Apache queued it
    if stamp:
        try:
            return time.time() - int(stamp) / 1e6
        except ValueError:
            return None
    return None


def admission_limit(threads: int, db_connections: int) -> int:
    """Requests one worker takes on at once: every thread busy, and at most two turns of its C connections
    (more threads than 2 C only help requests that need no database, such as isAlive)."""
    return max(threads, 2 * db_connections)


def listen_backlog(workers: int, threads: int) -> int:
    """The kernel's accept queue: bursts between two accepts of W workers of T threads. The front server
    accepts at once and sheds by count and age, so a long kernel queue would only hide waits that no one
    measures (gunicorn's default is 2,048)."""
    return max(64, 16 * workers * threads)
