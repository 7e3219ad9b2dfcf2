"""``/metrics`` of a real ``pandasrv serve`` (2 gunicorn workers + the daemon) after a known sequence.

Submit N jobs, claim M of them, ask K times on an empty queue, send H heartbeats, and let a failing sync
daemon script run once (taking over a lease another machine let expire): the scraped values, summed by
prometheus-client over every process, equal those counts exactly.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pandasrv.daemon.lease import to_epoch
from pandasrv.taskbuffer.owners import LEASE_PREFIX
from tests.conftest import fresh_database, selected_backends
from tests.waiting import wait_for
from tests.web.conftest import RunningServer, start_server
from tests.web.helpers import pilot_call, submit_activated

N_SUBMITTED, N_CLAIMED, N_EMPTY = 6, 4, 3
SCRIPT = "always_fails"
DAEMON = {"n_proc": 1, "scripts": {SCRIPT: {"module": "tests.web.failing_script", "period": 3600, "sync": True}}}


@pytest.fixture(scope="module", params=selected_backends())
def metered(request: pytest.FixtureRequest, test_databases: Any,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server of its own (the counters are per server), whose daemon runs only the failing script."""
    backend = request.param
    workdir = tmp_path_factory.mktemp(f"metrics-{backend}")
    with fresh_database(test_databases, backend, workdir, prefix="pandasrv_m") as db_url:
        from pandasrv.config import load_settings
        from pandasrv.taskbuffer.task_buffer import TaskBuffer

        tb = TaskBuffer(load_settings(db_url=db_url, db_bridge=False, db_connections=1))
        try:
            assert tb.acquire_lease(LEASE_PREFIX + SCRIPT, "elsewhere-1-0000", 0.5)
            # once the other machine's lease has expired, the daemon takes it over
            assert wait_for(lambda: to_epoch(tb.get_lease_expiry(LEASE_PREFIX + SCRIPT)) < time.time(), 30)
        finally:
            tb.close()
        with start_server(db_url, backend, workdir, {"PANDASRV_DAEMON": json.dumps(DAEMON)}, daemon=True) as running:
            yield running


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reply = httpx.get(f"{url}/metrics", timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(reply.text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape_until(url: str, check: Any, timeout: float = 60) -> dict:
    """Scrape until ``check`` holds (daemon runs and the cached job counts arrive asynchronously); the last
    scrape, for the assertions that follow to say what was missing."""
    last: list[dict] = []

    def holds() -> bool:
        last.append(scrape(url))
        return bool(check(last[-1]))

    wait_for(holds, timeout, step=0.5)
    return last[-1]


def test_scraped_counts_equal_the_sequence(metered: RunningServer) -> None:
    queue, empty = metered.add_queue(), metered.add_queue()
    ids = submit_activated(metered, queue, N_SUBMITTED)

    def get_job(site: str) -> dict[str, Any]:
        return pilot_call(metered.url, "getJob", {"siteName": site, "prodSourceLabel": "user", "node": "n1"})

    with ThreadPoolExecutor(4) as pool:  # concurrent connections: both workers serve some of them
        claimed = list(pool.map(get_job, [queue] * N_CLAIMED))
        empties = list(pool.map(get_job, [empty] * N_EMPTY))
    assert sorted(int(reply["PandaID"]) for reply in claimed) == sorted(ids)[:N_CLAIMED]
    assert all(int(reply["StatusCode"]) == 20 for reply in empties)
    running = [int(reply["PandaID"]) for reply in claimed[:2]]
    for panda_id in running:
        assert int(pilot_call(metered.url, "updateJob", {"jobId": panda_id, "state": "running"})["StatusCode"]) == 0

    samples = scrape_until(metered.url, lambda s: value(s, "pandasrv_daemon_script_runs_total", script=SCRIPT,
                                                    result="error") >= 1
                       and value(s, "pandasrv_jobs", state="running", queue=queue) == len(running))
    assert value(samples, "pandasrv_jobs_dispatched_total") == N_CLAIMED
    assert value(samples, "pandasrv_job_claims_empty_total") == N_EMPTY
    assert value(samples, "pandasrv_heartbeats_total", state="running") == len(running)
    assert value(samples, "pandasrv_http_requests_total", method="getJob", status="200") == N_CLAIMED + N_EMPTY
    assert value(samples, "pandasrv_http_requests_total", method="updateJob", status="200") == len(running)
    assert value(samples, "pandasrv_http_requests_total", method="job/submit", status="200") == 1
    assert value(samples, "pandasrv_http_request_duration_seconds_count", method="getJob") == N_CLAIMED + N_EMPTY
    assert value(samples, "pandasrv_jobs", state="activated", queue=queue) == N_SUBMITTED - N_CLAIMED
    assert value(samples, "pandasrv_jobs", state="sent", queue=queue) == N_CLAIMED - len(running)
    assert value(samples, "pandasrv_daemon_script_runs_total", script=SCRIPT, result="error") == 1
    assert value(samples, "pandasrv_daemon_script_failures_total", script=SCRIPT) == 1
    assert value(samples, "pandasrv_daemon_script_duration_seconds_count", script=SCRIPT) == 1
    assert value(samples, "pandasrv_daemon_lease_acquisitions_total", script=SCRIPT) == 1
    assert value(samples, "pandasrv_daemon_lease_takeovers_total", script=SCRIPT) == 1
    assert value(samples, "pandasrv_db_pool_checkout_seconds_count") > 0
    assert value(samples, "pandasrv_db_pool_wait_seconds_count") == value(samples, "pandasrv_db_pool_checkout_seconds_count")
    assert value(samples, "pandasrv_conbridge_calls_total") > 0
    assert value(samples, "pandasrv_conbridge_timeouts_total") == 0


def test_a_scrape_is_a_request_of_its_own_and_bounded_in_labels(metered: RunningServer) -> None:
    before = value(scrape(metered.url), "pandasrv_http_requests_total", method="metrics", status="200")
    httpx.get(f"{metered.url}/server/panda/noSuchMethod", timeout=30)
    samples = scrape(metered.url)
    assert value(samples, "pandasrv_http_requests_total", method="metrics", status="200") == before + 1
    assert value(samples, "pandasrv_http_requests_total", method="unregistered", status="403") >= 1
    assert not any(dict(labels).get("method") == "noSuchMethod" for _, labels in samples)


@pytest.mark.parametrize("enabled", [True, False])
def test_metrics_can_be_switched_off_and_the_api_is_unchanged(test_databases: Any, tmp_path: Path,
                                                              enabled: bool) -> None:
    """``monitor.metrics = false`` (the "without" of bench/metrics_overhead.py) removes /metrics and the
    per-request middleware; every API reply stays the same."""
    from prometheus_client import REGISTRY

    from tests.web.inproc import in_process_app

    def counted() -> float:
        found = REGISTRY.get_sample_value("pandasrv_http_requests_total", {"method": "isAlive", "status": "200"})
        return found or 0.0

    with in_process_app(test_databases, "sqlite", tmp_path, monitor={"metrics": enabled}) as app:
        before = counted()
        assert app.request("GET", "/server/panda/isAlive").text == "alive=yes"
        assert counted() - before == (1 if enabled else 0)
        assert app.request("GET", "/metrics").status_code == (200 if enabled else 404)
        assert app.request("GET", "/monitor/jobs").status_code == 200
