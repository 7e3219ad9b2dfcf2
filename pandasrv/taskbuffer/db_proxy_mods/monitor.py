"""Read-only queries of the monitor pages and ``pandasrv jobs``: counts, keyset-paged job lists, a job's
status history, leases and per-queue pilot contact.

Job lists are keyset pages in one of the ``SORTS`` orders (default newest PandaID first): each page starts
strictly after the sort key of the previous page's last row, so a page deep into a million archived jobs
costs the same as the first (an index range scan of ``limit`` rows per table, with the
``ix_jobs_*_monitor_*`` and ``ix_jobs_*_mtime_id`` indexes).

The plots read ``job_status_log`` (one row per status change) over a time window, grouped in SQL, on its
``modificationTime`` index.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Sequence

from pandasrv.taskbuffer import job_states
from pandasrv.taskbuffer.db_proxy_mods.base import BaseProxy, transaction

# What a job list shows (every stage table has these columns).
SUMMARY_COLUMNS: tuple[str, ...] = (
    "PandaID", "jobName", "jobStatus", "computingSite", "prodUserName", "prodSourceLabel", "attemptNr",
    "creationTime", "modificationTime", "startTime", "endTime", "transExitCode", "pilotErrorCode",
    "exeErrorCode", "ddmErrorCode", "taskBufferErrorCode", "jobDispatcherErrorCode",
)
# Filter name -> column; values are compared for equality.
FILTER_COLUMNS: dict[str, str] = {
    "state": "jobStatus", "queue": "computingSite", "user": "prodUserName", "label": "prodSourceLabel",
}
# Sort name -> (column, descending). Ties on the column are broken by PandaID in the same direction.
SORTS: dict[str, tuple[str, bool]] = {
    "-PandaID": ("PandaID", True), "PandaID": ("PandaID", False),
    "-modificationTime": ("modificationTime", True), "modificationTime": ("modificationTime", False),
}
GROUP_COLUMNS = frozenset({"jobStatus", "computingSite", "prodUserName", "prodSourceLabel"})
_ERROR_COLUMNS = ("pilotErrorCode", "pilotErrorDiag", "exeErrorCode", "exeErrorDiag", "ddmErrorCode", "ddmErrorDiag",
                  "supErrorCode", "supErrorDiag", "taskBufferErrorCode", "taskBufferErrorDiag",
                  "jobDispatcherErrorCode", "jobDispatcherErrorDiag", "brokerageErrorCode", "brokerageErrorDiag")


def _tables_for(state: str | None) -> tuple[str, ...]:
    """Only the stage table that can hold ``state`` is read when the list is filtered by state."""
    if state is None:
        return job_states.STAGE_TABLES
    table = job_states.TABLE_OF.get(state)
    return (table,) if table else ()


def sort_key(job: dict[str, Any], sort: str) -> tuple[Any, ...]:
    """The keyset key of a job row under ``sort``: what the next page's ``after`` is."""
    column, _ = SORTS[sort]
    return (job["PandaID"],) if column == "PandaID" else (job[column], job["PandaID"])


