"""The v1 Harvester API (``/api/v1/harvester/*``): what the pilot factory reports and what it is told.

Signatures, HTTP methods and roles are those of PanDA's ``harvester_api``: every call needs a secure
caller, the command and slot calls a production role. Replies are the ``{"success", "message", "data"}``
envelope; a malformed worker, dialog or metric is refused in-band with a message naming it, and nothing
of that request is stored.
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

from pandasrv.clock import utcnow
from pandasrv.taskbuffer.db_proxy_mods.harvester import WORKER_COLUMNS, WORKER_LENGTHS
from pandasrv.web.codecs import fail, ok
from pandasrv.web.context import Call
from pandasrv.web.registry import endpoint

# Worker statistics older than this are not served (PanDA's getWorkerStats window).
WORKER_STATS_HOURS = 4
MAX_WORKERS = 5000
MAX_COMMANDS = 1000
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S")


class WireError(ValueError):
    """A value in a Harvester request that cannot be stored; the message names it."""


def parse_time(name: str, value: Any) -> _dt.datetime | None:
    """Harvester's ``datetime/<%Y-%m-%d %H:%M:%S.%f>`` (or the plain text, or epoch seconds) as naive UTC."""
    if value in (None, "", "NULL"):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return _dt.datetime.fromtimestamp(value, _dt.UTC).replace(tzinfo=None)
        except (OverflowError, OSError, ValueError):
            raise WireError(f"{name} is not a time: {value!r}") from None
    text = str(value)
    text = text.split("/", 1)[1] if text.startswith("datetime/") else text
    for form in _TIME_FORMATS:
        try:
            return _dt.datetime.strptime(text, form)
        except ValueError:
            continue
    raise WireError(f"{name} is not a time: {value!r}")


