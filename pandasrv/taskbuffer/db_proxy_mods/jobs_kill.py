"""Kill and reassign (panda-protocol.md §4.5, simplified): the owner or a production role may act.

Jobs a pilot is not running end at once through the generic transition (archived in the same
transaction); running jobs are flagged ``tobekilled`` and end when the pilot reports.
"""

from __future__ import annotations

from typing import Any, Sequence

from pandasrv.clock import utcnow
from pandasrv.taskbuffer import job_states
from pandasrv.taskbuffer.codes import KILL_COMMAND, forces_kill, kill_outcome
from pandasrv.taskbuffer.db_proxy_mods.base import transaction
from pandasrv.taskbuffer.db_proxy_mods.harvester import HarvesterMixin
from pandasrv.taskbuffer.db_proxy_mods.jobs_update import chunks, column_values

_LIVE_TABLES = (job_states.DEFINED_TABLE, job_states.ACTIVE_TABLE)


class JobsKillMixin(HarvesterMixin):
    @transaction
    def kill_jobs(self, panda_ids: Sequence[int], *, user: str, is_production: bool,
                  code: int | None = None) -> list[bool]:
        """One flag per id: True if the job was ended or marked ``tobekilled``.

        The Harvester workers running any of the jobs get a kill command in the same transaction."""
        now = utcnow()
        allowed = self._authorised(panda_ids, user, is_production)
        force = forces_kill(code, is_production)
        ending = [row for row in allowed.values() if row["jobStatus"] != "running" or force]
        running = [row["PandaID"] for row in allowed.values() if row not in ending]
        diag = f"killed by {user}"[:300]
        for part in chunks(running):
            in_ids, binds = self._in("id", part)
            self._execute(
                f"UPDATE jobs_active SET commandToPilot = :command, taskBufferErrorDiag = :diag, "
                f"modificationTime = :now WHERE PandaID IN {in_ids}",
                {**binds, "command": KILL_COMMAND, "diag": diag, "now": now},
            )
        groups: dict[tuple[str, str | None, int, str], list[dict[str, Any]]] = {}
        for row in ending:
            groups.setdefault(kill_outcome(code, user, row["jobStatus"]), []).append(row)
        for (status, sub_status, error_code, error_diag), rows in groups.items():
            values: dict[str, Any] = {"commandToPilot": KILL_COMMAND, "taskBufferErrorCode": error_code,
                                      "taskBufferErrorDiag": error_diag[:300]}
            if sub_status:
                values["jobSubStatus"] = sub_status
            self._transition(rows, status, column_values(values), now)
        if allowed:
            self._queue_worker_kills(list(allowed))
        return [pid in allowed for pid in panda_ids]

    @transaction
    def reassign_jobs(self, panda_ids: Sequence[int], *, user: str, is_production: bool,
                      site: str | None = None) -> list[bool]:
        """Send jobs a pilot has not started back to ``defined`` (optionally at ``site``) for the Setupper."""
        allowed = self._authorised(panda_ids, user, is_production)
        sources = set(job_states.sources_of("defined"))
        movable = [row for row in allowed.values() if row["jobStatus"] in sources]
        values = column_values({"computingSite": site} if site else {})
        moved = set(self._transition(movable, "defined", values, utcnow()))
        return [pid in moved for pid in panda_ids]

    def _authorised(self, panda_ids: Sequence[int], user: str, is_production: bool) -> dict[int, dict[str, Any]]:
        """Lock the live jobs among ``panda_ids`` that ``user`` may act on."""
        rows = self._lock_jobs(list(panda_ids), _LIVE_TABLES)
        return {row["PandaID"]: row for row in rows if is_production or row["prodUserName"] == user}
