"""Status writes: the pilot heartbeat and THE generic transition every other caller uses.

Every status write is checked against ``job_states`` before anything is written. When a job's stage
table changes, its row is copied into the new table and deleted from the old one in the same
transaction, so a job is always in exactly one stage table.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Iterable, Iterator, Mapping, Sequence

from pandasrv.clock import utcnow
from pandasrv.taskbuffer import job_states
from pandasrv.taskbuffer.codes import KILL_COMMAND
from pandasrv.taskbuffer.db_proxy_mods.base import transaction
from pandasrv.taskbuffer.db_proxy_mods.output_reports import OutputReportsMixin
from pandasrv.taskbuffer.heartbeat_plan import ActiveRow, ArchivedRow, HeartbeatReply, HeartbeatRequest, RepeatUpdate
from pandasrv.taskbuffer.job_spec import TABLE_ATTRIBUTES, JobSpec

# Ids per IN-list: keeps statements small whatever the caller passes.
ID_CHUNK = 1000
PILOT_STDOUT_CHARS = 2048

_LOCK_COLUMNS = ("PandaID", "jobStatus", "prodSourceLabel", "cloud", "computingSite", "modificationHost", "prodUserName")
_PROTECTED = frozenset({"PandaID", "jobStatus"})
_COPY_COLUMNS = ",".join(TABLE_ATTRIBUTES)
# The repeat's guard: a pending command or debug mode changes the reply, so such a job takes the locked path.
# LIKE may ignore case (MariaDB): then "DM" takes the locked path too, which is only slower.
_NO_COMMAND = "(commandToPilot IS NULL OR commandToPilot IN ('', 'NULL'))"
_NOT_DEBUG = ("(specialHandling IS NULL OR (specialHandling NOT LIKE 'dm' AND specialHandling NOT LIKE 'dm,%'"
              " AND specialHandling NOT LIKE '%,dm' AND specialHandling NOT LIKE '%,dm,%'))")


def chunks(ids: Sequence[int], size: int = ID_CHUNK) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def column_values(values: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate and coerce caller-given job columns (names become SQL identifiers, so only known ones pass)."""
    if not values:
        return {}
    unknown = set(values) - set(TABLE_ATTRIBUTES) | (set(values) & _PROTECTED)
    if unknown:
        raise ValueError(f"not settable job columns: {', '.join(sorted(unknown))}")
    return JobSpec(**values).row(list(values))


