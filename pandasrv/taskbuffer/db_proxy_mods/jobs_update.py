"""Status writes: the pilot heartbeat and THE generic transition every other caller uses.

Every status write is checked against ``job_states`` before anything is written. When a job's stage
table changes, its row is copied into the new table and deleted from the old one in the same
transaction, so a job is always in exactly one stage table.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Iterable, Iterator, Sequence

from pandasrv.taskbuffer import job_states
from pandasrv.taskbuffer.db_proxy_mods.base import transaction, utcnow
from pandasrv.taskbuffer.db_proxy_mods.output_reports import OutputReportsMixin
from pandasrv.taskbuffer.job_spec import TABLE_ATTRIBUTES, JobSpec

# Ids per IN-list: keeps statements small whatever the caller passes.
ID_CHUNK = 1000
PILOT_STDOUT_CHARS = 2048

_LOCK_COLUMNS = ("PandaID", "jobStatus", "prodSourceLabel", "cloud", "computingSite", "modificationHost", "prodUserName")
_PROTECTED = frozenset({"PandaID", "jobStatus"})
_COPY_COLUMNS = ",".join(TABLE_ATTRIBUTES)


def chunks(ids: Sequence[int], size: int = ID_CHUNK) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def column_values(values: dict[str, Any] | None) -> dict[str, Any]:
    """Validate and coerce caller-given job columns (names become SQL identifiers, so only known ones pass)."""
    if not values:
        return {}
    unknown = set(values) - set(TABLE_ATTRIBUTES) | (set(values) & _PROTECTED)
    if unknown:
        raise ValueError(f"not settable job columns: {', '.join(sorted(unknown))}")
    return JobSpec(**values).row(list(values))


class JobsUpdateMixin(OutputReportsMixin):
    # --- the pilot heartbeat --------------------------------------------------------------------
    @transaction
    def update_job(
        self,
        panda_id: int,
        status: str,
        values: dict[str, Any] | None = None,
        *,
        attempt_nr: int | None = None,
        report: str | None = None,
        metadata: str | None = None,
        pilot_log: str | None = None,
        stdout: str | None = None,
    ) -> dict[str, Any]:
        """Apply a pilot heartbeat (panda-protocol.md §2.3 items 5-7) to a job in jobs_active.

        finished/failed are stored as ``holding`` plus a job output report for the Adder. Returns
        ``{"found", "result": ok|notfound|badattemptnr|alreadydone, "status", "command", "debug"}``.
        """
        if status not in job_states.PILOT_STATES:
            raise ValueError(f"a pilot may not report status {status!r}")
        sets = column_values(values)
        now = utcnow()
        rows = self._fetchall(
            "SELECT jobStatus, attemptNr, commandToPilot, specialHandling, jobDispatcherErrorDiag, prodSourceLabel,"
            f" cloud, computingSite, modificationHost, endTime FROM jobs_active WHERE PandaID = :id{self._for_update}",
            {"id": panda_id},
        )
        if not rows:
            return self._archived_reply(panda_id, status, attempt_nr)
        old, attempt, command, special, diag, label, cloud, site, host, end_time = rows[0]
        debug = "dm" in (special or "").split(",")
        if attempt_nr is not None and int(attempt_nr) != attempt:
            return _reply("badattemptnr", old, "tobekilled", debug)
        final_report = status in ("finished", "failed")
        new = "holding" if final_report else status
        if (
            old in job_states.FINAL_STATES
            or (old == "transferring" and new == "holding" and not diag)
            or (old == "holding" and final_report)
        ):
            return _reply("alreadydone", old, command, debug)
        if old == "merging" or (old in ("holding", "transferring") and new in ("running", "starting")):
            return _reply("ok", old, command, debug)
        if old == "running" and new == "starting":
            new = "running"
        job_states.check(old, new)
        sets.update(jobStatus=new, modificationTime=now)
        if new != old or final_report:
            sets["stateChangeTime"] = now
        if final_report:
            sets["jobDispatcherErrorDiag"] = None
        elif new in ("holding", "transferring"):
            sets["jobDispatcherErrorDiag"] = f"set to {new} by the pilot at {now:%Y-%m-%d %H:%M:%S}"
        if end_time is None and "endTime" not in sets and (new == "holding" or (old, new) == ("running", "transferring")):
            sets["endTime"] = now
        if new == "running" and old in ("sent", "starting") and "startTime" not in sets:
            sets["startTime"] = now
        assignments = ", ".join(f"{name} = :v_{name}" for name in sets)
        binds = {f"v_{name}": value for name, value in sets.items()}
        self._execute(
            f"UPDATE jobs_active SET {assignments} WHERE PandaID = :id AND attemptNr = :attempt",
            {**binds, "id": panda_id, "attempt": attempt},
        )
        if new != old:
            host = sets.get("modificationHost", host)
            self._log_status([{"PandaID": panda_id, "jobStatus": new, "prodSourceLabel": label, "cloud": cloud,
                               "computingSite": site, "modificationHost": host,
                               "reason": final_reason(status, attempt) if final_report else None}], now)
        if final_report:
            self.insert_output_report(panda_id, attempt, label, status, report or "")
        self._store_pilot_texts(panda_id, now, metadata=metadata, pilot_log=pilot_log, stdout=stdout)
        return _reply("ok", new, command, debug)

    def _archived_reply(self, panda_id: int, status: str, attempt_nr: int | None) -> dict[str, Any]:
        """The answer for a job no longer active: a repeat of the final update that was applied to it (same
        state and attemptNr, recorded in its status log) is answered as the first was; anything else is
        told to stop."""
        if status in ("finished", "failed"):
            rows = self._fetchall("SELECT jobStatus, attemptNr, commandToPilot, specialHandling FROM jobs_archived"
                                  " WHERE PandaID = :id", {"id": panda_id})
            if rows and (attempt_nr is None or int(attempt_nr) == rows[0][1]):
                final, attempt, command, special = rows[0]
                applied = self._fetchall("SELECT 1 FROM job_status_log WHERE PandaID = :id AND jobStatus = 'holding'"
                                         " AND reason = :reason", {"id": panda_id, "reason": final_reason(status, attempt)})
                if applied:
                    return _reply("alreadydone", final, command, "dm" in (special or "").split(","))
        return _reply("notfound", None, "tobekilled", False)

    def _store_pilot_texts(self, panda_id: int, now: _dt.datetime, *, metadata: str | None,
                           pilot_log: str | None, stdout: str | None) -> None:
        if metadata:
            self._execute("DELETE FROM job_metadata WHERE PandaID = :id", {"id": panda_id})
            self._execute("INSERT INTO job_metadata (PandaID, metaData) VALUES (:id, :data)", {"id": panda_id, "data": metadata})
        texts = [text for text in (pilot_log, (stdout or "")[:PILOT_STDOUT_CHARS]) if text]
        self._insert_rows("pilot_log", ("PandaID", "timeStamp", "log"),
                          [{"PandaID": panda_id, "timeStamp": now, "log": text} for text in texts])

    # --- the generic transition -----------------------------------------------------------------
    @transaction
    def set_job_status(
        self,
        panda_ids: Sequence[int],
        new_status: str,
        values: dict[str, Any] | None = None,
        *,
        expected: Iterable[str] | None = None,
    ) -> list[int]:
        """Move jobs to ``new_status`` (and its stage table); returns the PandaIDs that changed.

        Jobs not found, or not in one of the ``expected`` statuses, are left alone. Any illegal
        transition among the rest raises IllegalTransition and nothing is written.
        """
        job_states.table_of(new_status)
        locked = self._lock_jobs(list(panda_ids), job_states.STAGE_TABLES)
        if expected is not None:
            wanted = set(expected)
            locked = [row for row in locked if row["jobStatus"] in wanted]
        return self._transition(locked, new_status, column_values(values), utcnow())

    def _lock_jobs(self, panda_ids: list[int], tables: Iterable[str]) -> list[dict[str, Any]]:
        """Lock and describe the jobs among ``panda_ids`` found in ``tables`` (each row carries its table)."""
        found: list[dict[str, Any]] = []
        cols = ",".join(_LOCK_COLUMNS)
        for table in tables:
            for part in chunks(panda_ids):
                in_ids, binds = self._in("id", part)
                for row in self._fetchall(f"SELECT {cols} FROM {table} WHERE PandaID IN {in_ids}{self._for_update}", binds):
                    found.append({**dict(zip(_LOCK_COLUMNS, row)), "table": table})
        return found

    def _transition(self, locked: list[dict[str, Any]], new_status: str, sets: dict[str, Any],
                    now: _dt.datetime) -> list[int]:
        """Check every transition first, then move rows between stage tables and update them."""
        for row in locked:
            job_states.check(row["jobStatus"], new_status)
        if not locked:
            return []
        target = job_states.table_of(new_status)
        moved = 0
        for table in {row["table"] for row in locked} - {target}:
            ids_here = [row["PandaID"] for row in locked if row["table"] == table]
            self._move_rows(ids_here, table, target)
            moved += len(ids_here)
        self._refresh_statistics(target, moved)
        assignments = {**sets, "jobStatus": new_status, "modificationTime": now}
        changed = [row for row in locked if row["jobStatus"] != new_status]
        set_sql = ", ".join(f"{name} = :v_{name}" for name in assignments)
        if changed:
            set_sql += ", stateChangeTime = :now"
        if new_status in job_states.FINAL_STATES and "endTime" not in sets:
            set_sql += ", endTime = COALESCE(endTime, :now)"
        binds = {f"v_{name}": value for name, value in assignments.items()}
        if ":now" in set_sql:
            binds["now"] = now
        ids = [row["PandaID"] for row in locked]
        for part in chunks(ids):
            in_ids, id_binds = self._in("id", part)
            self._execute(f"UPDATE {target} SET {set_sql} WHERE PandaID IN {in_ids}", {**binds, **id_binds})
        self._log_status(({**row, "jobStatus": new_status} for row in changed), now)
        return ids

    def _move_rows(self, panda_ids: list[int], source: str, target: str) -> None:
        for part in chunks(panda_ids):
            in_ids, binds = self._in("id", part)
            copy = f"INSERT INTO {target} ({_COPY_COLUMNS}) SELECT {_COPY_COLUMNS} FROM {source} WHERE PandaID IN {in_ids}"
            self._execute(copy, binds)
            self._execute(f"DELETE FROM {source} WHERE PandaID IN {in_ids}", binds)

    # --- reads ------------------------------------------------------------------------------------
    @transaction(readonly=True)
    def get_job_status(self, panda_ids: Sequence[int]) -> dict[int, tuple[str, int, str | None]]:
        """``{PandaID: (jobStatus, attemptNr, commandToPilot)}`` over all stage tables; unknown ids are absent."""
        out: dict[int, tuple[str, int, str | None]] = {}
        ids = list(panda_ids)
        for table in job_states.STAGE_TABLES:
            for part in chunks(ids):
                in_ids, binds = self._in("id", part)
                sql = f"SELECT PandaID, jobStatus, attemptNr, commandToPilot FROM {table} WHERE PandaID IN {in_ids}"
                for panda_id, status, attempt, command in self._fetchall(sql, binds):
                    out[panda_id] = (status, attempt, command)
        return out

    @transaction(readonly=True)
    def peek_jobs(self, panda_ids: Sequence[int], *, with_files: bool = True, archived: bool = True) -> list[JobSpec | None]:
        """Full JobSpecs (with Files, jobParameters and metadata) in the order asked; None where unknown."""
        ids = list(panda_ids)
        tables = job_states.STAGE_TABLES if archived else job_states.STAGE_TABLES[:2]
        jobs: dict[int, JobSpec] = {}
        for table in tables:
            for part in chunks(ids):
                in_ids, binds = self._in("id", part)
                for row in self._fetchall(f"SELECT {_COPY_COLUMNS} FROM {table} WHERE PandaID IN {in_ids}", binds):
                    jobs[row[0]] = self._job_from_row(TABLE_ATTRIBUTES, row)
        found = list(jobs)
        for part in chunks(found):
            self._attach_details({pid: jobs[pid] for pid in part}, files=with_files, metadata=True)
        return [jobs.get(pid) for pid in ids]


def final_reason(status: str, attempt: int) -> str:
    """The status-log reason of the ``holding`` row a pilot's final update writes: how a repeat is recognised."""
    return f"pilot final update: {status}, attempt {attempt}"


def _reply(result: str, status: str | None, command: str | None, debug: bool) -> dict[str, Any]:
    commands = (["debug"] if debug else []) + ([command] if command and command != "NULL" else [])
    return {"found": result != "notfound", "result": result, "status": status,
            "command": ",".join(commands) or None, "debug": debug}
