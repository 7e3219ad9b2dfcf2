"""``GET /metrics`` (Prometheus text format) and the middleware that counts and times every request.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``pandasrv serve`` sets it) the values of all processes are added up
at scrape time; without it (a single process, e.g. tests building the app in-process) the process's own
registry is served. Jobs per state and queue are read from the database by a collector, at most once per
``monitor.metrics_counts_seconds`` per process, never on every scrape.
"""

from __future__ import annotations

import os
import time
from typing import Any, Iterator

import falcon
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from pandasrv import metrics
from pandasrv.taskbuffer.errors import DBError
from pandasrv.web.context import Services, _TimedCache
from pandasrv.web.registry import LEGACY, REGISTRY


def method_label(path: str) -> str:
    """A bounded label for a request path: the registered API method, or the area of the site."""
    parts = path.strip("/").split("/")
    if parts[:2] == ["server", "panda"] and len(parts) == 3:
        return parts[2] if REGISTRY.find(LEGACY, parts[2]) else "unregistered"
    if parts[:2] == ["api", "v1"] and len(parts) == 4:
        return f"{parts[2]}/{parts[3]}" if REGISTRY.find(parts[2], parts[3]) else "unregistered"
    return parts[0] if parts[0] in ("monitor", "cache", "metrics") else "other"


class RequestMetrics:
    """Falcon middleware: one count (method, status) and one latency sample per request."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.metrics_started = time.perf_counter()

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        started = getattr(req.context, "metrics_started", None)
        if started is None:
            return
        label = method_label(req.path)
        metrics.HTTP_REQUESTS.labels(label, str(resp.status)[:3]).inc()
        metrics.HTTP_DURATION.labels(label).observe(time.perf_counter() - started)


class JobCounts:
    """A collector: ``pandasrv_jobs{state,queue}`` from the job tables, cached per process."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._cache = _TimedCache(services.settings.monitor.metrics_counts_seconds)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rows = self._cache.get("jobs", lambda: self.services.task_buffer.monitor_job_counts(
            ("computingSite", "jobStatus"), {}, True))
        family = GaugeMetricFamily("pandasrv_jobs", "Jobs in the database, by state and queue.",
                                   labels=("state", "queue"))
        for queue, state, n in rows:
            family.add_metric((str(state), str(queue)), n)
        yield family


class MetricsResource:
    """Serves the exposition of every process's metrics plus the job counts."""

    def __init__(self, services: Services) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            multiprocess.MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]  # untyped in the library
        else:
            self.registry = DEFAULT_REGISTRY
        self.jobs = JobCounts(services)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.set_header("Cache-Control", "no-store")
        try:
            jobs = generate_latest(_Only(self.jobs))
        except DBError as exc:
            resp.status = falcon.HTTP_503
            resp.content_type = "text/plain"
            resp.data = f"cannot read the job counts: {exc.__class__.__name__}".encode()
            return
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = generate_latest(self.registry) + jobs


class _Only(CollectorRegistry):
    """A registry of one collector, built per scrape (so a failing DB read fails the scrape, not the app)."""

    def __init__(self, collector: JobCounts) -> None:
        super().__init__(auto_describe=False)
        self.register(collector)