def _int(name: str, value: Any) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise WireError(f"{name} must be an integer, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise WireError(f"{name} must be an integer, got {value!r}") from None


def worker_values(raw: Any) -> dict[str, Any]:
    """One worker of ``update_workers`` (Harvester's ``WorkSpec.convert_to_propagate``) as column values.

    Unknown keys are ignored, as PanDA does; known ones are cast and cut to their column length."""
    if not isinstance(raw, dict) or "workerID" not in raw:
        raise WireError("each worker must be an object with a workerID")
    values: dict[str, Any] = {"workerID": _int("workerID", raw["workerID"])}
    if values["workerID"] is None:
        raise WireError("workerID must not be empty")
    for name, kind in WORKER_COLUMNS.items():
        if name not in raw:
            continue
        value = raw[name]
        label = f"worker {values['workerID']}: {name}"
        if kind == "int":
            values[name] = _int(label, value)
        elif kind == "datetime":
            values[name] = parse_time(label, value)
        else:
            values[name] = None if value is None else str(value)[:WORKER_LENGTHS[name]]
    if values.get("status") in ("", None):
        values.pop("status", None)
    jobs = raw.get("pandaid_list")
    if jobs is not None:
        if not isinstance(jobs, list):
            raise WireError(f"worker {values['workerID']}: pandaid_list must be a list of PandaIDs")
        values["pandaid_list"] = [_int(f"worker {values['workerID']}: pandaid_list[]", p) for p in jobs]
    return values


def _json_value(name: str, value: Any) -> Any:
    """Harvester sends some structures as JSON text and others as JSON; accept both."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise WireError(f"{name} is not valid JSON") from None
    return value


def _refusal(exc: ValueError) -> dict[str, Any]:
    return fail(str(exc))


@endpoint("harvester/update_workers", role="user", http=("POST",))
def update_workers(call: Call, harvester_id: str, workers: list[Any]) -> dict[str, Any]:
    """Insert or update workers (Harvester's WorkSpec fields); data is one ``true`` per worker."""
    if len(workers) > MAX_WORKERS:
        return fail(f"too many workers in one call: {len(workers)} > {MAX_WORKERS}")
    try:
        rows = [worker_values(worker) for worker in workers]
        return ok(call.tb.update_workers(harvester_id, rows))
    except ValueError as exc:
        return _refusal(exc)


@endpoint("harvester/update_service_metrics", role="user", http=("POST",))
def update_service_metrics(call: Call, harvester_id: str, metrics: list[Any]) -> dict[str, Any]:
    """Store service metrics: ``[[creation_time, host, metrics_json], ...]``; data is ``[true]``."""
    try:
        triplets = []
        for entry in metrics:
            if not isinstance(entry, list) or len(entry) != 3:
                raise WireError("each metric must be [creation_time, host, metrics]")
            created = parse_time("creation_time", entry[0])
            if created is None:
                raise WireError("creation_time must not be empty")
            text = entry[2] if isinstance(entry[2], str) else json.dumps(entry[2])
            triplets.append((created, str(entry[1])[:128], text))
    except ValueError as exc:
        return _refusal(exc)
    call.tb.add_service_metrics(harvester_id, triplets)
    return ok([True])


@endpoint("harvester/add_dialogs", role="user", http=("POST",))
def add_dialogs(call: Call, harvester_id: str, dialogs: list[Any]) -> dict[str, Any]:
    """Store dialog messages (diagID, moduleName, identifier, creationTime, messageLevel, diagMessage)."""
    try:
        rows = []
        for dialog in dialogs:
            if not isinstance(dialog, dict) or "diagID" not in dialog:
                raise WireError("each dialog must be an object with a diagID")
            rows.append({
                "diagID": _int("diagID", dialog["diagID"]),
                "moduleName": str(dialog.get("moduleName") or "")[:100] or None,
                "identifier": str(dialog.get("identifier") or "")[:100] or None,
                "creationTime": parse_time("creationTime", dialog.get("creationTime")),
                "messageLevel": str(dialog.get("messageLevel") or "")[:10] or None,
                "diagMessage": None if dialog.get("diagMessage") is None else str(dialog["diagMessage"])})
    except ValueError as exc:
        return _refusal(exc)
    call.tb.add_harvester_dialogs(harvester_id, rows)
    return ok()


@endpoint("harvester/heartbeat", role="user", http=("POST",))
def heartbeat(call: Call, harvester_id: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The instance is alive; ``data`` describes it (startTime, sw_version, commit_stamp, commands)."""
    described = dict(data or {})
    try:
        if "startTime" in described:
            described["startTime"] = parse_time("startTime", described["startTime"])
    except ValueError as exc:
        return _refusal(exc)
    for key in ("sw_version", "commit_stamp"):
        if described.get(key) is not None:
            described[key] = str(described[key])[:64]
    call.tb.harvester_heartbeat(harvester_id[:50], call.user, call.environ.get("REMOTE_ADDR"), described)
    return ok()


@endpoint("harvester/get_current_worker_id", role="user", http=("GET",))
def get_current_worker_id(call: Call, harvester_id: str) -> dict[str, Any]:
    """The highest workerID known for the instance (null when it has none yet)."""
    return ok(call.tb.get_max_worker_id(harvester_id))


@endpoint("harvester/get_worker_statistics", role="user", http=("GET",))
def get_worker_statistics(call: Call) -> dict[str, Any]:
    """Reported worker counts: ``{site: {harvester_id: {job_type: {resource_type: {status: n}}}}}``."""
    since = utcnow() - _dt.timedelta(hours=WORKER_STATS_HOURS)
    return ok(call.tb.get_worker_stats(since))


@endpoint("harvester/report_worker_statistics", role="user", http=("POST",))
def report_worker_statistics(call: Call, harvester_id: str, panda_queue: str, statistics: Any) -> dict[str, Any]:
    """Replace the instance's worker counts at a queue: JSON ``{job_type: {resource_type: {status: n}}}``."""
    try:
        stats = _json_value("statistics", statistics)
        if not isinstance(stats, dict) or not all(
                isinstance(per_type, dict) and all(isinstance(per_status, dict) for per_status in per_type.values())
                for per_type in stats.values()):
            raise WireError("statistics must map job types to resource types to {status: count}")
        clean = {str(jt): {str(rt): {str(st): _int(f"statistics {jt}/{rt}/{st}", n) or 0 for st, n in ps.items()}
                           for rt, ps in per_type.items()} for jt, per_type in stats.items()}
    except ValueError as exc:
        return _refusal(exc)
    call.tb.report_worker_stats(harvester_id, panda_queue, clean)
    return ok(message="OK")


@endpoint("harvester/acquire_commands", role="production", http=("POST",))
def acquire_commands(call: Call, harvester_id: str, n_commands: int, timeout: int = 30) -> dict[str, Any]:
    """Hand out up to ``n_commands`` new commands of the instance, oldest first, each only once."""
    return ok(call.tb.acquire_harvester_commands(harvester_id, max(0, min(n_commands, MAX_COMMANDS))))


@endpoint("harvester/acknowledge_commands", role="production", http=("POST",))
def acknowledge_commands(call: Call, command_ids: list[int], timeout: int = 30) -> dict[str, Any]:
    """Mark commands as acknowledged by the instance."""
    call.tb.acknowledge_harvester_commands(command_ids)
    return ok()


@endpoint("harvester/add_sweep_command", role="production", http=("POST",))
def add_sweep_command(call: Call, panda_queue: str, status_list: list[str], ce_list: Any,
                      submission_host_list: list[str]) -> dict[str, Any]:
    """Tell the instance serving ``panda_queue`` to kill its workers there (filtered by status, CE, host)."""
    if ce_list != "ALL" and not (isinstance(ce_list, list) and all(isinstance(ce, str) for ce in ce_list)):
        return fail('Type error: ce_list must be a list of strings or "ALL"')
    result = call.tb.sweep_queue(panda_queue, status_list, ce_list, submission_host_list)
    return ok() if result == "OK" else fail(result)


@endpoint("harvester/add_target_slots", role="production", http=("POST",))
def add_target_slots(call: Call, panda_queue: str, slots: int, global_share: str | None = None,
                     resource_type: str | None = None, expiration_date: str | None = None) -> dict[str, Any]:
    """Set the target number of slots of a queue (optionally per share and resource type; -1 removes it).

    ``expiration_date`` is, as in PanDA, the number of days the setting stays valid."""
    try:
        days = _int("expiration_date (days)", expiration_date)
    except ValueError as exc:
        return _refusal(exc)
    return ok(message=call.tb.set_target_slots(panda_queue, slots, global_share, resource_type, days))
