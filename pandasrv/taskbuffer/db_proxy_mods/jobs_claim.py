"""The getJob claim: hand each activated job to exactly one pilot, in one short transaction.

Claimers never wait on each other: PostgreSQL and MariaDB skip rows another claimer has locked
(``FOR UPDATE SKIP LOCKED``); SQLite serialises writers with ``BEGIN IMMEDIATE``. PostgreSQL claims in one
``UPDATE ... RETURNING`` statement, MariaDB (no RETURNING on UPDATE) locks, updates and reads back,
SQLite runs the same UPDATE without row locks; then the files of all claimed jobs in one query. The inner select
follows the claim index ``jobs_active (computingSite, jobStatus, currentPriority DESC, PandaID)``.
"""

from __future__ import annotations

from typing import Any, Sequence

from pandasrv.clock import utcnow
from pandasrv.taskbuffer.db_proxy_mods.base import BaseProxy, transaction
from pandasrv.taskbuffer.job_spec import TABLE_ATTRIBUTES, JobSpec

# The claim's own default; which labels a getJob request receives is pandasrv.logic.policy.label_set.
DEFAULT_LABELS: tuple[str, ...] = ("managed",)

_ORDER = "ORDER BY currentPriority DESC, PandaID"
SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"
_RETURNED = ",".join(TABLE_ATTRIBUTES)
_LOG_COLUMNS = "PandaID, modificationTime, jobStatus, prodSourceLabel, cloud, computingSite, modificationHost"
_POSITION = {name: i for i, name in enumerate(TABLE_ATTRIBUTES)}


def claim_filter(
    site: str,
    labels: Sequence[str],
    *,
    memory: int = 0,
    disk: int = 0,
    walltime: int = 0,
    resource_type: str | None = None,
    prod_user_name: str | None = None,
    task_id: int | None = None,
    background: bool | None = None,
) -> tuple[str, dict[str, Any]]:
    """The WHERE clause selecting claimable jobs, and its binds."""
    clauses = ["computingSite = :site", "jobStatus = 'activated'"]
    binds: dict[str, Any] = {"site": site}
    in_labels, label_binds = BaseProxy._in("label", labels)
    clauses.append(f"prodSourceLabel IN {in_labels}")
    binds.update(label_binds)
    if memory and memory > 0:
        clauses.append("(minRamCount <= :mem OR minRamCount = 0)")
        binds["mem"] = int(memory)
    if disk and disk > 0:
        clauses.append("(maxDiskCount <= :disk OR maxDiskCount = 0)")
        binds["disk"] = int(disk)
    if walltime and walltime > 0:
        clauses.append("(maxWalltime IS NULL OR maxWalltime <= :walltime)")
        binds["walltime"] = int(walltime)
    if resource_type:
        clauses.append("resource_type = :rtype")
        binds["rtype"] = resource_type
    if prod_user_name:
        clauses.append("prodUserName = :puser")
        binds["puser"] = prod_user_name
    if task_id:
        clauses.append("jediTaskID = :task")
        binds["task"] = int(task_id)
    if background:
        clauses.append("jobExecutionID = 1")
    return " AND ".join(clauses), binds


def candidate_sql(where: str, lock: str = "", columns: str = "PandaID") -> str:
    """The inner select of the claim: the best ``:n`` claimable jobs, along the claim index."""
    return f"SELECT {columns} FROM jobs_active WHERE {where} {_ORDER} LIMIT :n{lock}"


