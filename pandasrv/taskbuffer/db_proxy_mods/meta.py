"""The web tier's side tables: queues, resource types, users and bans, sandbox files, statistics,
config values, and the two per-job switches users set (pilot command, debug mode).

Upserts are written as "update, else insert" so one statement set works on every backend; a race
between two first inserts ends in IntegrityError, which the caller may simply retry.
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any, Sequence

from pandasrv.clock import utcnow
from pandasrv.taskbuffer import job_states
from pandasrv.taskbuffer.db_proxy_mods.base import BaseProxy, transaction

_QUEUE_COLUMNS = ("name", "site", "status", "data", "modificationTime")
_LIVE_TABLES = (job_states.DEFINED_TABLE, job_states.ACTIVE_TABLE)


def _queue_row(row: Sequence[Any]) -> dict[str, Any]:
    name, site, status, data, modified = row
    return {"name": name, "site": site, "status": status, "data": json.loads(data) if data else {},
            "modificationTime": modified}


class MetaMixin(BaseProxy):
    # --- queues ---------------------------------------------------------------------------------------
    @transaction
    def add_queue(self, name: str, site: str, status: str, data: dict[str, Any]) -> None:
        self._execute(
            "INSERT INTO queues (name, site, status, data, modificationTime) VALUES (:name, :site, :status, :data, :now)",
            {"name": name, "site": site, "status": status, "data": json.dumps(data), "now": utcnow()})

    @transaction
    def update_queue(self, name: str, *, site: str | None = None, status: str | None = None,
                     data: dict[str, Any] | None = None) -> bool:
        """Change the given fields of a queue; False if there is no such queue."""
        if not self._fetchall(f"SELECT name FROM queues WHERE name = :name{self._for_update}", {"name": name}):
            return False
        sets: dict[str, Any] = {k: v for k, v in (("site", site), ("status", status)) if v is not None}
        if data is not None:
            sets["data"] = json.dumps(data)
        sets["modificationTime"] = utcnow()
        assignments = ", ".join(f"{k} = :{k}" for k in sets)
        self._execute(f"UPDATE queues SET {assignments} WHERE name = :name", {**sets, "name": name})
        return True

    @transaction(readonly=True)
    def get_queue(self, name: str) -> dict[str, Any] | None:
        rows = self._fetchall(f"SELECT {','.join(_QUEUE_COLUMNS)} FROM queues WHERE name = :name", {"name": name})
        return _queue_row(rows[0]) if rows else None

    @transaction(readonly=True)
    def list_queues(self) -> list[dict[str, Any]]:
        return [_queue_row(r) for r in self._fetchall(f"SELECT {','.join(_QUEUE_COLUMNS)} FROM queues ORDER BY name")]

    # --- resource types -----------------------------------------------------------------------------
    @transaction(readonly=True)
    def get_resource_types(self) -> list[dict[str, Any]]:
        columns = ("resource_name", "mincore", "maxcore", "minrampercore", "maxrampercore")
        rows = self._fetchall("SELECT name, min_core, max_core, min_ram_per_core, max_ram_per_core"
                              " FROM resource_types ORDER BY name")
        return [dict(zip(columns, row)) for row in rows]

    @transaction
    def set_resource_type(self, name: str, min_core: int | None, max_core: int | None,
                          min_ram_per_core: int | None, max_ram_per_core: int | None) -> None:
        """Create or replace one resource type (None = unbounded)."""
        self._execute("DELETE FROM resource_types WHERE name = :name", {"name": name})
        self._execute("INSERT INTO resource_types (name, min_core, max_core, min_ram_per_core, max_ram_per_core)"
                      " VALUES (:name, :a, :b, :c, :d)",
                      {"name": name, "a": min_core, "b": max_core, "c": min_ram_per_core, "d": max_ram_per_core})

    @transaction
    def remove_resource_type(self, name: str) -> bool:
        return self._execute("DELETE FROM resource_types WHERE name = :name", {"name": name}).rowcount > 0

    # --- users ------------------------------------------------------------------------------------------
    @transaction(readonly=True)
    def get_banned_users(self) -> list[str]:
        return [row[0] for row in self._fetchall("SELECT name FROM users WHERE status = 'banned'")]

    def _locked_user(self, name: str, dn: str | None) -> tuple[int, int]:
        """Lock the user's row, creating it first if needed, and return its (jobDefinitionID, jobsetID).

        Two first submissions of a new user may race: the insert that loses is ignored, and the
        second look-up then waits for the winner's row instead of failing on a duplicate key.
        """
        select = f"SELECT jobDefinitionID, jobsetID FROM users WHERE name = :name{self._for_update}"
        rows = self._fetchall(select, {"name": name})
        if not rows:
            self._insert_ignoring_duplicates(
                "users", ("name", "dn", "jobDefinitionID", "jobsetID", "modificationTime"), "name",
                {"name": name, "dn": dn, "jobDefinitionID": 0, "jobsetID": 0, "modificationTime": utcnow()})
            rows = self._fetchall(select, {"name": name})
        return int(rows[0][0] or 0), int(rows[0][1] or 0)

    @transaction
    def set_user_status(self, name: str, status: str | None, dn: str | None = None) -> None:
        """Ban (``banned``) or clear (None) a user, creating the user row if needed."""
        self._locked_user(name, dn)
        self._execute("UPDATE users SET status = :status, modificationTime = :now WHERE name = :name",
                      {"status": status, "now": utcnow(), "name": name})

    @transaction
    def reserve_user_ids(self, name: str, dn: str | None, job_definition_id: int | None = None,
                         jobset_id: int | None = None) -> tuple[int, int]:
        """The jobDefinitionID and jobsetID of a user's submission.

        A value the client chose is kept and the counter moves past it; a missing one is the counter + 1.
        """
        last_def, last_set = self._locked_user(name, dn)
        new_def = int(job_definition_id) if job_definition_id else last_def + 1
        new_set = int(jobset_id) if jobset_id else last_set + 1
        self._execute("UPDATE users SET jobDefinitionID = :jdid, jobsetID = :jsid, dn = :dn, modificationTime = :now"
                      " WHERE name = :name", {"name": name, "dn": dn, "jdid": max(last_def, new_def),
                                              "jsid": max(last_set, new_set), "now": utcnow()})
        return new_def, new_set

    # --- sandbox files --------------------------------------------------------------------------------
    @transaction
    def register_sandbox_file(self, file_name: str, size: int, checksum: str, host: str, dn: str | None) -> None:
        """Record (or re-record, after an overwrite) an uploaded sandbox for validate_cache_file."""
        self._upsert("sandbox_files", ("fileName", "fileSize", "checksum", "hostName", "dn", "creationTime"),
                     ("fileName",), {"fileName": file_name, "fileSize": size, "checksum": checksum, "hostName": host,
                                     "dn": dn, "creationTime": utcnow()})

    @transaction(readonly=True)
    def find_sandbox_file(self, size: int, checksum: str) -> dict[str, Any] | None:
        rows = self._fetchall("SELECT fileName, hostName, dn FROM sandbox_files WHERE fileSize = :size"
                              " AND checksum = :checksum ORDER BY creationTime DESC", {"size": size, "checksum": checksum})
        return dict(zip(("fileName", "hostName", "dn"), rows[0])) if rows else None

    # --- statistics -------------------------------------------------------------------------------------
    @transaction(readonly=True)
    def job_statistics(self, by: Sequence[str] = ("computingSite", "jobStatus"),
                       labels: Sequence[str] | None = None,
                       archived_since: _dt.datetime | None = None) -> list[tuple[Any, ...]]:
        """Counts of live (defined and active) jobs grouped by ``by`` columns: rows ``(*keys, count)``;
        with ``archived_since`` also the archived jobs modified since then."""
        allowed = {"computingSite", "jobStatus", "prodSourceLabel", "resource_type", "cloud", "gshare",
                   "processingType"}
        if not by or set(by) - allowed:
            raise ValueError(f"cannot group job statistics by {', '.join(sorted(set(by) - allowed)) or 'nothing'}")
        group = ",".join(by)
        where = ""
        binds: dict[str, Any] = {}
        if labels:
            in_labels, binds = self._in("label", labels)
            where = f" WHERE prodSourceLabel IN {in_labels}"
        counts: dict[tuple[Any, ...], int] = {}
        tables = [(table, where) for table in _LIVE_TABLES]
        if archived_since is not None:
            binds = {**binds, "since": archived_since}
            tables.append(("jobs_archived", f"{where} {'AND' if where else 'WHERE'} modificationTime >= :since"))
        for table, condition in tables:
            for row in self._fetchall(f"SELECT {group}, COUNT(*) FROM {table}{condition} GROUP BY {group}", binds):
                counts[tuple(row[:-1])] = counts.get(tuple(row[:-1]), 0) + int(row[-1])
        return [(*key, n) for key, n in sorted(counts.items(), key=lambda kv: tuple(str(k) for k in kv[0]))]

    @transaction(readonly=True)
    def count_recent_sent(self, site: str, since: _dt.datetime) -> int:
        """PanDA's ``nSent``: managed/test jobs handed out at ``site`` since ``since``."""
        rows = self._fetchall(
            "SELECT COUNT(*) FROM jobs_active WHERE computingSite = :site AND jobStatus = 'sent'"
            " AND prodSourceLabel IN ('managed', 'test') AND modificationTime > :since", {"site": site, "since": since})
        return int(rows[0][0])

    # --- config values ------------------------------------------------------------------------------
    @transaction
    def set_config_value(self, app: str, component: str, key: str, value: str, *, vo: str = "",
                         value_type: str = "str") -> None:
        self._upsert("config", ("app", "component", "config_key", "vo", "value", "type"),
                     ("app", "component", "config_key", "vo"),
                     {"app": app, "component": component, "config_key": key, "vo": vo, "value": value, "type": value_type})

    @transaction(readonly=True)
    def get_config_values(self, app: str, component: str, vo: str = "") -> dict[str, str]:
        rows = self._fetchall("SELECT config_key, value FROM config WHERE app = :app AND component = :component AND vo = :vo",
                              {"app": app, "component": component, "vo": vo})
        return {k: v for k, v in rows}

    # --- per-job switches set by users --------------------------------------------------------------
    def _owned_live_job(self, panda_id: int, user: str | None, is_production: bool) -> tuple[str | None, str]:
        """(table holding the job, "ok" | "notfound" | "forbidden"), locking the row."""
        for table in _LIVE_TABLES:
            rows = self._fetchall(f"SELECT prodUserName FROM {table} WHERE PandaID = :id{self._for_update}",
                                  {"id": panda_id})
            if rows:
                if not is_production and (not user or rows[0][0] != user):
                    return table, "forbidden"
                return table, "ok"
        return None, "notfound"

    @transaction
    def set_job_command(self, panda_id: int, command: str, *, user: str | None, is_production: bool) -> str:
        """Set ``commandToPilot`` of a live job (the next heartbeat reply carries it)."""
        table, result = self._owned_live_job(panda_id, user, is_production)
        if result == "ok":
            self._execute(f"UPDATE {table} SET commandToPilot = :command WHERE PandaID = :id",
                          {"command": command[:250], "id": panda_id})
        return result

    @transaction
    def set_debug_mode(self, panda_id: int, on: bool, *, user: str | None, is_production: bool) -> str:
        """Add or remove ``dm`` in ``specialHandling``; the dispatcher then sends ``debug`` to the pilot."""
        table, result = self._owned_live_job(panda_id, user, is_production)
        if result != "ok":
            return result
        (special,) = self._fetchall(f"SELECT specialHandling FROM {table} WHERE PandaID = :id", {"id": panda_id})[0]
        items = [s for s in (special or "").split(",") if s and s != "dm"] + (["dm"] if on else [])
        self._execute(f"UPDATE {table} SET specialHandling = :special WHERE PandaID = :id",
                      {"special": ",".join(items)[:80] or None, "id": panda_id})
        return result
