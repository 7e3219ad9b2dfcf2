"""Harvester benchmark: ``harvester/update_workers`` (100 workers per call) and ``pilot/update_jobs_bulk``
(100 jobs per call) against a real gunicorn server, as Harvester's communicator sends them.

    .venv/bin/python bench/harvester_api.py --backend postgresql --calls 50 --clients 4 --workers 2

Each client process owns its own Harvester worker IDs and jobs; every call first registers 100 new workers
(insert), then moves them to running (update). The bulk job updates send ``running`` heartbeats for
100 jobs a pilot factory holds. Prints calls/s, items/s and the median / p95 round trip.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from databases import fresh_database  # noqa: E402
from web_api import QUEUE, activate_all, add_queue, gunicorn  # noqa: E402

from pandasrv.submit import JobRequest, build_jobs  # noqa: E402
from pandasrv.taskbuffer.db_proxy import DBProxy  # noqa: E402

PER_CALL = 100
HEADERS = {"Accept": "application/json", "Content-Type": "application/json"}


def worker_entry(worker_id: int, status: str) -> dict[str, Any]:
    return {"workerID": worker_id, "batchID": f"{worker_id}.0", "queueName": QUEUE, "status": status,
            "computingSite": QUEUE, "nCore": 1, "submitTime": "datetime/2026-12-02 10:00:00.000000",
            "jobType": "managed", "resourceType": "SCORE", "nJobs": 1, "computingElement": "ce1",
            "syncLevel": 0, "submissionHost": "submit1", "harvesterHost": "harvester1", "minRamCount": 2000}


def update_workers_client(args: tuple[str, int, int]) -> list[float]:
    url, client_index, calls = args
    times: list[float] = []
    with httpx.Client(timeout=120) as http:
        for call_index in range(calls):
            first = (client_index * calls + call_index) * PER_CALL + 1
            for status in ("submitted", "running"):
                body = {"harvester_id": "bench", "workers": [worker_entry(first + i, status) for i in range(PER_CALL)]}
                started = time.perf_counter()
                reply = http.post(f"{url}/api/v1/harvester/update_workers", json=body, headers=HEADERS).json()
                times.append(time.perf_counter() - started)
                assert reply["success"], reply
    return times


def bulk_jobs_client(args: tuple[str, list[int], int]) -> list[float]:
    url, panda_ids, rounds = args
    times: list[float] = []
    with httpx.Client(timeout=120) as http:
        for _ in range(rounds):
            for start in range(0, len(panda_ids), PER_CALL):
                jobs = [{"job_id": pid, "site_name": QUEUE, "job_status": "running", "attempt_nr": 0,
                         "core_count": 1, "node": "wn1"} for pid in panda_ids[start:start + PER_CALL]]
                started = time.perf_counter()
                reply = http.post(f"{url}/api/v1/pilot/update_jobs_bulk", json={"job_list": jobs,
                                                                                "harvester_id": "bench"},
                                  headers=HEADERS).json()
                times.append(time.perf_counter() - started)
                assert reply["success"], reply
    return times


def sent_jobs(db_url: str, n: int) -> list[int]:
    proxy = DBProxy(db_url)
    proxy.connect()
    try:
        jobs = build_jobs(JobRequest(site=QUEUE, transformation="/bin/true", label="managed"), n)
        ids = proxy.insert_jobs(jobs, "defined")
    finally:
        proxy.close()
    activate_all(db_url, ids)
    proxy = DBProxy(db_url)
    proxy.connect()
    try:
        for start in range(0, n, 1000):
            proxy.set_job_status(ids[start:start + 1000], "sent")
    finally:
        proxy.close()
    return ids


def report(name: str, calls: int, wall: float, times: list[float]) -> None:
    times = sorted(times)
    p95 = times[int(0.95 * (len(times) - 1))]
    print(f"{name:28s} {calls:6d} calls  {calls / wall:8.1f} calls/s  {calls * PER_CALL / wall:9.0f} items/s"
          f"  median {statistics.median(times) * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="postgresql", choices=("sqlite", "postgresql", "mysql"))
    parser.add_argument("--calls", type=int, default=50, help="update_workers calls per client and status")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2000, help="jobs for the bulk updates")
    options = parser.parse_args()
    with fresh_database(options.backend) as db_url:
        add_queue(db_url)
        ids = sent_jobs(db_url, options.jobs)
        with gunicorn(db_url, options.workers, options.threads, options.threads, {}) as url:
            with multiprocessing.get_context("spawn").Pool(options.clients) as pool:
                started = time.perf_counter()
                parts = pool.map(update_workers_client, [(url, i, options.calls) for i in range(options.clients)])
                wall = time.perf_counter() - started
                times = [t for part in parts for t in part]
                report("harvester/update_workers", len(times), wall, times)
                shares = [ids[i::options.clients] for i in range(options.clients)]
                started = time.perf_counter()
                parts = pool.map(bulk_jobs_client, [(url, share, 2) for share in shares])
                wall = time.perf_counter() - started
                times = [t for part in parts for t in part]
                report("pilot/update_jobs_bulk", len(times), wall, times)


if __name__ == "__main__":
    main()
