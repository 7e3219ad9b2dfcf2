"""Cross-machine exclusive control for ``sync`` scripts: a database lease with an owner and an expiry.

The lease is taken for one period and is deliberately not released when the run ends: it expires on its own,
which is what makes a script's period count across all machines (PanDA's process lock works the same way).
While a run is in progress the lease is renewed, so a run that outlives its period cannot be started a
second time elsewhere. A holder that dies stops renewing, and another machine takes over at expiry.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import logging
import threading
from types import TracebackType

from pandasrv.taskbuffer.errors import DBError
from pandasrv.taskbuffer.store import Store

log = logging.getLogger("pandasrv.daemon.lease")


def to_epoch(value: _dt.datetime | None) -> float | None:
    """A naive-UTC datetime from the database as seconds since the epoch."""
    if value is None:
        return None
    return calendar.timegm(value.timetuple()) + value.microsecond / 1e6


class Lease:
    """One attempt to hold ``component`` for ``ttl`` seconds, renewed in the background while held."""

    def __init__(self, task_buffer: Store, component: str, owner: str, ttl: int) -> None:
        self.task_buffer = task_buffer
        self.component = component
        self.owner = owner
        self.ttl = ttl
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def acquire(self) -> bool:
        return bool(self.task_buffer.acquire_lease(self.component, self.owner, self.ttl))

    def holder(self) -> str | None:
        """Who holds (or last held) the lease, None if it was never taken."""
        for lease in self.task_buffer.monitor_leases():
            if lease["component"] == self.component:
                holder: str | None = lease["lockedBy"]
                return holder
        return None

    def expiry(self) -> float | None:
        """When the current holder's lease ends (epoch seconds), to retry exactly then."""
        return to_epoch(self.task_buffer.get_lease_expiry(self.component))

    def __enter__(self) -> "Lease":
        self._renewer = threading.Thread(target=self._renew_loop, name=f"lease-{self.component}", daemon=True)
        self._renewer.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()

    def _renew_loop(self) -> None:
        interval = max(self.ttl / 3.0, 0.2)
        while not self._stop.wait(interval):
            try:
                if not self.task_buffer.renew_lease(self.component, self.owner, self.ttl):
                    log.warning("lease %s of %s was lost while its run was still going", self.component, self.owner)
                    return
            except DBError as exc:
                log.warning("could not renew lease %s: %s", self.component, exc)
