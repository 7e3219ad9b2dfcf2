"""TaskBuffer: the high-level database API the web layer, the daemon and the dataservice call.

It holds no SQL. Each Store method checks a proxy out of the pool for the duration of one DBProxy
call (one transaction) and calls the method of the same name on it. ``pooled`` writes that call once;
each line below names its method through a typed attribute access on the Store protocol, so mypy
checks every call site against the protocol's signature and checks TaskBuffer against Store as a
whole. To add a method, see ``store.py`` (and docs/internals.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Concatenate, ParamSpec, TypeVar

from pandasrv.taskbuffer.proxy_pool import ProxyPool
from pandasrv.taskbuffer.store import Store

if TYPE_CHECKING:
    from pandasrv.config import Settings

__all__ = ["TaskBuffer"]

P = ParamSpec("P")
R = TypeVar("R")


def pooled(pick: Callable[[Store], Callable[P, R]]) -> Callable[Concatenate[TaskBuffer, P], R]:
    """A TaskBuffer method with the signature of the Store method ``pick`` selects, run on a pooled proxy."""

    def call(self: TaskBuffer, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.pool.get() as proxy:
            return pick(proxy)(*args, **kwargs)

    return call


class TaskBuffer:
    """One per process, built from Settings."""

    def __init__(self, settings: Settings, *, pool: ProxyPool | None = None) -> None:
        self.settings = settings
        self.pool = pool or ProxyPool(settings)

    def close(self) -> None:
        """Close every proxy of the pool (ConBridge children stop)."""
        self.pool.close()

    ping = pooled(lambda store: store.ping)

    # --- jobs: submit, claim, heartbeat, status, kill/reassign ------------------------------------------
    # insert_jobs returns the PandaIDs; through a ConBridge the child's copies get them, not the arguments.
    insert_jobs = pooled(lambda store: store.insert_jobs)
    claim_jobs = pooled(lambda store: store.claim_jobs)
    requeue_undelivered = pooled(lambda store: store.requeue_undelivered)
    requeue_unconfirmed = pooled(lambda store: store.requeue_unconfirmed)
    update_job = pooled(lambda store: store.update_job)
    update_jobs = pooled(lambda store: store.update_jobs)
    set_job_status = pooled(lambda store: store.set_job_status)
    get_job_status = pooled(lambda store: store.get_job_status)
    peek_jobs = pooled(lambda store: store.peek_jobs)
    kill_jobs = pooled(lambda store: store.kill_jobs)
    reassign_jobs = pooled(lambda store: store.reassign_jobs)

    # --- job output reports (Adder) ---------------------------------------------------------------------
    insert_output_report = pooled(lambda store: store.insert_output_report)
    lock_output_reports = pooled(lambda store: store.lock_output_reports)
    delete_output_report = pooled(lambda store: store.delete_output_report)
    unlock_output_report = pooled(lambda store: store.unlock_output_report)

    # --- process-lock leases (daemon) -------------------------------------------------------------------
    acquire_lease = pooled(lambda store: store.acquire_lease)
    renew_lease = pooled(lambda store: store.renew_lease)
    release_lease = pooled(lambda store: store.release_lease)
    get_lease_expiry = pooled(lambda store: store.get_lease_expiry)
    release_work_locks = pooled(lambda store: store.release_work_locks)

    # --- daemon agents: Watcher, Setupper/Activator/Adder/Closer/Finisher, retention, add_sub -----------
    sweep_jobs = pooled(lambda store: store.sweep_jobs)
    jobs_in_status = pooled(lambda store: store.jobs_in_status)
    set_file_guids = pooled(lambda store: store.set_file_guids)
    finalise_jobs = pooled(lambda store: store.finalise_jobs)
    dataset_file_states = pooled(lambda store: store.dataset_file_states)
    set_dataset_status = pooled(lambda store: store.set_dataset_status)
    mark_inputs_ready = pooled(lambda store: store.mark_inputs_ready)
    purge_archived_jobs = pooled(lambda store: store.purge_archived_jobs)
    purge_history = pooled(lambda store: store.purge_history)
    purge_aged_rows = pooled(lambda store: store.purge_aged_rows)
    record_daemon_run = pooled(lambda store: store.record_daemon_run)
    daemon_runs = pooled(lambda store: store.daemon_runs)
    update_site_starts = pooled(lambda store: store.update_site_starts)

    # --- user secrets (sealed text; logic/secrets.py encrypts) ------------------------------------------
    get_secret_row = pooled(lambda store: store.get_secret_row)
    put_secret_row = pooled(lambda store: store.put_secret_row)

    # --- web meta data: queues, resource types, users, sandbox and cache files, statistics, config ------
    add_queue = pooled(lambda store: store.add_queue)
    update_queue = pooled(lambda store: store.update_queue)
    get_queue = pooled(lambda store: store.get_queue)
    list_queues = pooled(lambda store: store.list_queues)
    get_resource_types = pooled(lambda store: store.get_resource_types)
    set_resource_type = pooled(lambda store: store.set_resource_type)
    remove_resource_type = pooled(lambda store: store.remove_resource_type)
    get_banned_users = pooled(lambda store: store.get_banned_users)
    set_user_status = pooled(lambda store: store.set_user_status)
    reserve_user_ids = pooled(lambda store: store.reserve_user_ids)
    register_sandbox_file = pooled(lambda store: store.register_sandbox_file)
    find_sandbox_file = pooled(lambda store: store.find_sandbox_file)
    store_cache_file = pooled(lambda store: store.store_cache_file)
    cache_file_info = pooled(lambda store: store.cache_file_info)
    cache_file_chunk = pooled(lambda store: store.cache_file_chunk)
    purge_cache_files = pooled(lambda store: store.purge_cache_files)
    job_statistics = pooled(lambda store: store.job_statistics)
    count_recent_sent = pooled(lambda store: store.count_recent_sent)
    set_config_value = pooled(lambda store: store.set_config_value)
    get_config_values = pooled(lambda store: store.get_config_values)
    set_job_command = pooled(lambda store: store.set_job_command)
    set_debug_mode = pooled(lambda store: store.set_debug_mode)

    # --- Harvester: instances, workers, statistics, commands, dialogs, metrics, slots -------------------
    harvester_heartbeat = pooled(lambda store: store.harvester_heartbeat)
    list_harvester_instances = pooled(lambda store: store.list_harvester_instances)
    update_workers = pooled(lambda store: store.update_workers)
    relate_job_to_worker = pooled(lambda store: store.relate_job_to_worker)
    set_worker_pilot_status = pooled(lambda store: store.set_worker_pilot_status)
    get_max_worker_id = pooled(lambda store: store.get_max_worker_id)
    get_workers = pooled(lambda store: store.get_workers)
    report_worker_stats = pooled(lambda store: store.report_worker_stats)
    get_worker_stats = pooled(lambda store: store.get_worker_stats)
    add_harvester_command = pooled(lambda store: store.add_harvester_command)
    acquire_harvester_commands = pooled(lambda store: store.acquire_harvester_commands)
    acknowledge_harvester_commands = pooled(lambda store: store.acknowledge_harvester_commands)
    list_harvester_commands = pooled(lambda store: store.list_harvester_commands)
    sweep_queue = pooled(lambda store: store.sweep_queue)
    add_harvester_dialogs = pooled(lambda store: store.add_harvester_dialogs)
    list_harvester_dialogs = pooled(lambda store: store.list_harvester_dialogs)
    add_service_metrics = pooled(lambda store: store.add_service_metrics)
    list_service_metrics = pooled(lambda store: store.list_service_metrics)
    set_target_slots = pooled(lambda store: store.set_target_slots)
    get_target_slots = pooled(lambda store: store.get_target_slots)

    # --- monitor (read-only) ----------------------------------------------------------------------------
    monitor_job_counts = pooled(lambda store: store.monitor_job_counts)
    monitor_list_jobs = pooled(lambda store: store.monitor_list_jobs)
    monitor_state_timeline = pooled(lambda store: store.monitor_state_timeline)
    monitor_queue_changes = pooled(lambda store: store.monitor_queue_changes)
    monitor_recent_errors = pooled(lambda store: store.monitor_recent_errors)
    monitor_status_history = pooled(lambda store: store.monitor_status_history)
    monitor_leases = pooled(lambda store: store.monitor_leases)
    monitor_site_data = pooled(lambda store: store.monitor_site_data)

    # --- diagnostics: hold one session busy (checks db_timeout end to end); the session's server id -----
    sleep = pooled(lambda store: store.sleep)
    session_id = pooled(lambda store: store.session_id)


if TYPE_CHECKING:
    _implements_store: type[Store] = TaskBuffer
