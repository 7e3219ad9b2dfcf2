"""The pilot's two hot calls, shared by the legacy and v1 forms: hand out jobs, apply heartbeats.

Each is one TaskBuffer call on the database (the claim, the heartbeat update); everything else here is
turning pilot strings into column values and jobs into the reply fields pilots read.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass
from typing import Any

from pandasrv import metrics
from pandasrv.logic import getjob
from pandasrv.logic.constants import MAX_IDS, SC_FAILED, SC_INVALID, SC_NO_JOBS, SC_SUCCESS
from pandasrv.logic.heartbeat import FINAL_REPORTS, Heartbeat
from pandasrv.taskbuffer.claim_request import ClaimRequest
from pandasrv.taskbuffer.codes import KILL_COMMAND
from pandasrv.taskbuffer.job_spec import JobSpec
from pandasrv.taskbuffer.job_states import PILOT_STATES, IllegalTransition
from pandasrv.web.auth import clean_user_id
from pandasrv.web.codecs import BadRequest
from pandasrv.web.context import Call, StatusHints
from pandasrv.web.registry import INT64_MAX, INT64_MIN

NULL = "NULL"
_COUNTER_CAP = 10**10 - 1


def to_int(value: Any) -> int | None:
    """PanDA's ``int(float(x))`` with bad, empty or out-of-64-bit values as None, never an exception."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = value if isinstance(value, int) else int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None
    return number if INT64_MIN <= number <= INT64_MAX else None


def is_true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


# --- getJob -----------------------------------------------------------------------------------------

@dataclass
class Acquired:
    status: int
    jobs: list[dict[str, Any]]
    message: str = ""


def claim_owner(call: Call, prod_user_id: str | None, privileged: bool) -> str | None:
    """Whose jobs only a getJob may receive: the named ``prodUserID`` (a DN is cut to its user name) when the
    caller may fetch every job, else the caller's own."""
    if not privileged:
        return call.user
    return clean_user_id(prod_user_id) if prod_user_id and prod_user_id.startswith("/") else prod_user_id


def acquire(call: Call, request: ClaimRequest, worker: tuple[str, int] | None = None) -> Acquired:
    """Claim the activated jobs ``request`` asks for (panda-protocol.md §2.2) and describe them for the pilot.

    A pilot started by Harvester names its instance and worker (``worker``): the claimed jobs are related to
    that worker, so the worker's fate reaches them (and a kill of them reaches the worker)."""
    queue = call.services.queue(request.site)
    claim = getjob.for_queue(request, queue)
    if isinstance(claim, str):
        return Acquired(SC_NO_JOBS, [], claim)
    assert queue is not None  # for_queue refuses a missing queue
    jobs = call.tb.claim_jobs(claim)
    if not jobs:
        metrics.EMPTY_CLAIMS.inc()
        return Acquired(SC_NO_JOBS, [], "no jobs in PanDA")
    if worker is not None:
        call.tb.relate_job_to_worker(worker[0], worker[1], [job.PandaID for job in jobs])
    metrics.JOBS_DISPATCHED.inc(len(jobs))
    for job in jobs:
        call.services.status_hints.saw(job.PandaID, job.jobStatus)
    n_sent = call.services.recent_sent(claim.site)
    return Acquired(SC_SUCCESS, [job_description(job, queue, n_sent) for job in jobs])


def harvester_worker(harvester_id: str | None, worker_id: int | None) -> tuple[str, int] | None:
    """The Harvester worker a pilot names (instance, workerID), or None for a pilot Harvester did not start."""
    return (harvester_id[:50], worker_id) if harvester_id and worker_id is not None else None


def _value(value: Any) -> Any:
    return NULL if value is None or value == "" else value


def _join(values: list[Any]) -> str:
    return ",".join(str(_value(v)) for v in values)


def _endpoint(queue: dict[str, Any], activity: str) -> str | None:
    storages = (queue.get("data") or {}).get("astorages") or {}
    names = storages.get(activity) or storages.get("pw") or []
    return names[0] if names else None


