"""The v1 pilot API (``/api/v1/pilot/*``): snake_case parameters, JSON envelope replies.

Same work as the legacy dispatcher (``dispatch.py``); the role test is PanDA's strict one.
"""

from __future__ import annotations

import json
from typing import Any

from pandasrv.logic.constants import SC_INVALID, SC_SUCCESS
from pandasrv.taskbuffer.claim_request import ClaimRequest
from pandasrv.taskbuffer.job_states import PILOT_STATES
from pandasrv.web.codecs import fail, ok
from pandasrv.web.context import Call
from pandasrv.web.dispatch import acquire, claim_owner, harvester_worker, heartbeat, heartbeats, ids_status
from pandasrv.web.registry import endpoint

# v1 update_job parameter -> legacy updateJob name understood by dispatch.heartbeat_values
_HEARTBEAT_NAMES = {
    "node": "node", "cpu_consumption_time": "cpuConsumptionTime", "cpu_consumption_unit": "cpuConsumptionUnit",
    "scheduler_id": "schedulerID", "pilot_id": "pilotID", "cpu_conversion_factor": "cpuConversionFactor",
    "trans_exit_code": "transExitCode", "pilot_error_code": "pilotErrorCode", "pilot_error_diag": "pilotErrorDiag",
    "exe_error_code": "exeErrorCode", "exe_error_diag": "exeErrorDiag", "pilot_timing": "pilotTiming",
    "start_time": "startTime", "end_time": "endTime", "n_events": "nEvents", "n_input_files": "nInputFiles",
    "batch_id": "batchID", "attempt_nr": "attemptNr", "job_metrics": "jobMetrics", "job_sub_status": "jobSubStatus",
    "core_count": "coreCount", "max_rss": "maxRSS", "max_vmem": "maxVMEM", "max_swap": "maxSWAP",
    "max_pss": "maxPSS", "avg_rss": "avgRSS", "avg_vmem": "avgVMEM", "avg_swap": "avgSWAP", "avg_pss": "avgPSS",
    "tot_rchar": "totRCHAR", "tot_wchar": "totWCHAR", "tot_rbytes": "totRBYTES", "tot_wbytes": "totWBYTES",
    "rate_rchar": "rateRCHAR", "rate_wchar": "rateWCHAR", "rate_rbytes": "rateRBYTES", "rate_wbytes": "rateWBYTES",
    "cpu_architecture_level": "cpu_architecture_level", "grid": "grid", "source_site": "source_site",
    "destination_site": "destination_site", "job_output_report": "xml", "meta_data": "metaData",
    "pilot_log": "pilotLog", "stdout": "stdout",
}


def _params(values: dict[str, Any]) -> dict[str, Any]:
    return {_HEARTBEAT_NAMES[k]: v for k, v in values.items() if k in _HEARTBEAT_NAMES and v is not None}


def _refused_status(job_status: Any) -> dict[str, Any] | None:
    if job_status not in PILOT_STATES:
        return fail(f"invalid job_status {job_status!r}", {"StatusCode": SC_INVALID})
    return None


def _envelope(reply: dict[str, Any]) -> dict[str, Any]:
    if reply["StatusCode"] != SC_SUCCESS:
        return fail(reply.get("errorDialog", "update failed"), reply)
    return ok({"StatusCode": SC_SUCCESS, "command": None if reply["command"] == "NULL" else reply["command"]})


def _update(call: Call, job_id: Any, job_status: Any, values: dict[str, Any]) -> dict[str, Any]:
    return _refused_status(job_status) or _envelope(heartbeat(call, job_id, str(job_status), _params(values)))


@endpoint("pilot/acquire_jobs", role="production", http=("POST",))
def acquire_jobs(call: Call, site_name: str, timeout: int = 60, memory: int | None = None,
                 disk_space: int | None = None, prod_source_label: str | None = None, node: str | None = None,
                 computing_element: str | None = None, prod_user_id: str | None = None,
                 get_proxy_key: bool = False, task_id: int | None = None, n_jobs: int = 1,
                 background: bool | None = None, resource_type: str | None = None, harvester_id: str | None = None,
                 worker_id: int | None = None, scheduler_id: str | None = None, job_type: str | None = None,
                 via_topic: bool | None = None, remaining_time: int | None = None) -> dict[str, Any]:
    """Claim up to ``n_jobs`` activated jobs of ``site_name``; data is ``{"StatusCode": 0, "jobs": [...]}``."""
    request = ClaimRequest(
        site=site_name, n=n_jobs, label=prod_source_label, memory=memory or 0, disk=disk_space or 0,
        walltime=remaining_time or 0, resource_type=resource_type, owner=claim_owner(call, prod_user_id, True),
        task_id=task_id, background=bool(background), node=node, computing_element=computing_element,
        scheduler_id=scheduler_id or harvester_id)
    acquired = acquire(call, request, harvester_worker(harvester_id, worker_id))
    if not acquired.jobs:
        return fail("No jobs in PanDA", {"StatusCode": acquired.status, "errorDialog": acquired.message})
    return ok({"StatusCode": SC_SUCCESS, "jobs": acquired.jobs})


@endpoint("pilot/get_job_status", http=("GET",))
def get_job_status(call: Call, job_ids: list[int], timeout: int = 60) -> dict[str, Any]:
    """Status and attempt number of each job (``not found``/0 for unknown ids)."""
    return ok(ids_status(call, job_ids))


