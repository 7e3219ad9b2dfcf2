"""The Watcher's set-based sweeps: one guarded selection and one bulk transition per rule, never one per job.

A rule is a plain dict (it crosses the ConBridge pipe) built by ``dataservice/watcher.py``. Its selection
runs with row locks inside the same transaction as the transition, so a heartbeat that lands between the
two cannot be overwritten: the heartbeat waits for the lock, and the transition is guarded by the expected
statuses.
"""

from __future__ import annotations

from typing import Any

from pandasrv.taskbuffer import job_states
from pandasrv.taskbuffer.codes import KILL_COMMAND
from pandasrv.taskbuffer.db_proxy_mods.base import transaction
from pandasrv.taskbuffer.db_proxy_mods.jobs_update import JobsUpdateMixin

_TIME_COLUMNS = frozenset({"modificationTime", "creationTime", "stateChangeTime"})
_ID_CHUNK = 1000


class WatcherMixin(JobsUpdateMixin):
    @transaction
    def sweep_jobs(self, rule: dict[str, Any]) -> list[int]:
        """Apply one timeout rule; returns the PandaIDs it moved.

        Keys of ``rule``: ``statuses``, ``time_column``, ``before`` (datetime), ``new_status``, ``values``;
        optional filters ``labels`` / ``not_labels`` (prodSourceLabel), ``sites`` / ``not_sites``
        (computingSite), ``diag`` (True: a pilot or payload error diag is set; False: none is),
        ``killed`` (True/False: commandToPilot is / is not ``tobekilled``), and ``fail_files``
        (mark the job's unfinished output and log files failed).
        """
        statuses = list(rule["statuses"])
        table = job_states.table_of(statuses[0])
        if any(job_states.table_of(s) != table for s in statuses):
            raise ValueError("a sweep covers statuses of one stage table")
        where, binds = self._sweep_filter(rule)
        sql = f"SELECT PandaID FROM {table} WHERE {where} ORDER BY PandaID{self._for_update}"
        candidates = [row[0] for row in self._fetchall(sql, binds)]
        if not candidates:
            return []
        changed = self.set_job_status(candidates, rule["new_status"], rule.get("values"), expected=statuses)
        if changed and rule.get("fail_files"):
            self._fail_output_files(changed)
        return changed

    def _sweep_filter(self, rule: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        column = rule["time_column"]
        if column not in _TIME_COLUMNS:
            raise ValueError(f"not a sweep time column: {column}")
        in_status, binds = self._in("st", rule["statuses"])
        clauses = [f"jobStatus IN {in_status}", f"{column} < :before"]
        binds["before"] = rule["before"]
        for key, column_name, negate in (("labels", "prodSourceLabel", False), ("not_labels", "prodSourceLabel", True),
                                         ("sites", "computingSite", False), ("not_sites", "computingSite", True)):
            values = rule.get(key)
            if not values:
                continue
            in_list, more = self._in(key, values)
            binds.update(more)
            if negate:
                clauses.append(f"({column_name} IS NULL OR {column_name} NOT IN {in_list})")
            else:
                clauses.append(f"{column_name} IN {in_list}")
        diag_set = ("((pilotErrorDiag IS NOT NULL AND pilotErrorDiag <> '')"
                    " OR (exeErrorDiag IS NOT NULL AND exeErrorDiag <> ''))")
        if rule.get("diag") is True:
            clauses.append(diag_set)
        elif rule.get("diag") is False:
            clauses.append(f"NOT {diag_set}")
        if rule.get("killed") is True:
            clauses.append("commandToPilot = :kill")
            binds["kill"] = KILL_COMMAND
        elif rule.get("killed") is False:
            clauses.append("(commandToPilot IS NULL OR commandToPilot <> :kill)")
            binds["kill"] = KILL_COMMAND
        return " AND ".join(clauses), binds

    def _fail_output_files(self, panda_ids: list[int]) -> None:
        for start in range(0, len(panda_ids), _ID_CHUNK):
            in_ids, binds = self._in("id", panda_ids[start : start + _ID_CHUNK])
            self._execute(
                f"UPDATE files SET status = 'failed' WHERE PandaID IN {in_ids}"
                " AND type IN ('output', 'log') AND (status IS NULL OR status NOT IN ('ready', 'failed'))",
                binds,
            )
