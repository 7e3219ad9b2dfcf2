"""The getJob claim: hand each activated job to exactly one pilot, in one short transaction.

Claimers never wait on each other: PostgreSQL and MariaDB skip rows another claimer has locked
(``FOR UPDATE SKIP LOCKED``); SQLite serialises writers with ``BEGIN IMMEDIATE``. The inner select
follows the claim index ``jobs_active (computingSite, jobStatus, currentPriority DESC, PandaID)``.
"""

from __future__ import annotations

from typing import Any, Sequence

from pandasrv.taskbuffer.db_proxy_mods.base import BaseProxy, transaction, utcnow
from pandasrv.taskbuffer.job_spec import TABLE_ATTRIBUTES, JobSpec

MANAGED_LABELS: tuple[str, ...] = ("managed", "test", "prod_test", "install")
USER_LABELS: tuple[str, ...] = ("user", "panda", "install")
TEST_LABELS: tuple[str, ...] = ("prod_test", "install", "test")
UNIFIED_LABELS: tuple[str, ...] = ("managed", "test", "prod_test", "install", "user", "panda")

_ORDER = "ORDER BY currentPriority DESC, PandaID"
SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"
_RETURNED = ",".join(TABLE_ATTRIBUTES)


def label_set(prod_source_label: str | None) -> tuple[str, ...]:
    """The prodSourceLabels a getJob request may receive (panda-protocol.md §2.2)."""
    if prod_source_label in (None, "", "managed"):
        return MANAGED_LABELS
    if prod_source_label == "user":
        return USER_LABELS
    if prod_source_label == "unified":
        return UNIFIED_LABELS
    if prod_source_label == "test":
        return TEST_LABELS
    return (prod_source_label,)


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


def candidate_sql(where: str, lock: str = "") -> str:
    """The inner select of the claim: the best ``:n`` claimable jobs, along the claim index."""
    return f"SELECT PandaID FROM jobs_active WHERE {where} {_ORDER} LIMIT :n{lock}"


class JobsClaimMixin(BaseProxy):
    @transaction
    def claim_jobs(
        self,
        site: str,
        n: int = 1,
        *,
        labels: Sequence[str] = MANAGED_LABELS,
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
        assignments = {
            "jobStatus": "sent", "modificationTime": now, "startTime": now, "stateChangeTime": now,
            "modificationHost": node, "computingElement": computing_element, "schedulerID": scheduler_id,
            "jobExecutionID": None if background else 0,
        }
        assignments = {k: v for k, v in assignments.items() if v is not None}
        set_sql = ", ".join(f"{name} = :set_{name}" for name in assignments)
        binds.update({f"set_{name}": value for name, value in assignments.items()})
        if self._conn.backend == "mysql":
            rows = self._claim_select_then_update(where, binds, set_sql)
        else:
            rows = self._claim_update_returning(where, binds, set_sql)
        jobs = {row[0]: self._job_from_row(TABLE_ATTRIBUTES, row) for row in rows}
        self._attach_details(jobs)
        self._log_status(
            ({"PandaID": j.PandaID, "jobStatus": "sent", "prodSourceLabel": j.prodSourceLabel, "cloud": j.cloud,
              "computingSite": j.computingSite, "modificationHost": j.modificationHost} for j in jobs.values()),
            now,
        )
        return sorted(jobs.values(), key=lambda j: (-(j.currentPriority or 0), j.PandaID))

    def _claim_update_returning(self, where: str, binds: dict[str, Any], set_sql: str) -> list[tuple]:
        """PostgreSQL and SQLite: select, lock and update in one statement.

        On PostgreSQL the candidates are an ``ARRAY(...)`` sub-select, which runs exactly once: a plain
        ``IN (SELECT ... LIMIT n)`` may be re-run by the planner and then claim more than ``n`` jobs.
        """
        if self._conn.backend == "postgresql":
            candidates = f"= ANY(ARRAY({candidate_sql(where, SKIP_LOCKED)}))"
        else:
            candidates = f"IN ({candidate_sql(where)})"
        sql = f"UPDATE jobs_active SET {set_sql} WHERE PandaID {candidates} RETURNING {_RETURNED}"
        return self._fetchall(sql, binds)

    def _claim_select_then_update(self, where: str, binds: dict[str, Any], set_sql: str) -> list[tuple]:
        """MariaDB has no UPDATE ... RETURNING: lock the ids, update them, read them back."""
        select_binds = {k: v for k, v in binds.items() if not k.startswith("set_")}
        ids = [row[0] for row in self._fetchall(candidate_sql(where, SKIP_LOCKED), select_binds)]
        if not ids:
            return []
        in_ids, id_binds = self._in("id", ids)
        set_binds = {k: v for k, v in binds.items() if k.startswith("set_")}
        self._execute(f"UPDATE jobs_active SET {set_sql} WHERE PandaID IN {in_ids}", {**set_binds, **id_binds})
        return self._fetchall(f"SELECT {_RETURNED} FROM jobs_active WHERE PandaID IN {in_ids}", id_binds)
