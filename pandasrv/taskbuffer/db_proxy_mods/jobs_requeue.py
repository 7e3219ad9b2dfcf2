"""Claims given back: a ``sent`` job whose pilot never got (or never confirmed) its getJob reply is
``activated`` again, with its attemptNr counted up, so another pilot can take it and the first pilot's late
heartbeats are refused by the attemptNr guard of ``update_job``.

When to give a claim back is the logic layer's rule (``pandasrv.logic.claims``); here are only the two
guarded statements: by (PandaID, attemptNr) for a reply known to be lost, and by age for claims never
confirmed. Both only touch jobs still ``sent`` at the attempt they were claimed with, under row locks, so a
heartbeat that wins the race keeps its job.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Sequence

from pandasrv.clock import utcnow
from pandasrv.taskbuffer.db_proxy_mods.base import BaseProxy, transaction
from pandasrv.taskbuffer.db_proxy_mods.jobs_update import chunks

# Every status-log row of a requeue starts with this, so the requeues of a job can be counted.
REQUEUE_PREFIX = "requeued: "
_COLUMNS = ("PandaID", "attemptNr", "prodSourceLabel", "cloud", "computingSite")
# What a pilot's claim wrote for itself; the next pilot's claim writes its own.
_CLEARED = ("startTime", "modificationHost", "computingElement", "schedulerID")


class JobsRequeueMixin(BaseProxy):
    @transaction
    def requeue_undelivered(self, claims: Sequence[tuple[int, int]], reason: str) -> list[int]:
        """Give back the claims ``(PandaID, attemptNr)`` whose reply did not reach the pilot; returns the
        PandaIDs requeued (a job already confirmed or requeued is left alone)."""
        wanted = {int(panda_id): int(attempt) for panda_id, attempt in claims}
        rows = []
        for part in chunks(sorted(wanted)):
            in_ids, binds = self._in("id", part)
            rows += [row for row in self._locked(f"PandaID IN {in_ids}", binds) if wanted[row["PandaID"]] == row["attemptNr"]]
        return self._requeue(rows, reason, utcnow())

    @transaction
    def requeue_unconfirmed(self, before: _dt.datetime, max_requeues: int, reason: str, limit: int = 1000,
                            after: int = 0) -> tuple[list[int], int | None]:
        """Give back the claims made before ``before`` and never confirmed, among the next ``limit`` by PandaID
        above ``after``, for jobs requeued fewer than ``max_requeues`` times (the others are left to the
        Watcher's ``sent`` timeout). Returns the PandaIDs given back and where the next page starts (None at
        the end): paging by PandaID, so jobs left ``sent`` never hide the ones behind them."""
        rows = self._locked("modificationTime < :before AND PandaID > :after", {"before": before, "after": after}, limit)
        counts = self._requeue_counts([row["PandaID"] for row in rows])
        requeued = self._requeue([row for row in rows if counts.get(row["PandaID"], 0) < max_requeues], reason, utcnow())
        return requeued, rows[-1]["PandaID"] if len(rows) == limit else None

    def _locked(self, where: str, binds: dict[str, Any], limit: int | None = None) -> list[dict[str, Any]]:
        """The ``sent`` jobs matching ``where``, row-locked; rows a heartbeat holds are skipped (it confirms them)."""
        lock = "" if self._conn.backend == "sqlite" else " FOR UPDATE SKIP LOCKED"
        sql = f"SELECT {','.join(_COLUMNS)} FROM jobs_active WHERE jobStatus = 'sent' AND {where} ORDER BY PandaID"
        if limit is not None:
            sql += " LIMIT :limit"
            binds = {**binds, "limit": int(limit)}
        return [dict(zip(_COLUMNS, row)) for row in self._fetchall(sql + lock, binds)]

    def _requeue_counts(self, panda_ids: list[int]) -> dict[int, int]:
        counts: dict[int, int] = {}
        for part in chunks(panda_ids):
            in_ids, binds = self._in("id", part)
            sql = (f"SELECT PandaID, COUNT(*) FROM job_status_log WHERE PandaID IN {in_ids} AND jobStatus = 'activated'"
                   " AND reason LIKE :prefix GROUP BY PandaID")
            counts.update({panda_id: int(n) for panda_id, n in self._fetchall(sql, {**binds, "prefix": REQUEUE_PREFIX + "%"})})
        return counts

    def _requeue(self, rows: list[dict[str, Any]], reason: str, now: _dt.datetime) -> list[int]:
        if not rows:
            return []
        cleared = ", ".join(f"{name} = NULL" for name in _CLEARED)
        for part in chunks([row["PandaID"] for row in rows]):
            in_ids, binds = self._in("id", part)
            self._execute(
                f"UPDATE jobs_active SET jobStatus = 'activated', attemptNr = attemptNr + 1, modificationTime = :now,"
                f" stateChangeTime = :now, {cleared} WHERE PandaID IN {in_ids} AND jobStatus = 'sent'",
                {**binds, "now": now})
        text = (REQUEUE_PREFIX + reason)[:256]
        self._log_status(({**row, "jobStatus": "activated", "modificationHost": None, "reason": text} for row in rows), now)
        return [row["PandaID"] for row in rows]
