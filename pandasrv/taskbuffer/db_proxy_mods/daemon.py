"""SQL of the daemon itself: lease look-ups for the scheduler, the per-queue counters of add_sub and the
record of each script's last run (shown by the monitor)."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from pandasrv.taskbuffer.db_proxy_mods.base import BaseProxy, transaction

_RUN_COLUMNS = ("script", "host", "startTime", "endTime", "result", "message")
_SITE_COLUMNS = ("site", "getJob", "updateJob", "nStart", "lastStart", "lastUpdate")


class DaemonMixin(BaseProxy):
    @transaction
    def release_work_locks(self, owner_prefix: str) -> int:
        """Free every output report and lease whose owner token starts with ``owner_prefix`` (a dead or
        failed run's ``host-pid-``), so its work is taken again now rather than when the locks expire."""
        binds = {"prefix": owner_prefix, "n": len(owner_prefix)}
        reports = self._execute("UPDATE job_output_report SET lockedBy = NULL, lockedTime = NULL "
                                "WHERE SUBSTR(lockedBy, 1, :n) = :prefix", binds).rowcount
        leases = self._execute("DELETE FROM process_locks WHERE SUBSTR(lockedBy, 1, :n) = :prefix", binds).rowcount
        return reports + leases

    @transaction(readonly=True)
    def get_lease_expiry(self, component: str) -> _dt.datetime | None:
        """When the current lease on ``component`` ends, so a skipped sync script retries exactly then."""
        rows = self._fetchall("SELECT expiresAt FROM process_locks WHERE component = :c", {"c": component})
        return rows[0][0] if rows else None

    @transaction
    def update_site_starts(self, since: _dt.datetime, now: _dt.datetime) -> dict[str, tuple[int, Any]]:
        """Per queue: jobs started since ``since`` (nStart) and the latest start (lastStart) into site_data.

        Counts come from both live and archived jobs (a short job may already be archived); lastStart
        never goes backwards. Returns {site: (nStart, lastStart)}.
        """
        counts: dict[str, list[Any]] = {}
        for table in ("jobs_active", "jobs_archived"):
            rows = self._fetchall(
                f"SELECT computingSite, COUNT(*), MAX(startTime) FROM {table}"
                " WHERE startTime >= :since AND modificationTime >= :since AND computingSite IS NOT NULL"
                " GROUP BY computingSite", {"since": since})
            for site, n, last in rows:
                entry = counts.setdefault(site, [0, None])
                entry[0] += int(n)
                entry[1] = last if entry[1] is None or (last is not None and last > entry[1]) else entry[1]
        self._execute("UPDATE site_data SET nStart = 0, lastUpdate = :now", {"now": now})
        update = ("UPDATE site_data SET nStart = :nStart, lastUpdate = :lastUpdate, lastStart = CASE"
                  " WHEN lastStart IS NULL OR lastStart < :lastStart THEN :lastStart ELSE lastStart END WHERE site = :site")
        for site, (n, last) in counts.items():
            self._update_else_insert(update, "site_data", _SITE_COLUMNS, "site",
                                     {"site": site, "getJob": 0, "updateJob": 0, "nStart": n, "lastStart": last,
                                      "lastUpdate": now})
        return {site: (n, last) for site, (n, last) in counts.items()}

    @transaction
    def record_daemon_run(self, script: str, host: str, started: _dt.datetime, ended: _dt.datetime, result: str,
                          message: str | None = None) -> None:
        """Keep the last run of ``script`` on ``host``: one row per pair, overwritten by each run."""
        binds = {"script": script, "host": host, "startTime": started, "endTime": ended, "result": result,
                 "message": (message or "")[:500] or None}
        self._update_else_insert("UPDATE daemon_runs SET startTime = :startTime, endTime = :endTime, result = :result,"
                                 " message = :message WHERE script = :script AND host = :host",
                                 "daemon_runs", _RUN_COLUMNS, "script, host", binds)

    @transaction(readonly=True)
    def daemon_runs(self) -> list[dict[str, Any]]:
        """Every recorded last run, newest first."""
        rows = self._fetchall(f"SELECT {','.join(_RUN_COLUMNS)} FROM daemon_runs ORDER BY startTime DESC")
        return [dict(zip(_RUN_COLUMNS, row)) for row in rows]
