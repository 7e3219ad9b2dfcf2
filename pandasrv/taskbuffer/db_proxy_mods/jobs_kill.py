"""Kill and reassign (panda-protocol.md §4.5, simplified): the owner or a production role may act.

Jobs a pilot is not running end at once through the generic transition (archived in the same
transaction); running jobs are flagged ``tobekilled`` and end when the pilot reports.
"""

from __future__ import annotations

from typing import Any, Sequence

from pandasrv.taskbuffer import job_states
from pandasrv.taskbuffer.db_proxy_mods.base import transaction, utcnow
from pandasrv.taskbuffer.db_proxy_mods.jobs_update import JobsUpdateMixin, chunks, column_values

# Kill codes that close a job for reassignment instead of cancelling it.
CLOSING_CODES = frozenset({2, 4, 51})
# Codes that end a job even while a pilot runs it.
FORCE_CODES = frozenset({9, 52})
# taskBufferErrorCode per kill code (PanDA's EC_Kill 100, EC_Expire 102, "aborted by ExtIF" 103).
ERROR_CODES = {2: 102, 4: 102, 51: 102, 3: 103}
EC_KILL = 100

_LIVE_TABLES = (job_states.DEFINED_TABLE, job_states.ACTIVE_TABLE)


class JobsKillMixin(JobsUpdateMixin):
    @transaction
    def kill_jobs(self, panda_ids: Sequence[int], *, user: str, is_production: bool, code: int = 3) -> list[bool]:
        """One flag per id: True if the job was ended or marked ``tobekilled``."""
        now = utcnow()
        allowed = self._authorised(panda_ids, user, is_production)
        ending = [row for row in allowed.values() if row["jobStatus"] != "running" or code in FORCE_CODES]
        running = [row["PandaID"] for row in allowed.values() if row not in ending]
        diag = f"killed by {user}"[:300]
        for part in chunks(running):
            in_ids, binds = self._in("id", part)
            self._execute(
                f"UPDATE jobs_active SET commandToPilot = 'tobekilled', taskBufferErrorDiag = :diag, "
                f"modificationTime = :now WHERE PandaID IN {in_ids}",
                {**binds, "diag": diag, "now": now},
            )
        closing = code in CLOSING_CODES
        values: dict[str, Any] = {
            "commandToPilot": "tobekilled", "taskBufferErrorCode": ERROR_CODES.get(code, EC_KILL),
            "taskBufferErrorDiag": diag,
        }
        if closing:
            values["jobSubStatus"] = "toreassign"
        self._transition(ending, "closed" if closing else "cancelled", column_values(values), now)
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
