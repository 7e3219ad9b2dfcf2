"""The data of each monitor page, as plain dicts: the HTML templates and ``?format=json`` show the same.

Counts over all jobs (a GROUP BY over the archive) are kept per process for ``counts_cache_seconds``; lists
are keyset pages and are always read fresh.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any, Callable

from pandasrv.daemon.schedule import LEASE_PREFIX
from pandasrv.taskbuffer.db_proxy_mods.monitor import FILTER_COLUMNS
from pandasrv.taskbuffer.job_states import ALL_STATES, FINAL_STATES
from pandasrv.web.context import Services, _TimedCache

ERROR_FIELDS = ("pilotError", "exeError", "ddmError", "supError", "taskBufferError", "jobDispatcherError",
                "brokerageError")
MAX_HOURS = 24 * 366


class PageError(Exception):
    """A bad request to a page: shown as a message with ``status``, never a 500."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Viewer:
    """Who looks: whether private fields (job parameters, files) may be shown, and whose jobs only."""

    see_private: bool = True
    only_user: str | None = None


class MonitorData:
    """Builds page data for one process; holds the count cache."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings.monitor
        self._counts = _TimedCache(self.settings.counts_cache_seconds)

    @property
    def tb(self) -> Any:
        return self.services.task_buffer

    def _counted(self, key: Any, load: Callable[[], list[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
        return self._counts.get(key, load)

    def counts(self, by: tuple[str, ...], filters: dict[str, str] | None = None,
               archived: bool = True) -> list[tuple[Any, ...]]:
        filters = filters or {}
        key = (by, tuple(sorted(filters.items())), archived)
        return self._counted(key, lambda: self.tb.monitor_job_counts(by, filters, archived))

    # --- pages -----------------------------------------------------------------------------------
    def overview(self, viewer: Viewer) -> dict[str, Any]:
        scope = {"user": viewer.only_user} if viewer.only_user else {}
        by_state = {state: n for state, n in self.counts(("jobStatus",), scope)}
        by_site = _nested(self.counts(("computingSite", "jobStatus"), scope, archived=False))
        by_label = {label: n for label, n in self.counts(("prodSourceLabel",), scope)}
        errors = [e for e in self.tb.monitor_recent_errors(20) if not viewer.only_user or e["prodUserName"] == viewer.only_user]
        for error in errors:
            error["errors"] = job_errors(error)
        return {"page": "overview", "jobs_by_state": by_state, "total": sum(by_state.values()),
                "live_jobs_by_queue": by_site, "jobs_by_label": by_label, "recent_errors": errors}

    def jobs(self, query: dict[str, str], viewer: Viewer) -> dict[str, Any]:
        filters, since, hours, before, limit = parse_job_query(query, self.settings.page_size)
        if viewer.only_user:
            if filters.get("user", viewer.only_user) != viewer.only_user:
                raise PageError(403, "you may only see your own jobs")
            filters["user"] = viewer.only_user
        rows = self.tb.monitor_list_jobs(filters, since=since, before_id=before, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        others = {k: v for k, v in filters.items() if k != "state"}
        by_state = {} if since else {state: n for state, n in self.counts(("jobStatus",), others)}
        return {"page": "jobs", "filters": filters, "hours": hours, "before": before, "limit": limit,
                "jobs_by_state": by_state, "jobs": rows,
                "next_before": rows[-1]["PandaID"] if more and rows else None}

    def job(self, panda_id: int, viewer: Viewer) -> dict[str, Any]:
        (job,) = self.tb.peek_jobs([panda_id])
        if job is None or (viewer.only_user and job.prodUserName != viewer.only_user):
            raise PageError(404, f"job {panda_id} not found")
        attributes = job.to_dict()
        files = attributes.pop("Files")
        parameters = attributes.pop("jobParameters", None)
        attributes.pop("metadata", None)
        if not viewer.see_private:
            files, parameters = [], None
        logs = [f for f in files if f.get("type") == "log"]
        return {"page": "job", "PandaID": panda_id, "attributes": attributes, "files": files,
                "jobParameters": parameters, "private_hidden": not viewer.see_private,
                "history": self.tb.monitor_status_history(panda_id), "errors": job_errors(attributes),
                "log_files": [{"lfn": f["lfn"], "url": f"/cache/{f['lfn']}"} for f in logs]}

    def queues(self, viewer: Viewer) -> dict[str, Any]:
        scope = {"user": viewer.only_user} if viewer.only_user else {}
        live = _nested(self.counts(("computingSite", "jobStatus"), scope, archived=False))
        activity = self.tb.monitor_site_data()
        queues = []
        for queue in self.tb.list_queues():
            site = activity.get(queue["name"], {})
            queues.append({"name": queue["name"], "site": queue["site"], "status": queue["status"],
                           "online": queue["status"] == "online", "jobs_by_state": live.get(queue["name"], {}),
                           "started_recently": site.get("nStart") or 0, "last_start": site.get("lastStart"),
                           "counters_updated": site.get("lastUpdate"), "modificationTime": queue["modificationTime"]})
        return {"page": "queues", "queues": queues}

    def users(self, viewer: Viewer) -> dict[str, Any]:
        scope = {"user": viewer.only_user} if viewer.only_user else {}
        users = _nested(self.counts(("prodUserName", "jobStatus"), scope))
        return {"page": "users", "users": [{"name": name, "jobs_by_state": states, "total": sum(states.values())}
                                           for name, states in users.items()]}

    def daemon(self, viewer: Viewer) -> dict[str, Any]:
        leases = {lease["component"]: lease for lease in self.tb.monitor_leases()}
        runs: dict[str, list[dict[str, Any]]] = {}
        for run in self.tb.daemon_runs():
            if run["startTime"] and run["endTime"]:
                run["duration"] = (run["endTime"] - run["startTime"]).total_seconds()
            else:
                run["duration"] = None
            runs.setdefault(run["script"], []).append(run)
        scripts = []
        for name, script in sorted(self.services.settings.daemon.scripts.items()):
            history = runs.get(name, [])
            scripts.append({"name": name, "enabled": script.enable, "period": script.period, "sync": script.sync,
                            "loop": script.loop, "lease": leases.pop(LEASE_PREFIX + name, None),
                            "last_run": history[0] if history else None, "runs_per_host": history})
        return {"page": "daemon", "enabled": self.services.settings.daemon.enable, "scripts": scripts,
                "other_leases": list(leases.values()), "now": _dt.datetime.now(_dt.UTC).replace(tzinfo=None)}


def _nested(rows: list[tuple[Any, ...]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for key, state, n in rows:
        out.setdefault(str(key), {})[state] = n
    return out


def job_errors(job: dict[str, Any]) -> list[dict[str, Any]]:
    """The non-zero error codes of a job with their diagnostic texts."""
    found = []
    for field in ERROR_FIELDS:
        code = job.get(f"{field}Code")
        if code not in (None, 0, "0", ""):
            found.append({"field": field, "code": code, "diag": job.get(f"{field}Diag")})
    return found


def parse_job_query(query: dict[str, str], page_size: int) -> tuple[dict[str, str], _dt.datetime | None, int | None,
                                                                     int | None, int]:
    """(filters, since, hours, before, limit) from a jobs page's query string; PageError(400) on a bad value."""
    known = set(FILTER_COLUMNS) | {"hours", "before", "limit", "format"}
    unknown = sorted(set(query) - known)
    if unknown:
        raise PageError(400, f"unknown filter {', '.join(unknown)} (known: {', '.join(sorted(known - {'format'}))})")
    filters = {name: query[name] for name in FILTER_COLUMNS if query.get(name)}
    if "state" in filters and filters["state"] not in ALL_STATES:
        raise PageError(400, f"unknown job state {filters['state']!r}")
    hours = _int(query, "hours", 1, MAX_HOURS)
    before = _int(query, "before", 1, 2**62)
    limit = _int(query, "limit", 1, 1000) or page_size
    since = _dt.datetime.now(_dt.UTC).replace(tzinfo=None) - _dt.timedelta(hours=hours) if hours else None
    return filters, since, hours, before, limit


def _int(query: dict[str, str], name: str, low: int, high: int) -> int | None:
    text = query.get(name)
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise PageError(400, f"{name} must be a whole number, not {text!r}") from None
    if not low <= value <= high:
        raise PageError(400, f"{name} must be between {low} and {high}")
    return value


STATE_ORDER = sorted(ALL_STATES, key=lambda s: (s in FINAL_STATES, s))
