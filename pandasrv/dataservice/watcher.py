"""The Watcher: PanDA's timeout rules (copyArchive + Watcher), each one set-based sweep.

Every rule is one call to ``sweep_jobs``: one locked selection and one bulk transition, whatever the number
of stale jobs. Timeouts come from ``settings.watcher`` in seconds; error codes and diagnostics follow PanDA
(panda-protocol.md §6.5): jobDispatcherErrorCode for jobs the pilot stopped talking about, taskBufferErrorCode
for jobs expired before they ran.
"""

from __future__ import annotations

import datetime as _dt
import logging
from typing import Any

from pandasrv.clock import utcnow
from pandasrv.config import Settings
from pandasrv.logic.policy import ANALYSIS_LABELS
from pandasrv.taskbuffer.codes import EC_EXPIRE, EC_HOLDING, EC_KILL, EC_RECOVERY, EC_SEND_ERROR, EC_TRANSFERRING, EC_WATCHER
from pandasrv.taskbuffer.store import Store

log = logging.getLogger("pandasrv.dataservice.watcher")

RUNNING_STATES = ("starting", "running")
KILLABLE_ACTIVE = ("sent", "starting", "running", "holding", "transferring", "merging")


def _ago(now: _dt.datetime, seconds: float) -> _dt.datetime:
    return now - _dt.timedelta(seconds=seconds)


def _span(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _dispatcher_failure(code: int, diag: str) -> dict[str, Any]:
    return {"jobDispatcherErrorCode": code, "jobDispatcherErrorDiag": diag}


def _expiry(status: str, seconds: float) -> dict[str, Any]:
    return {"taskBufferErrorCode": EC_EXPIRE,
            "taskBufferErrorDiag": f"expired in {status}: status unchanged for {_span(seconds)}"}


def heartbeat_rules(settings: Settings, now: _dt.datetime) -> list[tuple[str, dict[str, Any]]]:
    """Lost heartbeats of starting/running jobs: one pair of rules per queue with its own timeout."""
    per_queue = settings.watcher.heartbeat_per_queue
    scopes: list[tuple[str, float, dict[str, Any]]] = [
        (f"heartbeat[{queue}]", seconds, {"sites": [queue]}) for queue, seconds in sorted(per_queue.items())]
    scopes.append(("heartbeat", settings.watcher.heartbeat, {"not_sites": sorted(per_queue)}))
    rules = []
    for name, seconds, scope in scopes:
        base = {"statuses": RUNNING_STATES, "time_column": "modificationTime", "before": _ago(now, seconds),
                "new_status": "failed", "killed": False, "fail_files": True, **scope}
        rules.append((name, {**base, "diag": False,
                             "values": _dispatcher_failure(EC_WATCHER, f"lost heartbeat : no update for {_span(seconds)}")}))
        recovery = _dispatcher_failure(EC_RECOVERY, f"job recovery failed for {_span(seconds)}")
        rules.append((name + ":recovery", {**base, "diag": True, "values": recovery}))
    return rules


def rules(settings: Settings, now: _dt.datetime) -> list[tuple[str, dict[str, Any]]]:
    """Every rule, in the order they run (kills first, so later rules never see a killed job)."""
    w = settings.watcher
    active = {"time_column": "modificationTime", "new_status": "failed", "killed": False, "fail_files": True}
    result: list[tuple[str, dict[str, Any]]] = [
        ("killed", {"statuses": KILLABLE_ACTIVE, "time_column": "modificationTime", "before": _ago(now, w.heartbeat),
                    "new_status": "cancelled", "killed": True, "fail_files": True,
                    "values": {"taskBufferErrorCode": EC_KILL,
                               "taskBufferErrorDiag": f"killed job did not report back within {_span(w.heartbeat)}"}}),
        ("sent", {**active, "statuses": ("sent",), "before": _ago(now, w.sent),
                  "values": _dispatcher_failure(EC_SEND_ERROR,
                                                f"Sent job didn't receive reply from pilot within {_span(w.sent)}")}),
    ]
    result += heartbeat_rules(settings, now)
    result += [
        ("transferring", {**active, "statuses": ("transferring",), "labels": ANALYSIS_LABELS,
                          "before": _ago(now, w.heartbeat),
                          "values": _dispatcher_failure(EC_TRANSFERRING, f"transferring timeout after {_span(w.heartbeat)}")}),
        ("holding[user]", {**active, "statuses": ("holding",), "labels": ANALYSIS_LABELS,
                           "before": _ago(now, w.holding_user),
                           "values": _dispatcher_failure(EC_HOLDING, f"holding timeout after {_span(w.holding_user)}")}),
        ("holding", {**active, "statuses": ("holding",), "not_labels": ANALYSIS_LABELS, "before": _ago(now, w.holding),
                     "values": _dispatcher_failure(EC_HOLDING, f"holding timeout after {_span(w.holding)}")}),
    ]
    for status, seconds, column in (("defined", w.defined, "modificationTime"),
                                    ("assigned", w.assigned, "modificationTime"),
                                    ("activated", w.activated, "modificationTime"),
                                    ("pending", w.pending, "creationTime"),
                                    ("waiting", w.waiting, "creationTime")):
        result.append((status, {"statuses": (status,), "time_column": column, "before": _ago(now, seconds),
                                "new_status": "closed", "fail_files": True, "values": _expiry(status, seconds)}))
    return result


def run_watcher(task_buffer: Store, settings: Settings, now: _dt.datetime | None = None) -> dict[str, list[int]]:
    """Apply every rule once; returns the PandaIDs each rule moved (empty rules left out)."""
    now = now or utcnow()
    moved: dict[str, list[int]] = {}
    for name, rule in rules(settings, now):
        ids = task_buffer.sweep_jobs(rule)
        if ids:
            log.info("watcher rule %s: %d jobs", name, len(ids))
            moved[name] = ids
    return moved
