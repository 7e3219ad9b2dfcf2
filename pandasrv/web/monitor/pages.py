"""The data of each monitor page, as plain dicts: the HTML templates and ``?format=json`` show the same.

Counts over all jobs (a GROUP BY over the archive) are kept per process for ``counts_cache_seconds``; lists
are keyset pages and are always read fresh.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import Any, Callable

from pandasrv.clock import utcnow
from pandasrv.taskbuffer.db_proxy_mods.monitor import FILTER_COLUMNS, SORTS, sort_key
from pandasrv.taskbuffer.job_states import ALL_STATES, FINAL_STATES
from pandasrv.taskbuffer.owners import LEASE_PREFIX
from pandasrv.taskbuffer.store import Store
from pandasrv.web.context import Services, _TimedCache

ERROR_FIELDS = ("pilotError", "exeError", "ddmError", "supError", "taskBufferError", "jobDispatcherError",
                "brokerageError")
MAX_HOURS = 24 * 366
MAX_PLOT_HOURS = 24 * 7
MAX_FILTER_LENGTH = 256
DEFAULT_SORT = "-PandaID"
# The query parameters each page takes besides ``format``; anything else is a clear 400.
PAGE_PARAMS: dict[str, frozenset[str]] = {
    "overview": frozenset(), "job": frozenset(), "queues": frozenset(), "users": frozenset(),
    "daemon": frozenset(), "plots": frozenset({"hours"}),
    "jobs": frozenset({*FILTER_COLUMNS, "hours", "before", "after", "sort", "limit"}),
}
RECENT_PER_USER = 3
WHOLE_NUMBER = re.compile(r"-?[0-9]{1,19}")  # ASCII digits only: int() would also take "1_000" or Arabic digits


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
    def tb(self) -> Store:
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
        q = parse_job_query(query, self.settings.page_size)
        filters = q.filters
        if viewer.only_user:
            if filters.get("user", viewer.only_user) != viewer.only_user:
                raise PageError(403, "you may only see your own jobs")
            filters["user"] = viewer.only_user
        rows = self.tb.monitor_list_jobs(filters, since=q.since, sort=q.sort, after=q.after, limit=q.limit + 1)
        more = len(rows) > q.limit
        rows = rows[:q.limit]
        others = {k: v for k, v in filters.items() if k != "state"}
        by_state = {} if q.since else {state: n for state, n in self.counts(("jobStatus",), others)}
        last = rows[-1] if more and rows else None
        return {"page": "jobs", "filters": filters, "hours": q.hours, "sort": q.sort, "sorts": list(SORTS),
                "before": q.after[0] if q.after and q.sort == DEFAULT_SORT else None,
                "after": format_key(q.after) if q.after else None, "limit": q.limit,
                "jobs_by_state": by_state, "jobs": rows,
                "next_after": format_key(sort_key(last, q.sort)) if last else None,
                "next_before": last["PandaID"] if last and q.sort == DEFAULT_SORT else None}

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
        """Per user: jobs per state and the most recent submissions (newest PandaIDs), most recently active first."""
        scope = {"user": viewer.only_user} if viewer.only_user else {}
        users: list[dict[str, Any]] = []
        for name, states in _nested(self.counts(("prodUserName", "jobStatus"), scope)).items():
            recent = self.tb.monitor_list_jobs({"user": name}, limit=RECENT_PER_USER)
            users.append({"name": name, "jobs_by_state": states, "total": sum(states.values()), "recent": recent,
                          "last_submission": recent[0]["creationTime"] if recent else None})
        users.sort(key=lambda u: -(u["recent"][0]["PandaID"] if u["recent"] else 0))
        return {"page": "users", "users": users}

    def plots(self, query: dict[str, str], viewer: Viewer) -> dict[str, Any]:
        """Status changes per hour and new state over the last ``hours`` (from job_status_log), and per queue.

        The window ends at the end of the current hour, so the last bar is the hour in progress."""
        if viewer.only_user:
            raise PageError(403, "the plots count every user's jobs; they are not shown with monitor.own_jobs_only")
        hours = _int(query, "hours", 1, MAX_PLOT_HOURS) or 24
        now = utcnow()
        end = now.replace(minute=0, second=0, microsecond=0) + _dt.timedelta(hours=1)
        start = end - _dt.timedelta(hours=hours)
        timeline: list[dict[str, Any]] = [{"start": start + _dt.timedelta(hours=i), "counts": {}} for i in range(hours)]
        for index, state, n in self.tb.monitor_state_timeline(start, _dt.timedelta(hours=1), hours):
            timeline[index]["counts"][state] = n
        by_queue = _nested(self.tb.monitor_queue_changes(start, end))
        present = {state for bucket in timeline for state in bucket["counts"]}
        present |= {state for states in by_queue.values() for state in states}
        return {"page": "plots", "hours": hours, "start": start, "end": end, "bucket_seconds": 3600,
                "states": [state for state in STATE_ORDER if state in present], "timeline": timeline,
                "by_queue": by_queue}

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
                "other_leases": list(leases.values()), "now": utcnow()}


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


@dataclass(frozen=True)
class JobQuery:
    """A jobs page's parsed query: equality filters, time window, sort, keyset position and page size."""

    filters: dict[str, str]
    since: _dt.datetime | None
    hours: int | None
    sort: str
    after: tuple[Any, ...] | None
    limit: int


