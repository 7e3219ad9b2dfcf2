"""Admission: which requests a web process takes on, and which it answers at once with a 503.

A request a process cannot serve soon is worth more to its client as a fast 503 with ``Retry-After`` than
as a long wait that ends in the client's own time-out (the seed's rule, docs/deploy.md "Overload"). So each
web process decides, when a request has arrived and before any work on it, by the delay that request would
see (``Controller``): its requests in flight times the time one request keeps the process busy (``A`` of the
seed's rule, measured), against a target of a few times the unloaded service time (measured too). Below the
pool's size it always admits, so that shedding never starves the database connections; above
``limits(T, C).cap`` it never does.

- Under ``pandasrv serve`` the gunicorn worker decides on its event loop (``pandasrv.web.server.ShedWorker``):
  an admitted request goes to its T threads, a shed one to a side lane whose threads answer it 503 before any
  database work, and records its verdict for the thread (``record``).
- Anywhere else (mod_wsgi's daemon processes under ``pandasrv apache``) the app decides itself, per process,
  with the same controller (``pandasrv.web.app.Admission``).
- Either way a request that still waited longer than ``queue_timeout`` for a thread (a burst between two
  decisions, or mod_wsgi's daemon queue, stamped in ``mod_wsgi.queue_start``) is shed too.
- Health checks, ``/metrics`` and the monitor's static files (``exempt``) are never shed and not counted: a
  node under load must still be seen alive and measured.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable

from pandasrv.logic import handover
from pandasrv.web.codecs import JSON_TYPE, fail, to_json
from pandasrv.web.outage import Overloaded, reason
from pandasrv.web.registry import LEGACY, REGISTRY, Method

# paths that are never shed besides the API methods that need no database (isAlive, system/is_alive, ...)
EXEMPT_PATHS = frozenset({"/metrics", "/favicon.ico"})
EXEMPT_PREFIXES = ("/monitor/static/",)
# the API methods that hand their jobs to the Setupper helper (pandasrv.logic.handover.start_setupper)
SETUP_METHODS = frozenset({(LEGACY, "submitJobs"), (LEGACY, "reassignJobs"), ("job", "submit"), ("job", "reassign")})


class Verdict(Enum):
    """What the front server decided for the request the current thread serves."""

    ADMITTED = "admitted"  # counted and timed by the front server
    # shed, the value being the reason the log gives (one line per request, by pandasrv.web.outage)
    SHED = "too many requests in flight"
    SETUP_BEHIND = "the Setupper helper is behind"

    @property
    def shed(self) -> bool:
        return self is not Verdict.ADMITTED


# threads beside the admitted requests' ones that answer shed and exempt requests (the gunicorn worker's side
# lane; extra mod_wsgi daemon threads): two, so that one client slow to send its request holds up no other
SIDE_THREADS = 2

_current = threading.local()


def record(queued_at: float | None, verdict: Verdict | None = None) -> None:
    """Called by the worker thread before it parses a request: ``time.monotonic()`` of its queueing and the
    worker's verdict; ``record(None)`` after the request."""
    _current.queued_at = queued_at
    _current.verdict = verdict


def recorded() -> Verdict | None:
    """The front server's verdict for the current request, None where the front server decides nothing."""
    verdict: Verdict | None = getattr(_current, "verdict", None)
    return verdict


def waited(environ: dict[str, Any]) -> float | None:
    """Seconds the current request waited for a thread: the worker's stamp, or mod_wsgi's (microseconds since
    the epoch, when Apache queued it); None when no front server stamped it (in-process tests)."""
    queued_at: float | None = getattr(_current, "queued_at", None)
    if queued_at is not None:
        return time.monotonic() - queued_at
    stamp = environ.get("mod_wsgi.queue_start")
    if stamp:
        try:
            return time.time() - int(stamp) / 1e6
        except ValueError:
            return None
    return None


def _method(path: str) -> Method | None:
    parts = path.split("/")
    if len(parts) == 4 and parts[1:3] == ["server", "panda"]:
        return REGISTRY.find(LEGACY, parts[3])
    if len(parts) == 5 and parts[1:3] == ["api", "v1"]:
        return REGISTRY.find(parts[3], parts[4])
    return None


def exempt(path: str) -> bool:
    """Whether a request for ``path`` is never shed: a health check, /metrics, a static monitor file."""
    if path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES):
        return True
    method = _method(path)
    return method is not None and not method.db


def decide(path: str | None, controller: Controller) -> Verdict:
    """The verdict for a request to ``path`` (None: not known yet) that is not exempt; if admitted, it is
    counted by ``controller`` until ``done``."""
    if path is not None and setup_backlogged(path):
        return Verdict.SETUP_BEHIND
    return Verdict.ADMITTED if controller.admit() else Verdict.SHED


def setup_backlogged(path: str) -> bool:
    """Whether ``path`` hands jobs to this process's Setupper helper while the helper is far behind
    (``handover.helper_behind``: half its pipe given and not set up). The hand-over is one pipe write that
    blocks once the pipe is full (under sustained submits the helper, not the web side, sets the pace), so
    an admitted submit would wait there for seconds, unseen by the ``Controller``; shed before any work, it
    is a fast 503 instead."""
    method = _method(path)
    return method is not None and (method.module, method.name) in SETUP_METHODS and handover.helper_behind()


def request_path(head: bytes | bytearray) -> str | None:
    """The path of a request from its first bytes (``GET /a/b?x HTTP/1.1``), None if there is no request line."""
    line = bytes(head[:head.find(b"\r\n")]) if b"\r\n" in head else b""
    parts = line.split(b" ")
    if len(parts) != 3:
        return None
    return parts[1].split(b"?", 1)[0].decode("latin-1")


