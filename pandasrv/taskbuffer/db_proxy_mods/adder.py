"""File and dataset bookkeeping of the asynchronous path: Setupper, Activator, Adder, Closer, Finisher.

Each method is one transaction over many rows (executemany or IN-lists), so an agent's batch costs a few
round trips whatever its size.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Sequence

from pandasrv.clock import utcnow
from pandasrv.taskbuffer import job_states
from pandasrv.taskbuffer.db_proxy_mods.base import transaction
from pandasrv.taskbuffer.db_proxy_mods.jobs_update import JobsUpdateMixin
from pandasrv.taskbuffer.job_spec import TABLE_ATTRIBUTES, JobSpec

_FILE_REPORT_COLUMNS = ("GUID", "fsize", "checksum", "md5sum", "status")


class AdderMixin(JobsUpdateMixin):
    @transaction(readonly=True)
    def jobs_in_status(self, status: str, *, modified_before: _dt.datetime | None = None,
                       limit: int = 1000) -> list[JobSpec]:
        """Jobs in ``status`` (oldest modification first) with their files, for an agent's batch."""
        table = job_states.table_of(status)
        binds: dict[str, Any] = {"status": status}
        clause = "jobStatus = :status"
        if modified_before is not None:
            clause += " AND modificationTime < :before"
            binds["before"] = modified_before
        columns = ",".join(TABLE_ATTRIBUTES)
        rows = self._fetchall(
            f"SELECT {columns} FROM {table} WHERE {clause} ORDER BY modificationTime, PandaID"
            f" LIMIT {int(limit)}", binds)
        jobs = {row[0]: self._spec_from_row(JobSpec, TABLE_ATTRIBUTES, row) for row in rows}
        self._attach_details(jobs)
        return list(jobs.values())

    @transaction
    def set_file_guids(self, guids: dict[int, str]) -> None:
        """GUIDs for output and log files that came without one (keyed by row_ID)."""
        self._executemany("UPDATE files SET GUID = :guid WHERE row_ID = :row_ID",
                          [{"row_ID": row_id, "guid": guid} for row_id, guid in guids.items()])

    @transaction
    def finalise_jobs(self, outcomes: list[dict[str, Any]], expected: Sequence[str]) -> list[int]:
        """The Adder's write for one round: transitions, reported file metadata, and the reports' deletion.

        One transaction per round (one commit, not one per job), and a report is consumed exactly when its
        outcome is stored. Each outcome has ``PandaID``, ``attemptNr``, ``status`` (None: just drop the
        stale report), ``values`` and ``files`` (rows with ``row_ID`` and the file-report columns). A job no
        longer in an ``expected`` status (killed or timed out meanwhile) is left alone. Returns the
        PandaIDs that changed.
        """
        self._executemany("DELETE FROM job_output_report WHERE PandaID = :PandaID AND attemptNr = :attemptNr",
                          [{"PandaID": o["PandaID"], "attemptNr": o["attemptNr"]} for o in outcomes])
        # Jobs with the same outcome move together: one set-based transition per group.
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for outcome in outcomes:
            if outcome["status"] is not None:
                key = (outcome["status"], tuple(sorted(outcome["values"].items())))
                groups.setdefault(key, []).append(outcome)
        changed: list[int] = []
        file_rows: list[dict[str, Any]] = []
        for (status, values), members in groups.items():
            moved = set(self.set_job_status([o["PandaID"] for o in members], status, dict(values), expected=expected))
            for outcome in members:
                if outcome["PandaID"] in moved:
                    changed.append(outcome["PandaID"])
                    file_rows += [{"row_ID": f["row_ID"], "PandaID": outcome["PandaID"],
                                   **{c: f.get(c) for c in _FILE_REPORT_COLUMNS}} for f in outcome["files"]]
        self._executemany(
            "UPDATE files SET GUID = COALESCE(:GUID, GUID), fsize = COALESCE(:fsize, fsize),"
            " checksum = COALESCE(:checksum, checksum), md5sum = COALESCE(:md5sum, md5sum), status = :status"
            " WHERE row_ID = :row_ID AND PandaID = :PandaID", file_rows)
        return changed

    @transaction(readonly=True)
    def dataset_file_states(self, datasets: Sequence[str]) -> dict[str, dict[str, int]]:
        """Per destination dataset, how many of its output/log files are in each status (for the Closer)."""
        if not datasets:
            return {}
        in_ds, binds = self._in("ds", datasets)
        rows = self._fetchall(
            f"SELECT destinationDBlock, status, COUNT(*) FROM files WHERE destinationDBlock IN {in_ds}"
            " AND type IN ('output', 'log') GROUP BY destinationDBlock, status", binds)
        states: dict[str, dict[str, int]] = {name: {} for name in datasets}
        for name, status, count in rows:
            states[name][status or "unknown"] = int(count)
        return states

    @transaction
    def set_dataset_status(self, name: str, dataset_type: str, status: str) -> None:
        """Update or create the dataset row; two Closers doing this at once must not collide."""
        now = utcnow()
        cur = self._execute("UPDATE datasets SET status = :status, modificationTime = :now WHERE name = :name",
                            {"name": name, "status": status, "now": now})
        if cur.rowcount == 0:
            self._insert_ignoring_duplicates(
                "datasets", ("name", "type", "status", "creationTime", "modificationTime"), "name",
                {"name": name, "type": dataset_type, "status": status, "creationTime": now, "modificationTime": now})

    @transaction
    def mark_inputs_ready(self, dataset: str) -> list[int]:
        """Input files that come from ``dataset`` become ``ready``; returns the jobs that use them.

        One statement per block column (dispatch, then production) so that each uses its index.
        """
        binds = {"ds": dataset}
        panda_ids: set[int] = set()
        for column in ("dispatchDBlock", "prodDBlock"):
            where = f"type = 'input' AND {column} = :ds AND (status IS NULL OR status <> 'ready')"
            panda_ids.update(row[0] for row in self._fetchall(f"SELECT PandaID FROM files WHERE {where}", binds))
            self._execute(f"UPDATE files SET status = 'ready' WHERE {where}", binds)
        return sorted(panda_ids)
