"""Legacy pilot calls on ``/server/panda/<method>`` (pilot3 still uses these), PanDA 0.8.1 semantics.

Parameter names are the wire names the pilot sends. Replies are ``Protocol`` dicts: urlencoded unless
the client's Accept header asks for JSON, except where PanDA always used one form.
"""

from __future__ import annotations

import json
from typing import Any

from pandasrv.logic.constants import MAX_IDS, ROLE_DIALOG, SC_FAILED, SC_ROLE, SC_SUCCESS
from pandasrv.logic.policy import fetch_scope
from pandasrv.taskbuffer.claim_request import ClaimRequest
from pandasrv.taskbuffer.codes import KILL_COMMAND
from pandasrv.web.codecs import BadRequest, Protocol, Raw, loads_json
from pandasrv.web.context import Call
from pandasrv.web.dispatch import acquire, claim_owner, harvester_worker, heartbeat, heartbeats, is_true, to_int
from pandasrv.web.registry import LooseInt, endpoint


def _role_refused(message: str) -> Protocol:
    return Protocol({"StatusCode": SC_ROLE, "errorDialog": ROLE_DIALOG})


def _id_list(text: Any) -> list[int]:
    """PandaIDs from a whitespace- or comma-separated string (or a JSON list); non-numbers are a clear error."""
    items = text if isinstance(text, list) else str(text or "").replace(",", " ").split()
    ids = [to_int(item) for item in items]
    if any(i is None for i in ids):
        raise BadRequest(f"ids must be PandaIDs, got {text!r}")
    if len(ids) > MAX_IDS:
        raise BadRequest(f"too many ids: {len(ids)} > {MAX_IDS}")
    return ids  # type: ignore[return-value]


@endpoint("getJob")
def getJob(call: Call, siteName: str, timeout: LooseInt = None, mem: LooseInt = None, diskSpace: LooseInt = None,
           prodSourceLabel: str | None = None, node: str | None = None, computingElement: str | None = None,
           AtlasRelease: str | None = None, prodUserID: str | None = None, getProxyKey: Any = None,
           countryGroup: str | None = None, workingGroup: str | None = None, allowOtherCountry: Any = None,
           taskID: LooseInt = None, nJobs: LooseInt = None, background: Any = None, resourceType: str | None = None,
           harvester_id: str | None = None, worker_id: LooseInt = None, schedulerID: str | None = None,
           jobType: str | None = None, viaTopic: Any = None, remaining_time: LooseInt = None, cpu: LooseInt = None,
           token: str | None = None) -> Protocol:
    """Hand activated jobs of queue ``siteName`` to a pilot; ``nJobs`` selects the bulk reply form."""
    scope = fetch_scope(prodSourceLabel or None, identified=call.identity.secure,
                        pilot=call.is_pilot(voms_patch=not is_true(getProxyKey)))
    if scope is None:
        return _role_refused("")
    privileged = scope == "all"
    bulk = nJobs is not None
    request = ClaimRequest(
        site=siteName, n=nJobs or 1 if bulk else 1, label=prodSourceLabel, memory=mem or 0, disk=diskSpace or 0,
        walltime=remaining_time or 0, resource_type=resourceType, owner=claim_owner(call, prodUserID, privileged),
        task_id=taskID, background=is_true(background), node=node, computing_element=computingElement,
        scheduler_id=schedulerID)
    acquired = acquire(call, request, harvester_worker(harvester_id, worker_id))
    if acquired.status != SC_SUCCESS:
        return Protocol({"StatusCode": acquired.status, "errorDialog": acquired.message})
    if bulk:
        jobs: Any = acquired.jobs if call.accept_json else json.dumps(acquired.jobs)
        return Protocol({"StatusCode": SC_SUCCESS, "jobs": jobs})
    reply = acquired.jobs[0]
    if is_true(getProxyKey) and privileged:
        reply.update(credname="", myproxy="")
    return Protocol(reply)


