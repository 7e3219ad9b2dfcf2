"""Harvester, the pilot factory: its instances, workers, the jobs each worker runs, worker statistics, the
command queue, dialogs, service metrics and target slots.

Workers drive job states as in PanDA: a worker reported in a final state while its jobs still run fails
those jobs at once (the worker's error in the diagnostics), instead of leaving them to the lost-heartbeat
rule hours later. The other way round, a killed job queues a ``SYNC_WORKERS_KILL`` command for the
Harvester instance running its worker (``_queue_worker_kills``, called inside the kill transaction).
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any, Sequence

from pandasrv.clock import utcnow
from pandasrv.taskbuffer.codes import EC_WORKER_DONE
from pandasrv.taskbuffer.db_proxy_mods.base import transaction
from pandasrv.taskbuffer.db_proxy_mods.jobs_update import chunks
from pandasrv.taskbuffer.db_proxy_mods.watcher import WatcherMixin

# Worker columns a caller may set (the primary key harvesterID/workerID and lastUpdate are set here).
WORKER_COLUMNS: dict[str, str] = {
    "batchID": "str", "queueName": "str", "status": "str", "computingSite": "str", "nCore": "int",
    "nodeID": "str", "submitTime": "datetime", "startTime": "datetime", "endTime": "datetime", "stdOut": "str",
    "stdErr": "str", "batchLog": "str", "jdl": "str", "resourceType": "str", "nativeExitCode": "int",
    "nativeStatus": "str", "diagMessage": "str", "nJobs": "int", "computingElement": "str",
    "submissionHost": "str", "harvesterHost": "str", "errorCode": "int", "jobType": "str", "minRamCount": "int",
    "syncLevel": "int",
}
WORKER_LENGTHS = {"batchID": 80, "queueName": 80, "status": 80, "computingSite": 128, "nodeID": 80, "stdOut": 250,
                  "stdErr": 250, "batchLog": 250, "jdl": 250, "resourceType": 56, "nativeStatus": 80,
                  "diagMessage": 500, "computingElement": 128, "submissionHost": 128, "harvesterHost": 128,
                  "jobType": 32}
WORKER_FINAL_STATES = frozenset({"finished", "failed", "cancelled", "missed"})
# A worker that reached a final state keeps it for this long against late, older reports (as PanDA does).
KEEP_FINAL = _dt.timedelta(hours=3)
# Jobs a finished worker can no longer be running.
RUNNING_JOB_STATES = ("starting", "running")
COMMAND_STATES = ("new", "retrieved", "acknowledged")
KILL_COMMAND = "SYNC_WORKERS_KILL"  # Harvester's sweeper kills the listed workerIDs
SWEEP_COMMAND = "KILL_WORKERS"      # Harvester's sweeper kills the workers matching a query
INSTANCE_COLUMNS = ("startTime", "sw_version", "commit_stamp")


class HarvesterMixin(WatcherMixin):
    # --- instances ---------------------------------------------------------------------------------
    @transaction
    def harvester_heartbeat(self, harvester_id: str, owner: str | None, host: str | None,
                            data: dict[str, Any]) -> None:
        """Record that an instance is alive, with its own description (start time, version, ...)."""
        now = utcnow()
        values = {"owner": owner, "hostName": host, "lastUpdate": now,
                  **{k: data[k] for k in INSTANCE_COLUMNS if data.get(k) is not None}}
        extra = {k: v for k, v in data.items() if k not in INSTANCE_COLUMNS}
        if extra:
            values["data"] = json.dumps(extra, default=str)
        self._insert_ignoring_duplicates("harvester_instances", ("harvester_ID", "description"), "harvester_ID",
                                         {"harvester_ID": harvester_id, "description": "automatic"})
        sets = ", ".join(f"{name} = :{name}" for name in values)
        self._execute(f"UPDATE harvester_instances SET {sets} WHERE harvester_ID = :hid",
                      {**values, "hid": harvester_id})

    @transaction(readonly=True)
    def list_harvester_instances(self) -> list[dict[str, Any]]:
        columns = ("harvester_ID", "owner", "hostName", "lastUpdate", "startTime", "sw_version", "commit_stamp")
        rows = self._fetchall(f"SELECT {','.join(columns)} FROM harvester_instances ORDER BY harvester_ID")
        return [dict(zip(columns, row)) for row in rows]

    # --- workers -------------------------------------------------------------------------------------
    @transaction
    def update_workers(self, harvester_id: str, workers: Sequence[dict[str, Any]]) -> list[bool]:
        """Insert or update workers (``workerID`` plus WORKER_COLUMNS values, optional ``pandaid_list``).

        Returns one True per worker. Jobs of workers that are now in a final state and still starting or
        running are failed in the same transaction.
        """
        now = utcnow()
        ids = [int(w["workerID"]) for w in workers]
        if len(set(ids)) != len(ids):
            raise ValueError("a workerID appears twice in one update")
        for worker in workers:
            unknown = set(worker) - set(WORKER_COLUMNS) - {"workerID", "pandaid_list"}
            if unknown:
                raise ValueError(f"not settable worker columns: {', '.join(sorted(unknown))}")
        existing = self._worker_states(harvester_id, ids)
        inserts: list[dict[str, Any]] = []
        updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        ended: dict[int, dict[str, Any]] = {}
        for worker in workers:
            worker_id = int(worker["workerID"])
            values = {k: v for k, v in worker.items() if k in WORKER_COLUMNS}
            old = existing.get(worker_id)
            if old and old[0] in WORKER_FINAL_STATES and old[1] and old[1] > now - KEEP_FINAL:
                values["status"] = old[0]
            if old is None:
                values.setdefault("status", "submitted")
                inserts.append({**dict.fromkeys(WORKER_COLUMNS), **values, "harvesterID": harvester_id,
                                "workerID": worker_id, "lastUpdate": now})
            else:
                updates.setdefault(tuple(sorted(values)), []).append(
                    {**values, "hid": harvester_id, "wid": worker_id, "lastUpdate": now})
            status = values.get("status", old[0] if old else None)
            if status in WORKER_FINAL_STATES:
                ended[worker_id] = {"status": status, "errorCode": values.get("errorCode"),
                                    "diagMessage": values.get("diagMessage")}
        self._insert_rows("harvester_workers", ("harvesterID", "workerID", "lastUpdate", *WORKER_COLUMNS), inserts)
        for columns, rows in updates.items():
            sets = ", ".join(f"{c} = :{c}" for c in (*columns, "lastUpdate"))
            self._executemany(f"UPDATE harvester_workers SET {sets} WHERE harvesterID = :hid AND workerID = :wid",
                              rows)
        self._relate_jobs(harvester_id, {int(w["workerID"]): [int(p) for p in w["pandaid_list"]]
                                         for w in workers if w.get("pandaid_list")}, now)
        if ended:
            self._fail_jobs_of_ended_workers(harvester_id, ended)
        return [True] * len(workers)

    def _worker_states(self, harvester_id: str, ids: list[int]) -> dict[int, tuple[str, _dt.datetime]]:
        found: dict[int, tuple[str, _dt.datetime]] = {}
        for part in chunks(ids):
            in_ids, binds = self._in("w", part)
            rows = self._fetchall(
                f"SELECT workerID, status, lastUpdate FROM harvester_workers WHERE harvesterID = :hid"
                f" AND workerID IN {in_ids}{self._for_update}", {**binds, "hid": harvester_id})
            found.update({row[0]: (row[1], row[2]) for row in rows})
        return found

    def _relate_jobs(self, harvester_id: str, jobs_of: dict[int, list[int]], now: _dt.datetime) -> None:
        """Make each worker's job relation exactly ``jobs_of[worker]`` (the rows of other workers stay)."""
        if not jobs_of:
            return
        current: dict[int, set[int]] = {}
        for part in chunks(list(jobs_of)):
            in_ids, binds = self._in("w", part)
            for worker_id, panda_id in self._fetchall(
                    f"SELECT workerID, PandaID FROM harvester_rel_jobs_workers WHERE harvesterID = :hid"
                    f" AND workerID IN {in_ids}", {**binds, "hid": harvester_id}):
                current.setdefault(worker_id, set()).add(panda_id)
        new: list[dict[str, Any]] = []
        kept: list[dict[str, Any]] = []
        gone: list[dict[str, Any]] = []
        for worker_id, panda_ids in jobs_of.items():
            have = current.get(worker_id, set())
            for panda_id in dict.fromkeys(panda_ids):
                row = {"harvesterID": harvester_id, "workerID": worker_id, "PandaID": panda_id, "lastUpdate": now}
                (kept if panda_id in have else new).append(row)
            gone += [{"hid": harvester_id, "wid": worker_id, "pid": p} for p in have - set(panda_ids)]
        self._insert_rows("harvester_rel_jobs_workers", ("harvesterID", "workerID", "PandaID", "lastUpdate"), new)
        self._executemany("UPDATE harvester_rel_jobs_workers SET lastUpdate = :lastUpdate WHERE harvesterID ="
                          " :harvesterID AND workerID = :workerID AND PandaID = :PandaID", kept)
        self._executemany("DELETE FROM harvester_rel_jobs_workers WHERE harvesterID = :hid AND workerID = :wid"
                          " AND PandaID = :pid", gone)

    @transaction
    def relate_job_to_worker(self, harvester_id: str, worker_id: int, panda_ids: Sequence[int]) -> None:
        """Add jobs to a worker's relation (Harvester acquiring jobs for a worker); existing rows stay."""
        now = utcnow()
        have = {row[0] for row in self._fetchall(
            "SELECT PandaID FROM harvester_rel_jobs_workers WHERE harvesterID = :hid AND workerID = :wid",
            {"hid": harvester_id, "wid": worker_id})}
        self._insert_rows("harvester_rel_jobs_workers", ("harvesterID", "workerID", "PandaID", "lastUpdate"),
                          [{"harvesterID": harvester_id, "workerID": worker_id, "PandaID": p, "lastUpdate": now}
                           for p in dict.fromkeys(panda_ids) if p not in have])

    def _fail_jobs_of_ended_workers(self, harvester_id: str, ended: dict[int, dict[str, Any]]) -> None:
        rows: list[tuple[int, int, str]] = []
        for part in chunks(list(ended)):
            in_ids, binds = self._in("w", part)
            in_states, state_binds = self._in("st", RUNNING_JOB_STATES)
            rows += self._fetchall(
                f"SELECT r.workerID, j.PandaID, j.jobStatus FROM harvester_rel_jobs_workers r, jobs_active j"
                f" WHERE r.harvesterID = :hid AND r.workerID IN {in_ids} AND j.PandaID = r.PandaID"
                f" AND j.jobStatus IN {in_states}", {**binds, **state_binds, "hid": harvester_id})
        failed: list[int] = []
        for worker_id, panda_id, job_status in rows:
            worker = ended[worker_id]
            values: dict[str, Any] = {
                "taskBufferErrorCode": EC_WORKER_DONE,
                "taskBufferErrorDiag": (f"The worker was {worker['status']} while the job was {job_status} : "
                                        f"{worker['diagMessage'] or ''}")[:300]}
            if worker["errorCode"] not in (None, 0):
                values.update(supErrorCode=worker["errorCode"],
                              supErrorDiag=f"Diag from worker : {worker['diagMessage'] or ''}"[:250])
            failed += self.set_job_status([panda_id], "failed", values, expected=RUNNING_JOB_STATES)
        if failed:
            self._fail_output_files(failed)

    @transaction
    def set_worker_pilot_status(self, harvester_id: str, worker_id: int, status: str, node_id: str | None) -> bool:
        """The worker's state as its pilot sees it (``started``/``finished`` also stamp the pilot's times)."""
        values: dict[str, Any] = {"pilotStatus": status[:80], "nodeID": (node_id or None) and node_id[:80]}
        column = {"started": "pilotStartTime", "finished": "pilotEndTime"}.get(status)
        if column:
            values[column] = utcnow()
        sets = ", ".join(f"{name} = :{name}" for name in values)
        return self._execute(f"UPDATE harvester_workers SET {sets} WHERE harvesterID = :hid AND workerID = :wid",
                             {**values, "hid": harvester_id, "wid": worker_id}).rowcount > 0

    @transaction(readonly=True)
    def get_max_worker_id(self, harvester_id: str) -> int | None:
        rows = self._fetchall("SELECT MAX(workerID) FROM harvester_workers WHERE harvesterID = :hid",
                              {"hid": harvester_id})
        return None if rows[0][0] is None else int(rows[0][0])

    @transaction(readonly=True)
    def get_workers(self, harvester_id: str, worker_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """Workers of one instance (all, or the given ids), with the PandaIDs related to each."""
        columns = ("workerID", "lastUpdate", "pilotStatus", "pilotStartTime", "pilotEndTime", *WORKER_COLUMNS)
        where, binds = "harvesterID = :hid", {"hid": harvester_id}
        if worker_ids is not None:
            in_ids, more = self._in("w", worker_ids)
            where, binds = f"{where} AND workerID IN {in_ids}", {**binds, **more}
        workers = {row[0]: {**dict(zip(columns, row)), "harvesterID": harvester_id, "pandaid_list": []}
                   for row in self._fetchall(f"SELECT {','.join(columns)} FROM harvester_workers WHERE {where}"
                                             " ORDER BY workerID", binds)}
        for worker_id, panda_id in self._fetchall(
                f"SELECT workerID, PandaID FROM harvester_rel_jobs_workers WHERE {where} ORDER BY PandaID", binds):
            if worker_id in workers:
                workers[worker_id]["pandaid_list"].append(panda_id)
        return list(workers.values())

    # --- worker statistics ---------------------------------------------------------------------------
    @transaction
    def report_worker_stats(self, harvester_id: str, site: str, stats: dict[str, dict[str, dict[str, int]]]) -> None:
        """Replace an instance's worker counts at ``site``: ``{jobType: {resourceType: {status: n}}}``."""
        now = utcnow()
        self._execute("DELETE FROM harvester_worker_stats WHERE harvester_ID = :hid AND computingSite = :site",
                      {"hid": harvester_id, "site": site})
        rows = [{"harvester_ID": harvester_id, "computingSite": site, "jobType": job_type, "resourceType": rtype,
                 "status": status, "n_workers": int(n), "lastUpdate": now}
                for job_type, per_type in stats.items() for rtype, per_status in per_type.items()
                if rtype != "Undefined" for status, n in per_status.items()]
        self._insert_rows("harvester_worker_stats", ("harvester_ID", "computingSite", "jobType", "resourceType",
                                                      "status", "n_workers", "lastUpdate"), rows)

    @transaction(readonly=True)
    def get_worker_stats(self, since: _dt.datetime) -> dict[str, Any]:
        """``{site: {harvester_ID: {jobType: {resourceType: {status: n}}}}}`` of counts reported since ``since``."""
        out: dict[str, Any] = {}
        for site, hid, job_type, rtype, status, n in self._fetchall(
                "SELECT computingSite, harvester_ID, jobType, resourceType, status, SUM(n_workers)"
                " FROM harvester_worker_stats WHERE lastUpdate >= :since"
                " GROUP BY computingSite, harvester_ID, jobType, resourceType, status", {"since": since}):
            out.setdefault(site, {}).setdefault(hid, {}).setdefault(job_type, {}).setdefault(rtype, {})[status] = int(n)
        return out

    # --- commands ------------------------------------------------------------------------------------
    @transaction
    def add_harvester_command(self, harvester_id: str, command: str, params: Any = None, *,
                              ack_requested: bool = False) -> int:
        """Queue a command for an instance; returns its command_id."""
        now = utcnow()
        (command_id,) = self._conn.next_ids("harvester_command_id_seq", 1)
        self._execute(
            "INSERT INTO harvester_commands (command_id, harvester_ID, command, params, ack_requested, status,"
            " creation_date, status_date) VALUES (:id, :hid, :command, :params, :ack, 'new', :now, :now)",
            {"id": command_id, "hid": harvester_id, "command": command[:64],
             "params": None if params is None else json.dumps(params), "ack": 1 if ack_requested else 0, "now": now})
        return int(command_id)

    @transaction
    def acquire_harvester_commands(self, harvester_id: str, n: int) -> list[dict[str, Any]]:
        """Hand out up to ``n`` of an instance's oldest new commands (they become ``retrieved``), once."""
        if n <= 0:
            return []
        lock = "" if self._conn.backend == "sqlite" else " FOR UPDATE SKIP LOCKED"
        rows = self._fetchall(
            "SELECT command_id, command, params, ack_requested, creation_date FROM harvester_commands"
            " WHERE harvester_ID = :hid AND status = 'new' ORDER BY creation_date, command_id"
            f" LIMIT {int(n)}{lock}", {"hid": harvester_id})
        if not rows:
            return []
        in_ids, binds = self._in("c", [row[0] for row in rows])
        self._execute(f"UPDATE harvester_commands SET status = 'retrieved', status_date = :now"
                      f" WHERE command_id IN {in_ids}", {**binds, "now": utcnow()})
        return [{"command_id": cid, "command": command, "params": None if params is None else json.loads(params),
                 "ack_requested": bool(ack), "creation_date": created.isoformat()}
                for cid, command, params, ack, created in rows]

    @transaction
    def acknowledge_harvester_commands(self, command_ids: Sequence[int]) -> int:
        """Mark retrieved commands acknowledged; returns how many were."""
        done = 0
        for part in chunks(list(command_ids)):
            in_ids, binds = self._in("c", part)
            done += self._execute(f"UPDATE harvester_commands SET status = 'acknowledged', status_date = :now"
                                  f" WHERE command_id IN {in_ids}", {**binds, "now": utcnow()}).rowcount
        return done

    @transaction(readonly=True)
    def list_harvester_commands(self, harvester_id: str) -> list[dict[str, Any]]:
        columns = ("command_id", "command", "params", "ack_requested", "status", "creation_date", "status_date")
        rows = self._fetchall(f"SELECT {','.join(columns)} FROM harvester_commands WHERE harvester_ID = :hid"
                              " ORDER BY command_id", {"hid": harvester_id})
        return [{**dict(zip(columns, row)), "params": None if row[2] is None else json.loads(row[2])} for row in rows]

    def _queue_worker_kills(self, panda_ids: Sequence[int]) -> list[int]:
        """Inside the kill transaction: one ``SYNC_WORKERS_KILL`` command per instance whose live workers run
        one of ``panda_ids``; returns the command IDs."""
        workers: dict[str, set[int]] = {}
        for part in chunks(list(panda_ids)):
            in_ids, binds = self._in("id", part)
            in_final, final_binds = self._in("st", sorted(WORKER_FINAL_STATES))
            for hid, worker_id in self._fetchall(
                    f"SELECT r.harvesterID, r.workerID FROM harvester_rel_jobs_workers r, harvester_workers w"
                    f" WHERE r.PandaID IN {in_ids} AND w.harvesterID = r.harvesterID AND w.workerID = r.workerID"
                    f" AND w.status NOT IN {in_final}", {**binds, **final_binds}):
                workers.setdefault(hid, set()).add(worker_id)
        return [self.add_harvester_command(hid, KILL_COMMAND, sorted(ids), ack_requested=True)
                for hid, ids in sorted(workers.items())]

    @transaction
    def sweep_queue(self, queue: str, statuses: list[str], computing_elements: list[str] | str,
                    submission_hosts: list[str]) -> str:
        """PanDA's sweepPQ: a ``KILL_WORKERS`` command for the instance serving ``queue``; "OK" or why not."""
        rows = self._fetchall("SELECT data FROM queues WHERE name = :name", {"name": queue})
        if not rows:
            return "Error retrieving queue configuration from DB"
        data = json.loads(rows[0][0] or "{}")
        harvester_id = data.get("harvester") or self._latest_harvester_at(queue)
        if not harvester_id:
            return "Queue not served by any harvester ID"
        if computing_elements != "ALL":
            known = {str(ce.get("ce_endpoint")) for ce in data.get("queues") or [] if isinstance(ce, dict)}
            computing_elements = [ce for ce in computing_elements if not known or ce in known]
        self.add_harvester_command(harvester_id, SWEEP_COMMAND, {
            "status": statuses, "computingSite": [queue], "computingElement": computing_elements,
            "submissionHost": submission_hosts})
        return "OK"

    def _latest_harvester_at(self, queue: str) -> str | None:
        rows = self._fetchall("SELECT harvesterID FROM harvester_workers WHERE computingSite = :site"
                              " ORDER BY lastUpdate DESC LIMIT 1", {"site": queue})
        return rows[0][0] if rows else None

    # --- dialogs, service metrics, target slots ------------------------------------------------------
    @transaction
    def add_harvester_dialogs(self, harvester_id: str, dialogs: Sequence[dict[str, Any]]) -> None:
        """Store dialog messages; a message with a diagID already stored replaces it."""
        for part in chunks([int(d["diagID"]) for d in dialogs]):
            in_ids, binds = self._in("d", part)
            self._execute(f"DELETE FROM harvester_dialogs WHERE harvester_id = :hid AND diagID IN {in_ids}",
                          {**binds, "hid": harvester_id})
        latest = {int(d["diagID"]): d for d in dialogs}
        self._insert_rows("harvester_dialogs", ("harvester_id", "diagID", "moduleName", "identifier", "creationTime",
                                                 "messageLevel", "diagMessage"),
                          [{**d, "harvester_id": harvester_id, "diagID": i} for i, d in latest.items()])

    @transaction
    def add_service_metrics(self, harvester_id: str, metrics: Sequence[tuple[_dt.datetime, str, str]]) -> None:
        """Store ``(creation_time, host, metrics JSON)`` triplets; a repeated triplet key replaces the old one."""
        latest = {(host, created): text for created, host, text in metrics}
        for (host, created) in latest:
            self._execute("DELETE FROM harvester_metrics WHERE harvester_ID = :hid AND harvester_host = :host"
                          " AND creation_time = :created", {"hid": harvester_id, "host": host, "created": created})
        self._insert_rows("harvester_metrics", ("harvester_ID", "harvester_host", "creation_time", "metrics"),
                          [{"harvester_ID": harvester_id, "harvester_host": host, "creation_time": created,
                            "metrics": text} for (host, created), text in latest.items()])

    @transaction(readonly=True)
    def list_harvester_dialogs(self, harvester_id: str) -> list[dict[str, Any]]:
        columns = ("diagID", "moduleName", "identifier", "creationTime", "messageLevel", "diagMessage")
        rows = self._fetchall(f"SELECT {','.join(columns)} FROM harvester_dialogs WHERE harvester_id = :hid"
                              " ORDER BY diagID", {"hid": harvester_id})
        return [dict(zip(columns, row)) for row in rows]

    @transaction(readonly=True)
    def list_service_metrics(self, harvester_id: str) -> list[dict[str, Any]]:
        columns = ("harvester_host", "creation_time", "metrics")
        rows = self._fetchall(f"SELECT {','.join(columns)} FROM harvester_metrics WHERE harvester_ID = :hid"
                              " ORDER BY creation_time", {"hid": harvester_id})
        return [dict(zip(columns, row)) for row in rows]

    @transaction
    def set_target_slots(self, queue: str, slots: int, gshare: str | None, resource_type: str | None,
                         valid_days: int | None) -> str:
        """PanDA's setNumSlotsForWP: set (or with -1 remove) the target slots of a queue/share/resource type."""
        now = utcnow()
        key = {"queue": queue, "gshare": gshare or "", "rtype": resource_type or ""}
        where = "pandaQueueName = :queue AND gshare = :gshare AND resourceType = :rtype"
        self._execute(f"DELETE FROM harvester_slots WHERE {where}", key)
        if slots != -1:
            expires = None if valid_days is None else now + _dt.timedelta(days=valid_days)
            self._execute("INSERT INTO harvester_slots (pandaQueueName, gshare, resourceType, numSlots,"
                          " modificationTime, expirationTime) VALUES (:queue, :gshare, :rtype, :slots, :now, :expires)",
                          {**key, "slots": slots, "now": now, "expires": expires})
        return f"set numSlots={slots} for PQ={queue} gshare={gshare} resource={resource_type}"

    @transaction(readonly=True)
    def get_target_slots(self, queue: str) -> list[dict[str, Any]]:
        columns = ("gshare", "resourceType", "numSlots", "modificationTime", "expirationTime")
        rows = self._fetchall(f"SELECT {','.join(columns)} FROM harvester_slots WHERE pandaQueueName = :queue"
                              " ORDER BY gshare, resourceType", {"queue": queue})
        return [{**dict(zip(columns, row)), "gshare": row[0] or None, "resourceType": row[1] or None} for row in rows]
