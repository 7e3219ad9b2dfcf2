"""TaskBuffer: the high-level database API the web layer and the daemon call.

It holds no SQL. Each method checks a proxy out of the pool for the duration of one DBProxy call
(one transaction). To expose a new DBProxy method, add a one-line method that calls ``self._call``
with the same name, under the heading of its feature area.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from pandasrv.taskbuffer.db_proxy_mods.jobs_claim import DEFAULT_LABELS
from pandasrv.taskbuffer.job_spec import JobSpec
from pandasrv.taskbuffer.proxy_pool import ProxyPool

__all__ = ["TaskBuffer"]


class TaskBuffer:
    """One per process, built from Settings."""

    def __init__(self, settings: Any, *, pool: ProxyPool | None = None) -> None:
        self.settings = settings
        self.pool = pool or ProxyPool(settings)

    def close(self) -> None:
        self.pool.close()

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run DBProxy method ``name`` on a checked-out proxy (in-process or across a ConBridge)."""
        with self.pool.get() as proxy:
            return getattr(proxy, name)(*args, **kwargs)

    def ping(self) -> bool:
        return bool(self._call("ping"))

    # --- jobs: submit, claim, heartbeat --------------------------------------------------------
    def insert_jobs(self, jobs: list[JobSpec], status: str = "defined") -> list[JobSpec]:
        """Store jobs; returns them with their PandaIDs, row_IDs and final LFNs.

        Through a ConBridge the returned objects are copies: use the return value, not the arguments.
        """
        return self._call("insert_jobs", jobs, status)

    def claim_jobs(self, site: str, n: int = 1, *, labels: Sequence[str] = DEFAULT_LABELS, **filters: Any) -> list[JobSpec]:
        return self._call("claim_jobs", site, n, labels=labels, **filters)

    def requeue_undelivered(self, claims: Sequence[tuple[int, int]], reason: str) -> list[int]:
        return self._call("requeue_undelivered", list(claims), reason)

    def requeue_unconfirmed(self, before: Any, max_requeues: int, reason: str, limit: int = 1000,
                            after: int = 0) -> tuple[list[int], int | None]:
        return self._call("requeue_unconfirmed", before, max_requeues, reason, limit, after)

    def update_job(self, panda_id: int, status: str, values: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        return self._call("update_job", panda_id, status, values, **kwargs)

    # --- jobs: status ------------------------------------------------------------------------------
    def set_job_status(self, panda_ids: Sequence[int], new_status: str, values: dict[str, Any] | None = None, *,
                       expected: Iterable[str] | None = None) -> list[int]:
        return self._call("set_job_status", list(panda_ids), new_status, values,
                          expected=None if expected is None else list(expected))

    def get_job_status(self, panda_ids: Sequence[int]) -> dict[int, tuple[str, int, str | None]]:
        return self._call("get_job_status", list(panda_ids))

    def peek_jobs(self, panda_ids: Sequence[int], *, with_files: bool = True, archived: bool = True) -> list[JobSpec | None]:
        return self._call("peek_jobs", list(panda_ids), with_files=with_files, archived=archived)

    def kill_jobs(self, panda_ids: Sequence[int], *, user: str, is_production: bool,
                  code: int | None = None) -> list[bool]:
        return self._call("kill_jobs", list(panda_ids), user=user, is_production=is_production, code=code)

    def reassign_jobs(self, panda_ids: Sequence[int], *, user: str, is_production: bool,
                      site: str | None = None) -> list[bool]:
        return self._call("reassign_jobs", list(panda_ids), user=user, is_production=is_production, site=site)

    # --- job output reports (Adder) ----------------------------------------------------------------
    def insert_output_report(self, panda_id: int, attempt_nr: int, label: str | None, status: str, data: str) -> None:
        self._call("insert_output_report", panda_id, attempt_nr, label, status, data)

    def lock_output_reports(self, owner: str, n: int, lock_seconds: float) -> list[dict[str, Any]]:
        return self._call("lock_output_reports", owner, n, lock_seconds)

    def delete_output_report(self, panda_id: int, attempt_nr: int) -> bool:
        return self._call("delete_output_report", panda_id, attempt_nr)

    def unlock_output_report(self, panda_id: int, attempt_nr: int) -> bool:
        return self._call("unlock_output_report", panda_id, attempt_nr)

    # --- process-lock leases (daemon) --------------------------------------------------------------
    def acquire_lease(self, component: str, owner: str, ttl: float) -> bool:
        return self._call("acquire_lease", component, owner, ttl)

    def renew_lease(self, component: str, owner: str, ttl: float) -> bool:
        return self._call("renew_lease", component, owner, ttl)

    def release_lease(self, component: str, owner: str) -> bool:
        return self._call("release_lease", component, owner)

    def get_lease_expiry(self, component: str) -> Any:
        return self._call("get_lease_expiry", component)

    def release_work_locks(self, owner_prefix: str) -> int:
        return self._call("release_work_locks", owner_prefix)

    # --- daemon agents: Watcher, Setupper/Activator/Adder/Closer/Finisher, retention, add_sub --------
    def sweep_jobs(self, rule: dict[str, Any]) -> list[int]:
        return self._call("sweep_jobs", rule)

    def jobs_in_status(self, status: str, *, modified_before: Any = None, limit: int = 1000) -> list[JobSpec]:
        return self._call("jobs_in_status", status, modified_before=modified_before, limit=limit)

    def set_file_guids(self, guids: dict[int, str]) -> None:
        self._call("set_file_guids", guids)

    def finalise_jobs(self, outcomes: list[dict[str, Any]], expected: Sequence[str]) -> list[int]:
        return self._call("finalise_jobs", outcomes, list(expected))

    def dataset_file_states(self, datasets: Sequence[str]) -> dict[str, dict[str, int]]:
        return self._call("dataset_file_states", list(datasets))

    def set_dataset_status(self, name: str, dataset_type: str, status: str) -> None:
        self._call("set_dataset_status", name, dataset_type, status)

    def mark_inputs_ready(self, dataset: str) -> list[int]:
        return self._call("mark_inputs_ready", dataset)

    def purge_archived_jobs(self, before: Any, batch_size: int) -> int:
        return self._call("purge_archived_jobs", before, batch_size)

    def purge_history(self, table: str, before: Any, batch_size: int) -> int:
        return self._call("purge_history", table, before, batch_size)

    def record_daemon_run(self, script: str, host: str, started: Any, ended: Any, result: str,
                          message: str | None = None) -> None:
        self._call("record_daemon_run", script, host, started, ended, result, message)

    def daemon_runs(self) -> list[dict[str, Any]]:
        return self._call("daemon_runs")

    def update_site_starts(self, since: Any, now: Any) -> dict[str, tuple[int, Any]]:
        return self._call("update_site_starts", since, now)

    # --- user secrets (sealed text; logic/secrets.py encrypts) ------------------------------------
    def get_secret_row(self, owner: str) -> tuple[str, int] | None:
        return self._call("get_secret_row", owner)

    def put_secret_row(self, owner: str, data: str | None, version: int | None) -> bool:
        return self._call("put_secret_row", owner, data, version)

    # --- web meta data: queues, resource types, users, sandbox files, statistics, config -------------
    def add_queue(self, name: str, site: str, status: str, data: dict[str, Any]) -> None:
        self._call("add_queue", name, site, status, data)

    def update_queue(self, name: str, *, site: str | None = None, status: str | None = None,
                     data: dict[str, Any] | None = None) -> bool:
        return self._call("update_queue", name, site=site, status=status, data=data)

    def get_queue(self, name: str) -> dict[str, Any] | None:
        return self._call("get_queue", name)

    def list_queues(self) -> list[dict[str, Any]]:
        return self._call("list_queues")

    def get_resource_types(self) -> list[dict[str, Any]]:
        return self._call("get_resource_types")

    def set_resource_type(self, name: str, min_core: int | None, max_core: int | None,
                          min_ram_per_core: int | None, max_ram_per_core: int | None) -> None:
        self._call("set_resource_type", name, min_core, max_core, min_ram_per_core, max_ram_per_core)

    def remove_resource_type(self, name: str) -> bool:
        return self._call("remove_resource_type", name)

    def get_banned_users(self) -> list[str]:
        return self._call("get_banned_users")

    def set_user_status(self, name: str, status: str | None, dn: str | None = None) -> None:
        self._call("set_user_status", name, status, dn)

    def reserve_user_ids(self, name: str, dn: str | None, job_definition_id: int | None = None,
                         jobset_id: int | None = None) -> tuple[int, int]:
        return tuple(self._call("reserve_user_ids", name, dn, job_definition_id, jobset_id))  # type: ignore[return-value]

    def register_sandbox_file(self, file_name: str, size: int, checksum: str, host: str, dn: str | None) -> None:
        self._call("register_sandbox_file", file_name, size, checksum, host, dn)

    def find_sandbox_file(self, size: int, checksum: str) -> dict[str, Any] | None:
        return self._call("find_sandbox_file", size, checksum)

    def store_cache_file(self, name: str, owner: str, data: bytes, *, overwrite: bool = False,
                         checksum: str | None = None) -> str:
        return self._call("store_cache_file", name, owner, data, overwrite=overwrite, checksum=checksum)

    def cache_file_info(self, name: str) -> dict[str, Any] | None:
        return self._call("cache_file_info", name)

    def cache_file_chunk(self, name: str, version: int, seq: int) -> bytes | None:
        return self._call("cache_file_chunk", name, version, seq)

    def purge_cache_files(self, before: Any, batch_size: int) -> int:
        return self._call("purge_cache_files", before, batch_size)

    def job_statistics(self, by: Sequence[str] = ("computingSite", "jobStatus"),
                       labels: Sequence[str] | None = None, archived_since: Any = None) -> list[tuple[Any, ...]]:
        return self._call("job_statistics", list(by), None if labels is None else list(labels), archived_since)

    def count_recent_sent(self, site: str, since: Any) -> int:
        return self._call("count_recent_sent", site, since)

    def set_config_value(self, app: str, component: str, key: str, value: str, *, vo: str = "",
                         value_type: str = "str") -> None:
        self._call("set_config_value", app, component, key, value, vo=vo, value_type=value_type)

    def get_config_values(self, app: str, component: str, vo: str = "") -> dict[str, str]:
        return self._call("get_config_values", app, component, vo)

    def set_job_command(self, panda_id: int, command: str, *, user: str | None, is_production: bool) -> str:
        return self._call("set_job_command", panda_id, command, user=user, is_production=is_production)

    def set_debug_mode(self, panda_id: int, on: bool, *, user: str | None, is_production: bool) -> str:
        return self._call("set_debug_mode", panda_id, on, user=user, is_production=is_production)

    # --- Harvester: instances, workers, statistics, commands, dialogs, metrics, slots ------------------
    def harvester_heartbeat(self, harvester_id: str, owner: str | None, host: str | None,
                            data: dict[str, Any]) -> None:
        self._call("harvester_heartbeat", harvester_id, owner, host, data)

    def list_harvester_instances(self) -> list[dict[str, Any]]:
        return self._call("list_harvester_instances")

    def update_workers(self, harvester_id: str, workers: list[dict[str, Any]]) -> list[bool]:
        return self._call("update_workers", harvester_id, workers)

    def relate_job_to_worker(self, harvester_id: str, worker_id: int, panda_ids: Sequence[int]) -> None:
        self._call("relate_job_to_worker", harvester_id, worker_id, list(panda_ids))

    def set_worker_pilot_status(self, harvester_id: str, worker_id: int, status: str, node_id: str | None) -> bool:
        return self._call("set_worker_pilot_status", harvester_id, worker_id, status, node_id)

    def get_max_worker_id(self, harvester_id: str) -> int | None:
        return self._call("get_max_worker_id", harvester_id)

    def get_workers(self, harvester_id: str, worker_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        return self._call("get_workers", harvester_id, None if worker_ids is None else list(worker_ids))

    def report_worker_stats(self, harvester_id: str, site: str, stats: dict[str, Any]) -> None:
        self._call("report_worker_stats", harvester_id, site, stats)

    def get_worker_stats(self, since: Any) -> dict[str, Any]:
        return self._call("get_worker_stats", since)

    def add_harvester_command(self, harvester_id: str, command: str, params: Any = None, *,
                              ack_requested: bool = False) -> int:
        return self._call("add_harvester_command", harvester_id, command, params, ack_requested=ack_requested)

    def acquire_harvester_commands(self, harvester_id: str, n: int) -> list[dict[str, Any]]:
        return self._call("acquire_harvester_commands", harvester_id, n)

    def acknowledge_harvester_commands(self, command_ids: Sequence[int]) -> int:
        return self._call("acknowledge_harvester_commands", list(command_ids))

    def list_harvester_commands(self, harvester_id: str) -> list[dict[str, Any]]:
        return self._call("list_harvester_commands", harvester_id)

    def sweep_queue(self, queue: str, statuses: list[str], computing_elements: Any, submission_hosts: list[str]) -> str:
        return self._call("sweep_queue", queue, statuses, computing_elements, submission_hosts)

    def add_harvester_dialogs(self, harvester_id: str, dialogs: list[dict[str, Any]]) -> None:
        self._call("add_harvester_dialogs", harvester_id, dialogs)

    def list_harvester_dialogs(self, harvester_id: str) -> list[dict[str, Any]]:
        return self._call("list_harvester_dialogs", harvester_id)

    def add_service_metrics(self, harvester_id: str, metrics: list[tuple[Any, str, str]]) -> None:
        self._call("add_service_metrics", harvester_id, metrics)

    def list_service_metrics(self, harvester_id: str) -> list[dict[str, Any]]:
        return self._call("list_service_metrics", harvester_id)

    def set_target_slots(self, queue: str, slots: int, gshare: str | None, resource_type: str | None,
                         valid_days: int | None) -> str:
        return self._call("set_target_slots", queue, slots, gshare, resource_type, valid_days)

    def get_target_slots(self, queue: str) -> list[dict[str, Any]]:
        return self._call("get_target_slots", queue)

    # --- monitor (read-only) ------------------------------------------------------------------------
    def monitor_job_counts(self, by: Sequence[str], filters: dict[str, str] | None = None,
                           archived: bool = True) -> list[tuple[Any, ...]]:
        return self._call("monitor_job_counts", list(by), filters, archived)

    def monitor_list_jobs(self, filters: dict[str, str], *, since: Any = None, sort: str = "-PandaID",
                          after: tuple[Any, ...] | None = None, limit: int = 50) -> list[dict[str, Any]]:
        return self._call("monitor_list_jobs", filters, since=since, sort=sort, after=after, limit=limit)

    def monitor_state_timeline(self, start: Any, bucket: Any, buckets: int) -> list[tuple[int, str, int]]:
        return self._call("monitor_state_timeline", start, bucket, buckets)

    def monitor_queue_changes(self, start: Any, end: Any) -> list[tuple[str, str, int]]:
        return self._call("monitor_queue_changes", start, end)

    def monitor_recent_errors(self, limit: int = 20) -> list[dict[str, Any]]:
        return self._call("monitor_recent_errors", limit)

    def monitor_status_history(self, panda_id: int) -> list[dict[str, Any]]:
        return self._call("monitor_status_history", panda_id)

    def monitor_leases(self) -> list[dict[str, Any]]:
        return self._call("monitor_leases")

    def monitor_site_data(self) -> dict[str, dict[str, Any]]:
        return self._call("monitor_site_data")

    # --- diagnostics -----------------------------------------------------------------------------
    def sleep(self, seconds: float) -> None:
        """Hold one DB session busy (checks db_timeout end to end)."""
        self._call("sleep", seconds)

    def session_id(self) -> int:
        """The server's id of the session that answered (daemon tests: sessions survive across runs)."""
        return self._call("session_id")