# Comma-joined per-file fields: empty (not "NULL") when the job has no such files, as PanDA sends them.
_LIST_FIELDS = frozenset({
    "inFiles", "dispatchDblock", "dispatchDBlockToken", "prodDBlocks", "prodDBlockToken", "realDatasetsIn", "GUID",
    "fsize", "checksum", "scopeIn", "ddmEndPointIn", "outFiles", "destinationDblock", "realDatasets",
    "fileDestinationSE", "destinationDBlockToken", "dispatchDBlockTokenForOut", "ddmEndPointOut", "scopeOut"})


def job_description(job: JobSpec, queue: dict[str, Any], n_sent: int) -> dict[str, Any]:
    """The job fields a pilot reads (PanDA's ``Protocol.Response.appendJob``); unset values are "NULL"."""
    inputs, seen = [], set()
    for f in job.Files:
        if f.type == "input" and f.lfn not in seen:
            seen.add(f.lfn)
            inputs.append(f)
    # outputs first, the log last: pilots take the last outFiles entry as the log
    outputs = [f for f in job.Files if f.type == "output"] + [f for f in job.Files if f.type == "log"]
    log_file = next((f for f in job.Files if f.type == "log"), None)
    endpoint_in, endpoint_out, endpoint_log = (_endpoint(queue, a) for a in ("pr", "pw", "pl"))
    reply: dict[str, Any] = {
        "StatusCode": SC_SUCCESS,
        "PandaID": job.PandaID, "prodSourceLabel": job.prodSourceLabel, "jobName": job.jobName,
        "jobDefinitionID": job.jobDefinitionID, "cloud": job.cloud, "transformation": job.transformation,
        "homepackage": job.homepackage, "swRelease": job.AtlasRelease,
        "inFiles": ",".join(f.lfn for f in inputs),
        "dispatchDblock": _join([f.dispatchDBlock for f in inputs]),
        "dispatchDBlockToken": _join([f.dispatchDBlockToken for f in inputs]),
        "prodDBlocks": _join([f.prodDBlock for f in inputs]),
        "prodDBlockToken": _join([f.prodDBlockToken for f in inputs]),
        "realDatasetsIn": _join([f.dataset for f in inputs]),
        "GUID": _join([f.GUID for f in inputs]),
        "fsize": _join([f.fsize for f in inputs]),
        "checksum": _join([f.checksum or f.md5sum for f in inputs]),
        "scopeIn": _join([f.scope for f in inputs]),
        "ddmEndPointIn": _join([endpoint_in for _ in inputs]),
        "outFiles": ",".join(f.lfn for f in outputs),
        "destinationDblock": _join([f.destinationDBlock for f in outputs]),
        "realDatasets": _join([f.dataset for f in outputs]),
        "fileDestinationSE": _join([f.destinationSE for f in outputs]),
        "destinationDBlockToken": _join([(f.destinationDBlockToken or "").split(",")[0].replace("ddd:", "dst:")
                                         for f in outputs]),
        "dispatchDBlockTokenForOut": _join([f.dispatchDBlockToken for f in outputs]),
        "ddmEndPointOut": _join([endpoint_log if f.type == "log" else endpoint_out for f in outputs]),
        "scopeOut": _join([f.scope for f in outputs if f.type == "output"]),
        "logFile": _value(log_file.lfn if log_file else None),
        "logGUID": _value(log_file.GUID if log_file else None),
        "scopeLog": _value(log_file.scope if log_file else None),
        "jobPars": job.jobParameters or "",
        "taskID": job.jediTaskID if job.lockedby == "jedi" else job.taskID,
        "coreCount": job.coreCount or 1,
        "ioIntensity": None, "ioIntensityUnit": None,
        "nSent": n_sent,
    }
    for name in ("attemptNr", "destinationSE", "prodUserID", "maxCpuCount", "minRamCount", "maxDiskCount",
                 "cmtConfig", "processingType", "transferType", "sourceSite", "currentPriority", "jobsetID",
                 "reqID", "nucleus", "maxWalltime", "resource_type"):
        reply[name] = getattr(job, name)
    special = (job.specialHandling or "").split(",")
    if "dm" in special:
        reply["debug"] = "True"
    if job.container_name:
        reply["container_name"] = job.container_name
    return {k: v if k in _LIST_FIELDS else _value(v) for k, v in reply.items()}