@endpoint("updateJob", role="pilot", denied=_role_refused)
def updateJob(call: Call, jobId: str, state: str, xml: str = "", metaData: Any = "", pilotLog: str = "",
              stdout: str = "", attemptNr: LooseInt = None, timeout: LooseInt = None, **values: Any) -> Protocol:
    """The pilot heartbeat and final report; finished/failed are stored as holding plus an output report."""
    if jobId == "NULL":
        return Protocol({"StatusCode": SC_SUCCESS})
    params = {**values, "xml": xml, "metaData": metaData, "pilotLog": pilotLog, "stdout": stdout,
              "attemptNr": attemptNr}
    return Protocol(heartbeat(call, jobId, state, params))


@endpoint("updateJobsInBulk", role="pilot", denied=lambda m: Raw(json.dumps([False, m])))
def updateJobsInBulk(call: Call, jobList: Any, harvester_id: str | None = None) -> Raw:
    """Several heartbeats in one call and one transaction (Harvester); the reply is ``[true, [reply, ...]]``."""
    try:
        items = loads_json(jobList, call.settings.max_body_bytes, "jobList") if isinstance(jobList, str) else jobList
    except BadRequest as exc:
        return Raw(json.dumps([False, f"jobList: {exc}"]))
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        return Raw(json.dumps([False, "jobList must be a JSON list of objects"]))
    complete = ["jobId" in item and "state" in item for item in items]
    answers = iter(heartbeats(call, [(item["jobId"], str(item["state"]), item) for item, ok in zip(items, complete) if ok]))
    missing = {"StatusCode": SC_FAILED, "errorDialog": "jobId and state are required"}
    return Raw(json.dumps([True, [next(answers) if ok else missing for ok in complete]]))


@endpoint("getStatus")
def getStatus(call: Call, ids: Any, timeout: Any = None) -> Protocol:
    """Status and attemptNr of whitespace-separated PandaIDs (``notfound``/0 for unknown ones)."""
    panda_ids = _id_list(ids)
    found = call.tb.get_job_status(panda_ids)
    statuses = [found.get(pid, ("notfound", 0, None)) for pid in panda_ids]
    return Protocol({"StatusCode": SC_SUCCESS, "status": " ".join(s[0] for s in statuses),
                     "attemptNr": " ".join(str(s[1]) for s in statuses)}, json=False)


@endpoint("checkJobStatus")
def checkJobStatus(call: Call, ids: Any, timeout: Any = None) -> Protocol:
    """Status and pending command of comma-separated PandaIDs, always as JSON."""
    panda_ids = _id_list(ids)
    found = call.tb.get_job_status(panda_ids)
    data = [{"status": found[pid][0], "command": found[pid][2] or "NULL"} if pid in found
            else {"status": "unknown", "command": KILL_COMMAND} for pid in panda_ids]
    return Protocol({"StatusCode": SC_SUCCESS, "data": data}, json=True)


@endpoint("getResourceTypes")
def getResourceTypes(call: Call, timeout: Any = None) -> Protocol:
    """The resource types (SCORE, MCORE, ...) with their core and memory ranges."""
    return Protocol({"Returns": SC_SUCCESS, "ResourceTypes": call.tb.get_resource_types()})


@endpoint("updateWorkerPilotStatus", role="pilot", denied=lambda m: Raw(m))
def updateWorkerPilotStatus(call: Call, workerID: Any, harvesterID: str, status: str, site: str | None = None,
                            timeout: Any = None, node_id: str | None = None) -> Any:
    """Record that the pilot of a Harvester worker started or finished."""
    if status not in ("started", "finished"):
        return Raw(f"status {status!r} is not allowed, only started or finished")
    worker_id = to_int(workerID)
    if worker_id is None:
        return Raw(f"workerID {workerID!r} is not a number")
    call.tb.set_worker_pilot_status(str(harvesterID)[:50], worker_id, status, node_id)
    return Protocol({"StatusCode": SC_SUCCESS})