def check_params(page: str, query: dict[str, str]) -> None:
    """PageError(400) naming the unknown parameters of ``page``, or a value that is not plain text."""
    known = PAGE_PARAMS[page]
    unknown = sorted(set(query) - known - {"format"})
    if unknown:
        listed = ", ".join(sorted(known)) or "none but format"
        raise PageError(400, f"unknown filter {', '.join(unknown)} (known: {listed})")
    for name, value in query.items():
        if len(value) > MAX_FILTER_LENGTH:
            raise PageError(400, f"{name} is longer than {MAX_FILTER_LENGTH} characters")
        if not value.isprintable():
            raise PageError(400, f"{name} must be printable text without control characters")


def parse_job_query(query: dict[str, str], page_size: int) -> JobQuery:
    """A jobs page's query string (whose names ``check_params`` has passed); PageError(400) on a bad value."""
    filters = {name: query[name] for name in FILTER_COLUMNS if query.get(name)}
    if "state" in filters and filters["state"] not in ALL_STATES:
        raise PageError(400, f"unknown job state {filters['state']!r}")
    sort = query.get("sort") or DEFAULT_SORT
    if sort not in SORTS:
        raise PageError(400, f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
    hours = _int(query, "hours", 1, MAX_HOURS)
    before = _int(query, "before", 1, 2**62)
    after = parse_key(query["after"], sort) if query.get("after") else None
    if before is not None:
        if sort != DEFAULT_SORT or after is not None:
            raise PageError(400, f"before goes only with the default sort {DEFAULT_SORT} and without after")
        after = (before,)
    limit = _int(query, "limit", 1, 1000) or page_size
    since = utcnow() - _dt.timedelta(hours=hours) if hours else None
    return JobQuery(filters, since, hours, sort, after, limit)


def format_key(key: tuple[Any, ...]) -> str:
    """A keyset key as the ``after`` parameter: ``PandaID``, or ``<ISO time>_<PandaID>`` for a time sort."""
    return "_".join(value.isoformat() if isinstance(value, _dt.datetime) else str(value) for value in key)


def parse_key(text: str, sort: str) -> tuple[Any, ...]:
    """The inverse of ``format_key`` for ``sort``; PageError(400) when ``text`` is not such a key."""
    column, _ = SORTS[sort]
    parts = text.split("_")
    try:
        if column == "PandaID" and len(parts) == 1:
            return (_bounded_id(parts[0]),)
        if column != "PandaID" and len(parts) == 2:
            return (_dt.datetime.fromisoformat(parts[0]).replace(tzinfo=None), _bounded_id(parts[1]))
    except ValueError:
        pass
    shape = "a PandaID" if column == "PandaID" else "<ISO time>_<PandaID>"
    raise PageError(400, f"after must be {shape} for sort {sort}, not {text!r}")


def _bounded_id(text: str) -> int:
    if not WHOLE_NUMBER.fullmatch(text):
        raise ValueError(text)
    value = int(text)
    if not 1 <= value <= 2**62:
        raise ValueError(text)
    return value


def _int(query: dict[str, str], name: str, low: int, high: int) -> int | None:
    text = query.get(name)
    if not text:
        return None
    if not WHOLE_NUMBER.fullmatch(text):
        raise PageError(400, f"{name} must be a whole number, not {text!r}")
    value = int(text)
    if not low <= value <= high:
        raise PageError(400, f"{name} must be between {low} and {high}")
    return value


STATE_ORDER = sorted(ALL_STATES, key=lambda s: (s in FINAL_STATES, s))
