"""What a handler gets: the caller, the per-process services, and the request's reply preferences.

The TaskBuffer holds database sessions and child processes, so it must never cross a fork: it is
built lazily on first use in each worker process (and rebuilt if the process id changed).
"""

from __future__ import annotations

import datetime as _dt
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, TypeVar, cast

from pandasrv.clock import utcnow
from pandasrv.config import Settings
from pandasrv.logic.credentials import Credentials
from pandasrv.logic.secrets import Secrets
from pandasrv.taskbuffer.store import Store
from pandasrv.web.auth import Identity, has_pilot_role, has_production_role
from pandasrv.web.codecs import BadRequest, Upload

T = TypeVar("T")


class _TimedCache:
    """One value per key, refreshed after ``ttl`` seconds; ttl 0 means always refresh.

    A miss (None) is never kept, so a queue added while the server runs is seen at once."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._values: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, load: Callable[[], T]) -> T:
        """The value under ``key``; a key is always loaded by the same ``load``, so its value has its type."""
        now = time.monotonic()
        if self.ttl > 0:
            with self._lock:
                hit = self._values.get(key)
            if hit and hit[0] > now:
                return cast(T, hit[1])
        value = load()
        if self.ttl > 0 and value is not None:
            with self._lock:
                self._values[key] = (now + self.ttl, value)
        return value


class StatusHints:
    """The status this process last gave or saw for recent jobs (a claim's ``sent``, a heartbeat's state).

    A heartbeat reporting another state is a transition, which the store's guarded one-statement update would
    miss (one wasted round trip) before it takes the locked path: such heartbeats go to the locked path at
    once. Only a hint: another process may have moved the job since, and the store's checks decide anyway.
    The oldest entries are dropped beyond ``size``, so the memory stays bounded."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._status: dict[int, str] = {}
        self._lock = threading.Lock()

    def saw(self, panda_id: int, status: str | None) -> None:
        """Record the job's status now (None: forget it, e.g. a job that ended)."""
        with self._lock:
            self._status.pop(panda_id, None)
            if status is not None:
                self._status[panda_id] = status
                if len(self._status) > self.size:
                    del self._status[next(iter(self._status))]

    def changes_state(self, panda_id: int, status: str) -> bool:
        """True when the job was last seen here in a state other than ``status``."""
        last = self._status.get(panda_id)
        return last is not None and last != status


class Services:
    """Per-process shared objects: the TaskBuffer and short-lived caches of rarely changing rows."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._task_buffer: Store | None = None
        self._cache = _TimedCache(settings.meta_cache_seconds)
        self.status_hints = StatusHints()
        self.credentials = Credentials(settings.creds)
        self.secrets = Secrets(settings.creds)

    @property
    def task_buffer(self) -> Store:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    from pandasrv.taskbuffer.task_buffer import TaskBuffer

                    self._task_buffer = TaskBuffer(self.settings)
                    self._pid = os.getpid()
        assert self._task_buffer is not None  # set above, in this process
        return self._task_buffer

    def banned_users(self) -> frozenset[str]:
        return self._cache.get("banned", lambda: frozenset(self.task_buffer.get_banned_users()))

    def queue(self, name: str) -> dict[str, Any] | None:
        """The queue row (``name, site, status, data``) or None, cached for ``meta_cache_seconds``."""
        return self._cache.get(("queue", name), lambda: self.task_buffer.get_queue(name))

    def recent_sent(self, site: str) -> int:
        """getJob's ``nSent`` (jobs handed out at ``site`` in the last minute), cached like the queue rows
        so that a busy queue's getJob costs one claim statement, not a count on every call."""
        def count() -> int:
            since = utcnow() - _dt.timedelta(seconds=60)
            return self.task_buffer.count_recent_sent(site, since)

        return self._cache.get(("sent", site), count)

    def close(self) -> None:
        if self._task_buffer is not None and self._pid == os.getpid():
            self._task_buffer.close()


@dataclass
class Call:
    """One request as a handler sees it."""

    identity: Identity
    services: Services
    accept_json: bool = False
    files: dict[str, Upload] = field(default_factory=dict)
    environ: Mapping[str, Any] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def tb(self) -> Store:
        return self.services.task_buffer

    @property
    def user(self) -> str | None:
        return self.identity.user

    @property
    def owner(self) -> str:
        """The caller's user name where a handler needs one (behind role "user" or higher, where every
        identity has one: ``auth.Identity.user``); a clear refusal otherwise."""
        if self.identity.user is None:
            raise BadRequest("the caller has no user name")
        return self.identity.user

    def is_production(self) -> bool:
        return has_production_role(self.identity, self.settings)

    def is_pilot(self, voms_patch: bool = True) -> bool:
        return has_pilot_role(self.identity, self.settings, voms_patch)
