"""Process-lock leases: one holder per component across processes and machines, with an expiry.

A lease is a row of ``process_locks``. Taking one is race-safe without catching errors: a
conditional update that only succeeds if the lease is expired or already ours, then an insert that
silently does nothing on a duplicate key, then the row is read back. The update comes first because
MariaDB's duplicate-ignoring insert leaves a shared lock on the existing row: an update after it would
need to upgrade that lock, and two takers upgrading at once deadlock.
"""

from __future__ import annotations

import datetime as _dt

from pandasrv.clock import utcnow
from pandasrv.taskbuffer.db_proxy_mods.base import BaseProxy, transaction


class LocksMixin(BaseProxy):
    @transaction
    def acquire_lease(self, component: str, owner: str, ttl: float) -> bool:
        """Take the lease if it is free, expired, or already ours; True if ``owner`` holds it now."""
        now, expires = self._extend_lease(component, owner, ttl, "lockedBy = :owner, ",
                                          "(expiresAt < :now OR lockedBy = :owner)")
        self._insert_ignoring_duplicates("process_locks", ("component", "lockedBy", "lockedTime", "expiresAt"),
                                         "component", {"component": component, "lockedBy": owner, "lockedTime": now,
                                                       "expiresAt": expires})
        return self._held_by(component, owner, expires)

    @transaction
    def renew_lease(self, component: str, owner: str, ttl: float) -> bool:
        """Extend a lease we hold and that has not expired; False if it was lost."""
        _, expires = self._extend_lease(component, owner, ttl, "", "lockedBy = :owner AND expiresAt >= :now")
        return self._held_by(component, owner, expires)

    def _extend_lease(self, component: str, owner: str, ttl: float, also_set: str,
                      condition: str) -> tuple[_dt.datetime, _dt.datetime]:
        """Stamp the lease row of ``component`` (``lockedTime`` now, ``expiresAt`` ``ttl`` seconds on, and
        ``also_set``) where ``condition`` holds; returns (now, expiry). ``:owner`` and ``:now`` are bound."""
        now = utcnow()
        expires = now + _dt.timedelta(seconds=ttl)
        self._execute(
            f"UPDATE process_locks SET {also_set}lockedTime = :now, expiresAt = :expires "
            f"WHERE component = :c AND {condition}",
            {"c": component, "owner": owner, "now": now, "expires": expires},
        )
        return now, expires

    @transaction
    def release_lease(self, component: str, owner: str) -> bool:
        """Give the lease up; False if it was not ours or had already expired."""
        cur = self._execute(
            "DELETE FROM process_locks WHERE component = :c AND lockedBy = :owner AND expiresAt >= :now",
            {"c": component, "owner": owner, "now": utcnow()},
        )
        return cur.rowcount > 0

    def _held_by(self, component: str, owner: str, expires: _dt.datetime) -> bool:
        rows = self._fetchall("SELECT lockedBy, expiresAt FROM process_locks WHERE component = :c", {"c": component})
        # A column without sub-second precision stores a truncated expiry.
        return bool(rows) and rows[0][0] == owner and rows[0][1] >= expires.replace(microsecond=0)