class JobsClaimMixin(BaseProxy):
    @transaction
    def claim_jobs(
        self,
        site: str,
        n: int = 1,
        *,
        labels: Sequence[str] = DEFAULT_LABELS,
        memory: int = 0,
        disk: int = 0,
        walltime: int = 0,
        resource_type: str | None = None,
        prod_user_name: str | None = None,
        task_id: int | None = None,
        background: bool | None = None,
        node: str | None = None,
        computing_element: str | None = None,
        scheduler_id: str | None = None,
    ) -> list[JobSpec]:
        """activated -> sent for up to ``n`` jobs, best first; each job is returned to one caller only."""
        if n <= 0 or not labels:
            return []
        now = utcnow()
        where, binds = claim_filter(
            site, labels, memory=memory, disk=disk, walltime=walltime, resource_type=resource_type,
            prod_user_name=prod_user_name, task_id=task_id, background=background,
        )
        binds["n"] = int(n)
        sets = {
            "jobStatus": "sent", "modificationTime": now, "startTime": now, "stateChangeTime": now,
            "modificationHost": node, "computingElement": computing_element, "schedulerID": scheduler_id,
            "jobExecutionID": None if background else 0,
        }
        sets = {name: value for name, value in sets.items() if value is not None}
        backend = self._conn.backend
        if backend == "postgresql":
            jobs = self._claim_postgresql(where, binds, sets)
            self._attach_details(jobs, params=False)
            return _best_first(jobs)
        if backend == "mysql":
            rows = self._claim_select_then_update(where, binds, sets)
        else:
            set_sql, set_binds = _assignments(sets)
            sql = f"UPDATE jobs_active SET {set_sql} WHERE PandaID IN ({candidate_sql(where)}) RETURNING {_RETURNED}"
            rows = self._fetchall(sql, {**binds, **set_binds})
        jobs = {row[0]: self._job_from_row(TABLE_ATTRIBUTES, row) for row in rows}
        self._attach_details(jobs)
        self._log_status(
            ({"PandaID": j.PandaID, "jobStatus": "sent", "prodSourceLabel": j.prodSourceLabel, "cloud": j.cloud,
              "computingSite": j.computingSite, "modificationHost": j.modificationHost} for j in jobs.values()),
            now,
        )
        return _best_first(jobs)

    def _claim_postgresql(self, where: str, binds: dict[str, Any], sets: dict[str, Any]) -> dict[int, JobSpec]:
        """Claim, log the status change and read jobParameters in one statement (one round trip).

        ``c.*`` is the RETURNING list, in TABLE_ATTRIBUTES order; it also keeps the statement under
        psycopg's 4 kB limit for caching its parsed form.

        The candidates are an ``ARRAY(...)`` sub-select, which runs exactly once: a plain
        ``IN (SELECT ... LIMIT n)`` may be re-run by the planner and then claim more than ``n`` jobs.
        """
        set_sql, set_binds = _assignments(sets)
        sql = (
            f"WITH claimed AS (UPDATE jobs_active SET {set_sql} "
            f"WHERE PandaID = ANY(ARRAY({candidate_sql(where, SKIP_LOCKED)})) RETURNING {_RETURNED}), "
            f"logged AS (INSERT INTO job_status_log ({_LOG_COLUMNS}) SELECT {_LOG_COLUMNS} FROM claimed) "
            "SELECT c.*, p.jobParameters FROM claimed c LEFT JOIN job_params p ON p.PandaID = c.PandaID"
        )
        jobs = {}
        for row in self._fetchall(sql, {**binds, **set_binds}):
            job = self._job_from_row(TABLE_ATTRIBUTES, row)
            job.jobParameters = row[-1]
            jobs[job.PandaID] = job
        return jobs

    def _claim_select_then_update(self, where: str, binds: dict[str, Any], sets: dict[str, Any]) -> list[tuple[Any, ...]]:
        """MariaDB has no UPDATE ... RETURNING: lock the full rows, update them by id, and return the
        locked rows with the new values applied (no read-back needed)."""
        rows = self._fetchall(candidate_sql(where, SKIP_LOCKED, _RETURNED), binds)
        if not rows:
            return []
        in_ids, id_binds = self._in("id", [row[0] for row in rows])
        set_sql, set_binds = _assignments(sets)
        self._execute(f"UPDATE jobs_active SET {set_sql} WHERE PandaID IN {in_ids}", {**set_binds, **id_binds})
        changed = {_POSITION[name]: value for name, value in sets.items()}
        return [tuple(changed.get(i, value) for i, value in enumerate(row)) for row in rows]


def _assignments(sets: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ", ".join(f"{name} = :set_{name}" for name in sets), {f"set_{name}": value for name, value in sets.items()}


def _best_first(jobs: dict[int, JobSpec]) -> list[JobSpec]:
    return sorted(jobs.values(), key=lambda j: (-(j.currentPriority or 0), j.PandaID))
