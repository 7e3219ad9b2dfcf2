"""The getJob claim: hand each activated job to exactly one pilot, in one short transaction.

Claimers never wait on each other: PostgreSQL and MariaDB skip rows another claimer has locked
(``FOR UPDATE SKIP LOCKED``); SQLite serialises writers with ``BEGIN IMMEDIATE``. PostgreSQL claims in one
``UPDATE ... RETURNING`` statement that also logs the change and returns the files, in autocommit (one
round trip). MariaDB (no RETURNING on UPDATE) locks, updates and reads back, SQLite runs the same UPDATE
without row locks; both then read the files of all claimed jobs in one query and log the change, in one
transaction. The inner select
follows the claim index ``jobs_active (computingSite, jobStatus, currentPriority DESC, PandaID)``.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from pandasrv.clock import utcnow
from pandasrv.taskbuffer.claim_request import ClaimRequest
from pandasrv.taskbuffer.db_proxy_mods.base import BaseProxy, transaction
from pandasrv.taskbuffer.file_spec import FILE_ATTRIBUTES, FileSpec
from pandasrv.taskbuffer.job_spec import TABLE_ATTRIBUTES, JobSpec

_ORDER = "ORDER BY currentPriority DESC, PandaID"
SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"
_RETURNED = ",".join(TABLE_ATTRIBUTES)
_LOG_COLUMNS = "PandaID, modificationTime, jobStatus, prodSourceLabel, cloud, computingSite, modificationHost"
_POSITION = {name: i for i, name in enumerate(TABLE_ATTRIBUTES)}
_FILE_VALUES = ",".join(f"f.{name}" for name in FILE_ATTRIBUTES)


# The optional filters of a claim, in statement order: (ClaimRequest field, condition, bind); a zero or
# None field leaves its condition out.
_FILTERS = (
    ("memory", "(minRamCount <= :mem OR minRamCount = 0)", "mem"),
    ("disk", "(maxDiskCount <= :disk OR maxDiskCount = 0)", "disk"),
    ("walltime", "(maxWalltime IS NULL OR maxWalltime <= :walltime)", "walltime"),
    ("resource_type", "resource_type = :rtype", "rtype"),
    ("owner", "prodUserName = :puser", "puser"),
    ("task_id", "jediTaskID = :task", "task"),
)


def claim_filter(request: ClaimRequest) -> tuple[str, dict[str, Any]]:
    """The WHERE clause selecting the jobs ``request`` may claim, and its binds."""
    in_labels, binds = BaseProxy._in("label", request.labels)
    clauses = ["computingSite = :site", "jobStatus = 'activated'", f"prodSourceLabel IN {in_labels}"]
    binds = {"site": request.site, **binds}
    for name, condition, bind in _FILTERS:
        value = getattr(request, name)
        if value:
            clauses.append(condition)
            binds[bind] = value
    if request.background:
        clauses.append("jobExecutionID = 1")
    return " AND ".join(clauses), binds


def claim_sets(request: ClaimRequest, now: _dt.datetime) -> dict[str, Any]:
    """The columns a claim writes: sent, the times, and what the pilot told about itself."""
    sets = {
        "jobStatus": "sent", "modificationTime": now, "startTime": now, "stateChangeTime": now,
        "modificationHost": request.node, "computingElement": request.computing_element,
        "schedulerID": request.scheduler_id, "jobExecutionID": None if request.background else 0,
    }
    return {name: value for name, value in sets.items() if value is not None}


def candidate_sql(where: str, n: int, lock: str = "", columns: str = "PandaID") -> str:
    """The inner select of the claim: the best ``n`` claimable jobs, along the claim index.

    ``n`` is written into the statement, not bound: with ``LIMIT $n`` PostgreSQL's generic plan assumes that a
    tenth of the queue is fetched, so it keeps planning the statement on every call (custom plans, ≈ 0.4 ms of
    its CPU per getJob); with a literal the prepared generic plan wins. Each ``n`` is its own statement."""
    return f"SELECT {columns} FROM jobs_active WHERE {where} {_ORDER} LIMIT {int(n)}{lock}"


class JobsClaimMixin(BaseProxy):
    def claim_jobs(self, request: ClaimRequest) -> list[JobSpec]:
        """activated -> sent for up to ``request.n`` jobs, best first; each job is returned to one caller only."""
        if request.n <= 0 or not request.labels:
            return []
        if self.backend == "postgresql":
            return self._claim_postgresql(request)
        return self._claim_in_transaction(request)

    @transaction
    def _claim_in_transaction(self, request: ClaimRequest) -> list[JobSpec]:
        """MariaDB and SQLite: claim, read the files and parameters, log the change; one transaction."""
        now = utcnow()
        where, binds = claim_filter(request)
        sets = claim_sets(request, now)
        if self._conn.backend == "mysql":
            rows = self._claim_select_then_update(where, request.n, binds, sets)
        else:
            set_sql, set_binds = self._set_clause(sets, "set_")
            sql = f"UPDATE jobs_active SET {set_sql} WHERE PandaID IN ({candidate_sql(where, request.n)}) RETURNING {_RETURNED}"
            rows = self._fetchall(sql, {**binds, **set_binds})
        jobs = {row[0]: self._spec_from_row(JobSpec, TABLE_ATTRIBUTES, row) for row in rows}
        self._attach_details(jobs)
        self._log_status(
            ({"PandaID": j.PandaID, "jobStatus": "sent", "prodSourceLabel": j.prodSourceLabel, "cloud": j.cloud,
              "computingSite": j.computingSite, "modificationHost": j.modificationHost} for j in jobs.values()),
            now,
        )
        return _best_first(jobs)

    @transaction(single_statement=True)
    def _claim_postgresql(self, request: ClaimRequest) -> list[JobSpec]:
        """Claim, log the status change and read jobParameters and the files in one autocommitted statement:
        one round trip (BEGIN, a files query and COMMIT were three more, 60 % of an in-process getJob).

        ``c.*`` is the RETURNING list, in TABLE_ATTRIBUTES order; the files come as one JSON array of value
        arrays per job (their columns are text and integers, which JSON carries exactly). The statement stays
        under psycopg's 4 kB limit for caching its parsed form.

        The candidates are an ``ARRAY(...)`` sub-select, which runs exactly once: a plain
        ``IN (SELECT ... LIMIT n)`` may be re-run by the planner and then claim more than ``n`` jobs.

        A connection lost while the statement runs is retried once (``single_statement``): if the lost
        attempt had committed, its jobs stay ``sent`` with no pilot, as when a getJob reply is lost, and
        recover_claims gives them back; a job is still handed to one caller only.
        """
        where, binds = claim_filter(request)
        set_sql, set_binds = self._set_clause(claim_sets(request, utcnow()), "set_")
        sql = (
            f"WITH claimed AS (UPDATE jobs_active SET {set_sql} "
            f"WHERE PandaID = ANY(ARRAY({candidate_sql(where, request.n, SKIP_LOCKED)})) RETURNING {_RETURNED}), "
            f"logged AS (INSERT INTO job_status_log ({_LOG_COLUMNS}) SELECT {_LOG_COLUMNS} FROM claimed) "
            f"SELECT c.*, p.jobParameters, (SELECT json_agg(json_build_array({_FILE_VALUES}) ORDER BY f.row_ID) "
            "FROM files f WHERE f.PandaID = c.PandaID) "
            "FROM claimed c LEFT JOIN job_params p ON p.PandaID = c.PandaID"
        )
        jobs = {}
        for row in self._fetchall(sql, {**binds, **set_binds}):
            job = self._spec_from_row(JobSpec, TABLE_ATTRIBUTES, row)
            job.jobParameters = row[-2]
            job.Files.extend(self._spec_from_row(FileSpec, FILE_ATTRIBUTES, values) for values in row[-1] or ())
            jobs[job.PandaID] = job
        return _best_first(jobs)

    def _claim_select_then_update(self, where: str, n: int, binds: dict[str, Any], sets: dict[str, Any]) -> list[tuple[Any, ...]]:
        """MariaDB has no UPDATE ... RETURNING: lock the full rows, update them by id, and return the
        locked rows with the new values applied (no read-back needed)."""
        rows = self._fetchall(candidate_sql(where, n, SKIP_LOCKED, _RETURNED), binds)
        if not rows:
            return []
        in_ids, id_binds = self._in("id", [row[0] for row in rows])
        set_sql, set_binds = self._set_clause(sets, "set_")
        self._execute(f"UPDATE jobs_active SET {set_sql} WHERE PandaID IN {in_ids}", {**set_binds, **id_binds})
        changed = {_POSITION[name]: value for name, value in sets.items()}
        return [tuple(changed.get(i, value) for i, value in enumerate(row)) for row in rows]


def _best_first(jobs: dict[int, JobSpec]) -> list[JobSpec]:
    return sorted(jobs.values(), key=lambda j: (-(j.currentPriority or 0), j.PandaID))