class MonitorMixin(BaseProxy):
    @transaction(readonly=True)
    def monitor_job_counts(self, by: Sequence[str], filters: dict[str, str] | None = None,
                           archived: bool = True) -> list[tuple[Any, ...]]:
        """Job counts grouped by ``by`` over the live (and, with ``archived``, the archived) jobs: ``(*keys, n)``."""
        if not by or set(by) - GROUP_COLUMNS:
            raise ValueError(f"cannot group jobs by {', '.join(sorted(set(by) - GROUP_COLUMNS)) or 'nothing'}")
        where, binds = self._filter_sql(filters or {})
        group = ",".join(by)
        tables = _tables_for((filters or {}).get("state"))
        counts: dict[tuple[Any, ...], int] = {}
        for table in tables:
            if table == job_states.ARCHIVED_TABLE and not archived:
                continue
            for row in self._fetchall(f"SELECT {group}, COUNT(*) FROM {table}{where} GROUP BY {group}", binds):
                key = tuple(row[:-1])
                counts[key] = counts.get(key, 0) + int(row[-1])
        return [(*key, n) for key, n in sorted(counts.items(), key=lambda kv: tuple(str(k) for k in kv[0]))]

    @transaction(readonly=True)
    def monitor_list_jobs(self, filters: dict[str, str], *, since: _dt.datetime | None = None,
                          sort: str = "-PandaID", after: tuple[Any, ...] | None = None,
                          limit: int = 50) -> list[dict[str, Any]]:
        """Up to ``limit`` job summaries matching ``filters`` in ``sort`` order, all strictly after the key
        ``after`` (``(PandaID,)``, or ``(modificationTime, PandaID)`` for a time sort: see ``sort_key``)."""
        column, descending = SORTS[sort]
        where, binds = self._filter_sql(filters, since=since)
        if after is not None:
            op = "<" if descending else ">"
            if column == "PandaID":
                keyset = f"PandaID {op} :k_id"
                binds["k_id"] = after[0]
            else:
                keyset = f"({column} {op} :k_v OR ({column} = :k_v AND PandaID {op} :k_id))"
                binds.update(k_v=after[0], k_id=after[1])
            where = f"{where} AND {keyset}" if where else f" WHERE {keyset}"
        direction = "DESC" if descending else "ASC"
        order = "PandaID" if column == "PandaID" else f"{column} {direction}, PandaID"
        columns = ",".join(SUMMARY_COLUMNS)
        jobs: list[dict[str, Any]] = []
        for table in _tables_for(filters.get("state")):
            sql = f"SELECT {columns} FROM {table}{where} ORDER BY {order} {direction} LIMIT {int(limit)}"
            jobs += [dict(zip(SUMMARY_COLUMNS, row)) for row in self._fetchall(sql, binds)]
        jobs.sort(key=lambda job: sort_key(job, sort), reverse=descending)
        return jobs[:limit]

    @transaction(readonly=True)
    def monitor_state_timeline(self, start: _dt.datetime, bucket: _dt.timedelta,
                               buckets: int) -> list[tuple[int, str, int]]:
        """Status changes per time bucket and new state from ``start`` on: ``(bucket index, state, n)``.

        The bucket is a CASE over bound edges, so the grouping is done by the database on every backend
        without dialect date functions."""
        edges = {f"e{i}": start + bucket * i for i in range(1, buckets)}
        cases = " ".join(f"WHEN modificationTime < :e{i} THEN {i - 1}" for i in range(1, buckets))
        expression = f"CASE {cases} ELSE {buckets - 1} END" if cases else "0"
        sql = (f"SELECT b, jobStatus, COUNT(*) FROM (SELECT {expression} AS b, jobStatus FROM job_status_log"
               " WHERE modificationTime >= :start AND modificationTime < :end) t GROUP BY b, jobStatus ORDER BY b, jobStatus")
        rows = self._fetchall(sql, {"start": start, "end": start + bucket * buckets, **edges})
        return [(int(b), state, int(n)) for b, state, n in rows]

    @transaction(readonly=True)
    def monitor_queue_changes(self, start: _dt.datetime, end: _dt.datetime) -> list[tuple[str, str, int]]:
        """Status changes per queue and new state in ``[start, end)``: ``(queue, state, n)``."""
        sql = ("SELECT computingSite, jobStatus, COUNT(*) FROM job_status_log WHERE modificationTime >= :start"
               " AND modificationTime < :end GROUP BY computingSite, jobStatus ORDER BY computingSite, jobStatus")
        return [(str(site), state, int(n)) for site, state, n in self._fetchall(sql, {"start": start, "end": end})]

    @transaction(readonly=True)
    def monitor_recent_errors(self, limit: int = 20) -> list[dict[str, Any]]:
        """The most recently failed jobs with their error codes and diagnostics."""
        columns = ("PandaID", "jobName", "computingSite", "prodUserName", "modificationTime", "transExitCode",
                   *_ERROR_COLUMNS)
        rows = self._fetchall(f"SELECT {','.join(columns)} FROM {job_states.ARCHIVED_TABLE} WHERE jobStatus = 'failed'"
                              f" ORDER BY PandaID DESC LIMIT {int(limit)}")
        return [dict(zip(columns, row)) for row in rows]

    @transaction(readonly=True)
    def monitor_status_history(self, panda_id: int) -> list[dict[str, Any]]:
        """A job's status changes in the order they happened, with the reason where the server gave one."""
        columns = ("modificationTime", "jobStatus", "computingSite", "modificationHost", "reason")
        rows = self._fetchall(f"SELECT {','.join(columns)} FROM job_status_log WHERE PandaID = :id"
                              " ORDER BY modificationTime", {"id": panda_id})
        return [dict(zip(columns, row)) for row in rows]

    @transaction(readonly=True)
    def monitor_leases(self) -> list[dict[str, Any]]:
        """Every process-lock lease: component, holder, when taken and when it ends."""
        columns = ("component", "lockedBy", "lockedTime", "expiresAt")
        return [dict(zip(columns, row)) for row in
                self._fetchall(f"SELECT {','.join(columns)} FROM process_locks ORDER BY component")]

    @transaction(readonly=True)
    def monitor_site_data(self) -> dict[str, dict[str, Any]]:
        """Per queue: pilot contacts (getJob/updateJob counters), recent starts and their last times."""
        columns = ("site", "getJob", "updateJob", "nStart", "lastStart", "lastUpdate")
        return {row[0]: dict(zip(columns, row)) for row in
                self._fetchall(f"SELECT {','.join(columns)} FROM site_data ORDER BY site")}

    def _filter_sql(self, filters: dict[str, str], *,
                    since: _dt.datetime | None = None) -> tuple[str, dict[str, Any]]:
        unknown = set(filters) - set(FILTER_COLUMNS)
        if unknown:
            raise ValueError(f"unknown job filter {', '.join(sorted(unknown))}")
        clauses = [f"{FILTER_COLUMNS[name]} = :f_{name}" for name in sorted(filters)]
        binds: dict[str, Any] = {f"f_{name}": value for name, value in filters.items()}
        if since is not None:
            clauses.append("modificationTime >= :since")
            binds["since"] = since
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), binds
