"""Retention: purge what is past its keep time, one bounded batch per transaction.

Batches keep every transaction short (locks, undo, replication lag) however much has piled up; the caller
repeats until a batch comes back short.
"""

from __future__ import annotations

import datetime as _dt

from pandasrv.taskbuffer.db_proxy_mods.base import BaseProxy, transaction

# Tables keyed by PandaID whose rows go with the archived job.
JOB_SIDE_TABLES = ("files", "job_params", "job_metadata", "job_output_report", "job_status_log", "pilot_log")
# Log tables purged by age whatever the job's fate: table -> time column.
HISTORY_TABLES = {"job_status_log": "modificationTime", "pilot_log": "timeStamp", "job_output_report": "timeStamp"}
# Harvester's tables, purged by the age of one time column each (retention.harvester_days): a worker, a
# job-worker relation or a statistics row not updated since, a command not moved on since, old dialogs and
# service metrics, target slots expired since.
HARVESTER_TABLES = {"harvester_workers": "lastUpdate", "harvester_rel_jobs_workers": "lastUpdate",
                    "harvester_worker_stats": "lastUpdate", "harvester_commands": "status_date",
                    "harvester_dialogs": "creationTime", "harvester_metrics": "creation_time",
                    "harvester_slots": "expirationTime"}


class RetentionMixin(BaseProxy):
    @transaction
    def purge_archived_jobs(self, before: _dt.datetime, batch_size: int) -> int:
        """Delete up to ``batch_size`` archived jobs last modified before ``before``, with all their rows."""
        rows = self._fetchall(
            f"SELECT PandaID FROM jobs_archived WHERE modificationTime < :before ORDER BY PandaID"
            f" LIMIT {int(batch_size)}", {"before": before})
        panda_ids = [row[0] for row in rows]
        if not panda_ids:
            return 0
        in_ids, binds = self._in("id", panda_ids)
        for table in JOB_SIDE_TABLES + ("jobs_archived",):
            self._execute(f"DELETE FROM {table} WHERE PandaID IN {in_ids}", binds)
        return len(panda_ids)

    @transaction
    def purge_history(self, table: str, before: _dt.datetime, batch_size: int) -> int:
        """Delete old rows of one history table for up to ``batch_size`` jobs; returns the rows deleted."""
        column = HISTORY_TABLES[table]
        rows = self._fetchall(
            f"SELECT DISTINCT PandaID FROM {table} WHERE {column} < :before LIMIT {int(batch_size)}",
            {"before": before})
        if not rows:
            return 0
        in_ids, binds = self._in("id", [row[0] for row in rows])
        binds["before"] = before
        return self._execute(f"DELETE FROM {table} WHERE PandaID IN {in_ids} AND {column} < :before", binds).rowcount

    @transaction
    def purge_aged_rows(self, table: str, before: _dt.datetime, batch_size: int) -> int:
        """Delete about ``batch_size`` of the oldest rows of a Harvester table older than ``before``.

        The tables have composite keys, so a batch is bounded by time: the ``batch_size``-th oldest time is
        the cut (rows that share it go in the same batch)."""
        column = HARVESTER_TABLES[table]
        rows = self._fetchall(f"SELECT {column} FROM {table} WHERE {column} < :before ORDER BY {column}"
                              f" LIMIT {int(batch_size)}", {"before": before})
        if not rows:
            return 0
        return int(self._execute(f"DELETE FROM {table} WHERE {column} <= :cut", {"cut": rows[-1][0]}).rowcount)