@dataclass(frozen=True)
class Limits:
    """The bounds of one web process with T threads and C database connections (docs/deploy.md "Overload").

    ``floor``: below this many requests in flight a request is always admitted: C, what keeps every database
    connection busy, so that shedding never costs throughput. ``cap``: the most ever in flight,
    ``max(T, 3C)``: every thread busy, or at most two turns of the C connections waiting behind the ones
    served (fewer would leave a connection idle whenever a few completions come before the next arrival; the
    controller's target usually binds first)."""

    floor: int
    cap: int


def limits(threads: int, db_connections: int) -> Limits:
    return Limits(floor=db_connections, cap=max(threads, 3 * db_connections))


class Controller:
    """Admission of one process by the queue delay a new request would see. Thread-safe; ``clock`` for tests.

    Measured at each completion, as exponentially weighted means of the last few:

    - ``per_completion`` (A of the seed's rule): the busy time per completed request, the time between two
      completions while anything is in flight. Under load a slot frees every A seconds, so a request admitted
      with n in flight waits about ``max(0, n + 1 - floor) × A`` before it is served (``queue_delay``).
    - ``service``: the time one request takes to serve, without its queueing: that busy time times the number
      of requests that were being served at once (those in flight, at most ``floor``). Its least value over
      the last ``UNLOADED_WINDOW`` seconds is ``unloaded`` (A0), the service time of the process when it is
      not contended; it follows a machine that gets slower within a window.

    A request is admitted when fewer than ``floor`` are in flight, or when fewer than ``cap`` are and its
    queue delay stays within ``TARGET_FACTOR × A0``. Until the first completion only the cap applies. Under
    overload the admitted requests so wait at most a few service times, however many arrive, and the process
    keeps its connections busy; at or below capacity the queue seldom goes beyond the target (the allowance
    absorbs the bursts), so hardly anything is shed.
    """

    ALPHA = 0.2  # weight of a new sample: about the last five completions
    TARGET_FACTOR = 2.0
    UNLOADED_WINDOW = 60.0

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self.in_flight = 0
        self.per_completion: float | None = None
        self.service: float | None = None
        self._lock = threading.Lock()
        now = clock()
        self._last = now
        self._busy = 0.0
        self._window_started = now
        self._least_now = math.inf
        self._least_before = math.inf

    @property
    def unloaded(self) -> float | None:
        least = min(self._least_now, self._least_before)
        return None if least == math.inf else least

    def queue_delay(self) -> float | None:
        """Seconds a request admitted now would wait before it is served, None before the first completion."""
        if self.per_completion is None:
            return None
        return max(0, self.in_flight + 1 - self.limits.floor) * self.per_completion

    def target(self) -> float | None:
        """The queue delay allowed above the floor, None before the first completion."""
        unloaded = self.unloaded
        return None if unloaded is None else self.TARGET_FACTOR * unloaded

    def admit(self) -> bool:
        """Whether to take on a request that has just arrived; if so it is counted until ``done``."""
        with self._lock:
            self._advance(self.clock())
            if not self._admissible():
                return False
            self.in_flight += 1
            return True

    def done(self) -> None:
        """An admitted request was answered: one sample of each measurement."""
        with self._lock:
            now = self.clock()
            self._advance(now)
            served_at_once = min(self.in_flight, self.limits.floor)
            self.in_flight = max(0, self.in_flight - 1)
            busy, self._busy = self._busy, 0.0
            self.per_completion = _mean(self.per_completion, busy, self.ALPHA)
            self.service = _mean(self.service, busy * max(1, served_at_once), self.ALPHA)
            if now - self._window_started > self.UNLOADED_WINDOW / 2:
                self._window_started = now
                self._least_before, self._least_now = self._least_now, math.inf
            self._least_now = min(self._least_now, self.service)

    def _admissible(self) -> bool:
        if self.in_flight < self.limits.floor:
            return True
        if self.in_flight >= self.limits.cap:
            return False
        delay, target = self.queue_delay(), self.target()
        return delay is None or target is None or delay <= target

    def _advance(self, now: float) -> None:
        if self.in_flight:
            self._busy += now - self._last
        self._last = now


def _mean(mean: float | None, sample: float, alpha: float) -> float:
    return sample if mean is None else mean + alpha * (sample - mean)


def shed_body(v1: bool, exc: Overloaded) -> tuple[str, bytes]:
    """The content type and body of a shed request's 503 in the protocol's form: v1 JSON, the legacy (and
    every other path's) ``ERROR : ...`` text."""
    if v1:
        return JSON_TYPE, to_json(fail(reason(exc)))
    return "text/plain", f"ERROR : {reason(exc)}".encode()


def shed_reply(v1: bool, retry_after: int) -> bytes:
    """A whole HTTP response for a request shed before it reached a thread, with ``Connection: close``."""
    content_type, body = shed_body(v1, Overloaded("shed by the worker"))
    head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"Retry-After: {retry_after}\r\nConnection: close\r\n\r\n")
    return head.encode("ascii") + body


def listen_backlog(workers: int, threads: int) -> int:
    """The kernel's accept queue: bursts between two accepts of W workers of T threads. The front server
    accepts at once and sheds by its controller and by age, so a long kernel queue would only hide waits that
    no one measures (gunicorn's default is 2,048)."""
    return max(64, 16 * workers * threads)