@endpoint("pilot/update_job", role="production", http=("POST",))
def update_job(call: Call, job_id: int, job_status: str, job_output_report: str = "", node: str | None = None,
               cpu_consumption_time: int | None = None, cpu_consumption_unit: str | None = None,
               scheduler_id: str | None = None, pilot_id: str | None = None, site_name: str | None = None,
               pilot_log: str = "", meta_data: str = "", cpu_conversion_factor: float | None = None,
               trans_exit_code: str | None = None, pilot_error_code: int | None = None,
               pilot_error_diag: str | None = None, exe_error_code: int | None = None,
               exe_error_diag: str | None = None, pilot_timing: str | None = None, start_time: str | None = None,
               end_time: str | None = None, n_events: int | None = None, n_input_files: int | None = None,
               batch_id: str | None = None, attempt_nr: int | None = None, job_metrics: str | None = None,
               stdout: str = "", job_sub_status: str | None = None, core_count: int | None = None,
               timeout: int = 60, **metrics: Any) -> dict[str, Any]:
    """One heartbeat; ``max_rss``, ``tot_rchar`` and the other memory/IO metrics are accepted too."""
    reported = {
        "job_output_report": job_output_report, "node": node, "cpu_consumption_time": cpu_consumption_time,
        "cpu_consumption_unit": cpu_consumption_unit, "scheduler_id": scheduler_id, "pilot_id": pilot_id,
        "pilot_log": pilot_log, "meta_data": meta_data, "cpu_conversion_factor": cpu_conversion_factor,
        "trans_exit_code": trans_exit_code, "pilot_error_code": pilot_error_code, "pilot_error_diag": pilot_error_diag,
        "exe_error_code": exe_error_code, "exe_error_diag": exe_error_diag, "pilot_timing": pilot_timing,
        "start_time": start_time, "end_time": end_time, "n_events": n_events, "n_input_files": n_input_files,
        "batch_id": batch_id, "attempt_nr": attempt_nr, "job_metrics": job_metrics, "stdout": stdout,
        "job_sub_status": job_sub_status, "core_count": core_count,
    }
    return _update(call, job_id, job_status, {**metrics, **reported})


@endpoint("pilot/update_jobs_bulk", role="production", http=("POST",))
def update_jobs_bulk(call: Call, job_list: list[Any], harvester_id: str | None = None) -> dict[str, Any]:
    """Several heartbeats, applied in one transaction; data is the list of per-job envelopes."""
    replies: list[dict[str, Any] | None] = []
    batch: list[tuple[Any, str, dict[str, Any]]] = []
    for item in job_list:
        if not isinstance(item, dict) or "job_id" not in item or "job_status" not in item:
            replies.append(fail("each entry needs job_id and job_status"))
            continue
        refused = _refused_status(item["job_status"])
        if refused is None:
            batch.append((item["job_id"], str(item["job_status"]), _params(item)))
        replies.append(refused)
    answers = iter(heartbeats(call, batch))
    return ok([reply if reply is not None else _envelope(next(answers)) for reply in replies])


def _record_node(call: Call, kind: str, site: str, host_name: str, values: dict[str, Any]) -> dict[str, Any]:
    call.tb.set_config_value(kind, site, host_name, json.dumps(values, default=str))
    return ok()


@endpoint("pilot/update_worker_node", role="production", http=("POST",))
def update_worker_node(call: Call, site: str, host_name: str, cpu_model: str | None = None,
                       panda_queue: str | None = None, n_logical_cpus: int | None = None,
                       n_sockets: int | None = None, cores_per_socket: int | None = None,
                       threads_per_core: int | None = None, cpu_architecture: str | None = None,
                       cpu_architecture_level: str | None = None, clock_speed: float | None = None,
                       total_memory: int | None = None, total_local_disk: int | None = None,
                       timeout: int = 60) -> dict[str, Any]:
    """Record a worker node's CPU description (stored as a config value per site and host)."""
    return _record_node(call, "worker_node", site, host_name, {
        "cpu_model": cpu_model, "panda_queue": panda_queue, "n_logical_cpus": n_logical_cpus, "n_sockets": n_sockets,
        "cores_per_socket": cores_per_socket, "threads_per_core": threads_per_core,
        "cpu_architecture": cpu_architecture, "cpu_architecture_level": cpu_architecture_level,
        "clock_speed": clock_speed, "total_memory": total_memory, "total_local_disk": total_local_disk})


@endpoint("pilot/update_worker_node_gpu", role="production", http=("POST",))
def update_worker_node_gpu(call: Call, site: str, host_name: str, vendor: str | None = None,
                           model: str | None = None, count: int | None = None, vram: int | None = None,
                           architecture: str | None = None, framework: str | None = None,
                           framework_version: str | None = None, driver_version: str | None = None,
                           timeout: int = 60) -> dict[str, Any]:
    """Record a worker node's GPU description (stored as a config value per site and host)."""
    return _record_node(call, "worker_node_gpu", site, host_name, {
        "vendor": vendor, "model": model, "count": count, "vram": vram, "architecture": architecture,
        "framework": framework, "framework_version": framework_version, "driver_version": driver_version})


@endpoint("pilot/update_worker_status", role="production", http=("POST",))
def update_worker_status(call: Call, worker_id: int, harvester_id: str, status: str, timeout: int = 60,
                         node_id: str | None = None) -> dict[str, Any]:
    """The state of a Harvester worker as its pilot sees it (``started`` or ``finished``)."""
    if status not in ("started", "finished"):
        return fail("Invalid worker state. The worker state has to be in ('started', 'finished')")
    call.tb.set_worker_pilot_status(harvester_id[:50], worker_id, status, node_id)
    return ok()