def ids_status(call: Call, job_ids: list[int]) -> list[dict[str, Any]]:
    """``[{"job_id", "status", "attempt_number"}]`` with ``not found``/0 for unknown ids."""
    if len(job_ids) > MAX_IDS:
        raise BadRequest(f"too many job_ids: {len(job_ids)} > {MAX_IDS}")
    found = call.tb.get_job_status(job_ids)
    return [{"job_id": pid, "status": found[pid][0] if pid in found else "not found",
             "attempt_number": found[pid][1] if pid in found else 0} for pid in job_ids]


# --- updateJob ---------------------------------------------------------------------------------------

_STRINGS = {  # pilot name -> (column, max length)
    "cpuConsumptionUnit": ("cpuConsumptionUnit", 128), "cpu_architecture_level": ("cpu_architecture_level", 20),
    "node": ("modificationHost", 128), "pilotErrorDiag": ("pilotErrorDiag", 500), "jobMetrics": ("jobMetrics", 500),
    "schedulerID": ("schedulerID", 128), "pilotID": ("pilotID", 200), "batchID": ("batchID", 80),
    "exeErrorDiag": ("exeErrorDiag", 500), "pilotTiming": ("pilotTiming", 100), "jobSubStatus": ("jobSubStatus", 80),
    "grid": ("grid", 50), "source_site": ("sourceSite", 36), "destination_site": ("destinationSite", 36),
}
_INTS = {
    "cpuConsumptionTime": "cpuConsumptionTime", "exeErrorCode": "exeErrorCode", "nEvents": "nEvents",
    "nInputFiles": "nInputFiles", "coreCount": "actualCoreCount", "maxRSS": "maxRSS", "maxVMEM": "maxVMEM",
    "maxSWAP": "maxSWAP", "maxPSS": "maxPSS", "avgRSS": "avgRSS", "avgVMEM": "avgVMEM", "avgSWAP": "avgSWAP",
    "avgPSS": "avgPSS",
}
_KILOBYTES = ("totRCHAR", "totWCHAR", "totRBYTES", "totWBYTES")
_RATES = ("rateRCHAR", "rateWCHAR", "rateRBYTES", "rateWBYTES")


