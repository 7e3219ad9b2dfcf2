"""Job output reports: a pilot's final heartbeat leaves one; the Adder (add_main) takes them in batches.

A report is taken by writing the taker's name and time on it; a taker that dies leaves the lock to
expire after ``lock_seconds`` so another one picks the report up.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from pandasrv.clock import utcnow
from pandasrv.taskbuffer.db_proxy_mods.base import BaseProxy, transaction

REPORT_COLUMNS = ("PandaID", "attemptNr", "prodSourceLabel", "jobStatus", "data", "timeStamp", "lockedBy", "lockedTime")


class OutputReportsMixin(BaseProxy):
    @transaction
    def insert_output_report(self, panda_id: int, attempt_nr: int, label: str | None, status: str, data: str) -> None:
        """Store (or replace: a repeated final heartbeat carries the same files) the report of one attempt."""
        key = {"id": panda_id, "attempt": attempt_nr}
        self._execute("DELETE FROM job_output_report WHERE PandaID = :id AND attemptNr = :attempt", key)
        self._execute(
            "INSERT INTO job_output_report (PandaID, attemptNr, prodSourceLabel, jobStatus, data, timeStamp) "
            "VALUES (:id, :attempt, :label, :status, :data, :now)",
            {**key, "label": label, "status": status, "data": data, "now": utcnow()},
        )

    @transaction
    def lock_output_reports(self, owner: str, n: int, lock_seconds: float) -> list[dict[str, Any]]:
        """Take up to ``n`` free (or lock-expired) reports, oldest first."""
        now = utcnow()
        skip = "" if self._conn.backend == "sqlite" else " FOR UPDATE SKIP LOCKED"
        rows = self._fetchall(
            "SELECT PandaID, attemptNr FROM job_output_report WHERE lockedBy IS NULL OR lockedTime < :cutoff "
            f"ORDER BY timeStamp, PandaID LIMIT :n{skip}",
            {"cutoff": now - _dt.timedelta(seconds=lock_seconds), "n": int(n)},
        )
        if not rows:
            return []
        # Pairs (PandaID, attemptNr) taken by id, then filtered: a job has one live attempt at a time.
        wanted = {(panda_id, attempt) for panda_id, attempt in rows}
        in_ids, binds = self._in("id", sorted({panda_id for panda_id, _ in rows}))
        self._execute(
            f"UPDATE job_output_report SET lockedBy = :owner, lockedTime = :now WHERE PandaID IN {in_ids} "
            "AND (lockedBy IS NULL OR lockedTime < :cutoff)",
            {**binds, "owner": owner, "now": now, "cutoff": now - _dt.timedelta(seconds=lock_seconds)},
        )
        reports = self._fetchall(
            f"SELECT {','.join(REPORT_COLUMNS)} FROM job_output_report WHERE PandaID IN {in_ids} "
            "ORDER BY timeStamp, PandaID", binds,
        )
        return [dict(zip(REPORT_COLUMNS, row)) for row in reports if (row[0], row[1]) in wanted]

    @transaction
    def delete_output_report(self, panda_id: int, attempt_nr: int) -> bool:
        cur = self._execute("DELETE FROM job_output_report WHERE PandaID = :id AND attemptNr = :attempt",
                            {"id": panda_id, "attempt": attempt_nr})
        return cur.rowcount > 0

    @transaction
    def unlock_output_report(self, panda_id: int, attempt_nr: int) -> bool:
        cur = self._execute(
            "UPDATE job_output_report SET lockedBy = NULL, lockedTime = NULL WHERE PandaID = :id AND attemptNr = :attempt",
            {"id": panda_id, "attempt": attempt_nr},
        )
        return cur.rowcount > 0