class JobsUpdateMixin(OutputReportsMixin):
    # --- the pilot heartbeat --------------------------------------------------------------------
    def update_job(self, heartbeat: HeartbeatRequest) -> dict[str, Any]:
        """Apply a pilot heartbeat to a job in jobs_active, as its policy decides (``heartbeat_plan``).

        A plain repeat is one guarded UPDATE that commits itself; only when it touches no row does the
        heartbeat take the locked path (read the row FOR UPDATE, decide, write). Returns
        ``{"found", "result": ok|notfound|badattemptnr|alreadydone, "status", "command", "debug"}``;
        IllegalTransition when the state machine forbids the change (nothing is written).
        """
        values = column_values(heartbeat.values)
        repeat = heartbeat.repeat(utcnow())
        if repeat is not None and self._repeat_heartbeat(heartbeat.panda_id, repeat, values):
            return repeat.reply.as_dict()
        return self._decided_heartbeat(heartbeat, values)

    @transaction
    def update_jobs(self, heartbeats: Sequence[HeartbeatRequest]) -> list[dict[str, Any]]:
        """Several heartbeats in one transaction, in PandaID order (so concurrent batches lock rows in the
        same order); the replies come in the order given. A heartbeat the state machine refuses is
        answered ``result: illegal`` with the ``error`` text, and the others are applied."""
        replies: dict[int, dict[str, Any]] = {}
        for index in sorted(range(len(heartbeats)), key=lambda i: heartbeats[i].panda_id):
            try:
                replies[index] = self.update_job(heartbeats[index])
            except job_states.IllegalTransition as exc:
                replies[index] = HeartbeatReply("illegal", exc.old, KILL_COMMAND, False, error=str(exc)).as_dict()
        return [replies[index] for index in range(len(heartbeats))]

    @transaction(single_statement=True)
    def _repeat_heartbeat(self, panda_id: int, repeat: RepeatUpdate, values: dict[str, Any]) -> bool:
        """The one statement of a repeated heartbeat: its guard is the whole check (same status, same
        attempt, no command pending, not in debug mode), so no read and no lock is needed."""
        assignments, binds = self._set_clause({**values, **repeat.sets})
        guard = "PandaID = :id AND jobStatus = :status"
        if repeat.attempt_nr is not None:
            guard += " AND attemptNr = :attempt"
            binds["attempt"] = repeat.attempt_nr
        sql = f"UPDATE jobs_active SET {assignments} WHERE {guard} AND {_NO_COMMAND} AND {_NOT_DEBUG}"
        return self._execute(sql, {**binds, "id": panda_id, "status": repeat.status}).rowcount > 0

    @transaction
    def _decided_heartbeat(self, heartbeat: HeartbeatRequest, values: dict[str, Any]) -> dict[str, Any]:
        """The locked path: the row FOR UPDATE, the policy's decision, its writes."""
        panda_id = heartbeat.panda_id
        now = utcnow()
        rows = self._fetchall(
            "SELECT jobStatus, attemptNr, commandToPilot, specialHandling, jobDispatcherErrorDiag, endTime,"
            f" prodSourceLabel, cloud, computingSite, modificationHost FROM jobs_active WHERE PandaID = :id{self._for_update}",
            {"id": panda_id},
        )
        if not rows:
            return self._ended_heartbeat(heartbeat)
        job = ActiveRow(*rows[0][:6])
        label, cloud, site, host = rows[0][6:]
        decided = heartbeat.decide(job, now)
        if isinstance(decided, HeartbeatReply):
            return decided.as_dict()
        sets = {**values, **decided.sets}
        assignments, binds = self._set_clause(sets)
        self._execute(
            f"UPDATE jobs_active SET {assignments} WHERE PandaID = :id AND attemptNr = :attempt",
            {**binds, "id": panda_id, "attempt": job.attempt},
        )
        if decided.log:
            self._log_status([{"PandaID": panda_id, "jobStatus": sets["jobStatus"], "prodSourceLabel": label,
                               "cloud": cloud, "computingSite": site, "modificationHost": sets.get("modificationHost", host),
                               "reason": decided.reason}], now)
        if decided.report_status is not None:
            self.insert_output_report(panda_id, job.attempt, label, decided.report_status, heartbeat.report or "")
        self._store_pilot_texts(panda_id, now, metadata=heartbeat.metadata, pilot_log=heartbeat.pilot_log,
                                stdout=heartbeat.stdout)
        return decided.reply.as_dict()

    def _ended_heartbeat(self, heartbeat: HeartbeatRequest) -> dict[str, Any]:
        """A job no longer active: its archived row and, for a final update, whether its status log shows
        that update applied, for the policy to answer."""
        job: ArchivedRow | None = None
        applied = False
        if heartbeat.final_report:
            rows = self._fetchall("SELECT jobStatus, attemptNr, commandToPilot, specialHandling FROM jobs_archived"
                                  " WHERE PandaID = :id", {"id": heartbeat.panda_id})
            if rows:
                job = ArchivedRow(*rows[0])
                applied = bool(self._fetchall(
                    "SELECT 1 FROM job_status_log WHERE PandaID = :id AND jobStatus = 'holding' AND reason = :reason",
                    {"id": heartbeat.panda_id, "reason": heartbeat.final_reason(job.attempt)}))
        return heartbeat.ended(job, applied).as_dict()

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
        transition among the rest raises IllegalTransition and nothing is written. With ``expected``, only
        the stage tables that hold those statuses are read and locked: the Setupper's ``defined`` -> ``activated``
        must not lock jobs that are in jobs_active already, or every claim skips them until it commits.
        """
        job_states.table_of(new_status)
        tables: Iterable[str] = job_states.STAGE_TABLES
        if expected is not None:
            wanted = set(expected)
            holding = {job_states.table_of(status) for status in wanted}
            tables = [table for table in job_states.STAGE_TABLES if table in holding]
        locked = self._lock_jobs(list(panda_ids), tables)
        if expected is not None:
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
        set_sql, binds = self._set_clause(assignments)
        if changed:
            set_sql += ", stateChangeTime = :now"
        if new_status in job_states.FINAL_STATES and "endTime" not in sets:
            set_sql += ", endTime = COALESCE(endTime, :now)"
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
                    jobs[row[0]] = self._spec_from_row(JobSpec, TABLE_ATTRIBUTES, row)
        found = list(jobs)
        for part in chunks(found):
            self._attach_details({pid: jobs[pid] for pid in part}, files=with_files, metadata=True)
        return [jobs.get(pid) for pid in ids]