def _time(value: Any) -> _dt.datetime | None:
    """startTime/endTime: "%Y-%m-%d %H:%M:%S" (legacy) or epoch seconds (pilot3)."""
    if value in (None, "", NULL):
        return None
    try:
        return _dt.datetime.fromtimestamp(float(value), _dt.UTC).replace(tzinfo=None)
    except (TypeError, ValueError, OverflowError):
        pass
    try:
        return _dt.datetime.strptime(str(value)[:19], "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None


def heartbeat_values(params: dict[str, Any]) -> dict[str, Any]:
    """Job columns from updateJob parameters (panda-protocol.md §2.3 rule 3); unusable values are skipped."""
    values: dict[str, Any] = {}
    for name, (column, limit) in _STRINGS.items():
        if params.get(name) not in (None, ""):
            values[column] = str(params[name])[:limit]
    for name, column in _INTS.items():
        number = to_int(params.get(name))
        if number is not None:
            values[column] = number
    for name in _KILOBYTES:
        number = to_int(params.get(name))
        if number is not None:
            values[name] = min(number // 1024, _COUNTER_CAP)
    for name in _RATES:
        number = to_int(params.get(name))
        if number is not None:
            values[name] = min(number, _COUNTER_CAP)
    if to_int(params.get("transExitCode")) is not None:
        values["transExitCode"] = str(to_int(params["transExitCode"]))
    pilot_error_code = to_int(params.get("pilotErrorCode"))
    if pilot_error_code is not None:
        values["pilotErrorCode"] = abs(pilot_error_code)
    try:
        if params.get("cpuConversionFactor") not in (None, ""):
            values["cpuConversion"] = float(params["cpuConversionFactor"])
    except (TypeError, ValueError):
        pass
    for name in ("startTime", "endTime"):
        moment = _time(params.get(name))
        if moment is not None:
            values[name] = moment
    metrics = str(params.get("jobMetrics") or "")
    for key, column in (("leak", "memory_leak"), ("chi2", "memory_leak_x2")):
        found = re.search(rf"(?:^|\s){key}=([-0-9.eE]+)", metrics)
        if found:
            try:
                values[column] = float(found.group(1))
            except ValueError:
                pass
    return values


def heartbeat_request(job_id: Any, state: str, params: dict[str, Any],
                      hints: StatusHints | None = None) -> Heartbeat | dict[str, Any]:
    """The Heartbeat of one updateJob (legacy parameter names), or the reply when there is nothing to apply;
    ``hints`` mark a heartbeat to a job last seen in another state as a transition."""
    panda_id = to_int(job_id)
    if panda_id is None:
        return {"StatusCode": SC_INVALID, "errorDialog": f"invalid jobId {job_id!r}"}
    if state not in PILOT_STATES:
        return {"StatusCode": SC_SUCCESS}
    return Heartbeat(
        panda_id, state, heartbeat_values(params), attempt_nr=to_int(params.get("attemptNr")),
        report=str(params.get("xml") or "") if state in FINAL_REPORTS else None, metadata=_text(params.get("metaData")),
        pilot_log=_text(params.get("pilotLog")), stdout=_text(params.get("stdout")),
        changes_state=hints is not None and hints.changes_state(panda_id, state))


def heartbeat_reply(request: Heartbeat, result: dict[str, Any], hints: StatusHints) -> dict[str, Any]:
    """``{"StatusCode", "command"}`` from the store's answer (plus ``errorDialog`` when refused)."""
    hints.saw(request.panda_id, result.get("status") if result["result"] == "ok" else None)
    if result["result"] == "illegal":  # e.g. a pilot still running a job that was reassigned (activated again)
        return {"StatusCode": SC_FAILED, "errorDialog": f"job {request.panda_id}: {result['error']}", "command": KILL_COMMAND}
    metrics.HEARTBEATS.labels(request.status).inc()
    command = KILL_COMMAND if result["result"] in ("notfound", "badattemptnr") else result.get("command")
    return {"StatusCode": SC_SUCCESS, "command": command or NULL}


def heartbeat(call: Call, job_id: Any, state: str, params: dict[str, Any]) -> dict[str, Any]:
    """Apply one heartbeat; returns ``{"StatusCode", "command"}`` (plus ``errorDialog`` when refused)."""
    hints = call.services.status_hints
    request = heartbeat_request(job_id, state, params, hints)
    if isinstance(request, dict):
        return request
    try:
        result = call.tb.update_job(request)
    except IllegalTransition as exc:
        result = {"result": "illegal", "error": str(exc)}
    return heartbeat_reply(request, result, hints)


def heartbeats(call: Call, items: list[tuple[Any, str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Apply several heartbeats (``(job_id, state, params)`` each) in one store call and one transaction;
    the replies are those ``heartbeat`` gives, in the same order."""
    hints = call.services.status_hints
    requests = [heartbeat_request(*item, hints) for item in items]
    batch = [request for request in requests if isinstance(request, Heartbeat)]
    results = iter(call.tb.update_jobs(batch) if batch else [])
    return [request if isinstance(request, dict) else heartbeat_reply(request, next(results), hints)
            for request in requests]


def _text(value: Any) -> str | None:
    if value in (None, "", NULL):
        return None
    return value if isinstance(value, str) else json.dumps(value)
