"""Time the monitor's jobs pages on a large PostgreSQL database (issue 9's target: p50 < 100 ms with
1,000,000 archived and 10,000 active jobs, first page and a page deep into the list).

    .venv/bin/python bench/monitor_pages.py --archived 1000000 --active 10000 --requests 30

The rows are generated in the database (``generate_series``: 40 queues, 200 users, four labels, a year of
modification times), then ``VACUUM ANALYZE``; a ``pandasrv serve --no-daemon`` (W=2, T=4) serves the pages.
Each page is asked ``--requests`` times after two warm-up requests, one at a time (the figure is the page's
own latency, not a throughput); the counts per state at the top of the page come from the per-process cache
(``monitor.counts_cache_seconds``), and the "cold" rows repeat the two main pages with that cache off, so that
every request also counts 1M rows per state.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from databases import fresh_database  # noqa: E402
from web_api import free_port, wait_until_alive  # noqa: E402

from pandasrv.taskbuffer.wrapped_cursor import connect  # noqa: E402

STATES_ARCHIVED = "ARRAY['finished','finished','finished','failed','cancelled','closed']"
STATES_ACTIVE = "ARRAY['activated','activated','running','starting','sent','holding','transferring']"


def fill(db_url: str, table: str, first_id: int, count: int, states: str) -> None:
    """``count`` job rows with the columns the pages show and filter on."""
    conn = connect(db_url)
    try:
        age = f"(({first_id} + {count} - i) * 31536000.0 / {count})"  # seconds: a year, newest last
        conn.cursor().execute(
            f"INSERT INTO {table} (PandaID, jobStatus, computingSite, prodUserName, prodSourceLabel, jobName,"
            " modificationTime, creationTime, currentPriority, attemptNr, VO)"
            f" SELECT i, ({states})[1 + i % 6], 'QUEUE_' || (i % 40), 'user' || (i % 200),"
            " (ARRAY['user','managed','test','ptest'])[1 + i % 4], 'bench.job.' || i,"
            f" LOCALTIMESTAMP - make_interval(secs => {age}), LOCALTIMESTAMP - make_interval(secs => {age} + 600),"
            f" 1000, 1, 'bench' FROM generate_series({first_id}, {first_id + count - 1}) AS i")
        conn.commit()
    finally:
        conn.close()


def analyze(db_url: str) -> None:
    conn = connect(db_url)
    try:
        conn.raw.autocommit = True
        conn.cursor().execute("VACUUM ANALYZE")
    finally:
        conn.close()


@contextmanager
def server(db_url: str, counts_cache_seconds: float) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PANDASRV_DB_URL": db_url, "PANDASRV_AUTH": "none", "PANDASRV_ACCESS_LOG": "false",
           "PANDASRV_LOG_LEVEL": "WARNING", "PANDASRV_MONITOR__COUNTS_CACHE_SECONDS": str(counts_cache_seconds)}
    proc = subprocess.Popen([sys.executable, "-m", "pandasrv.cli", "serve", "--no-daemon", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "2", "--threads", "4"], env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_alive(url, proc, "pandasrv serve")
        yield url
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)


def timed(client: httpx.Client, url: str, requests: int) -> list[float]:
    times = []
    for i in range(requests + 2):
        started = time.perf_counter()
        reply = client.get(url)
        elapsed = time.perf_counter() - started
        if reply.status_code != 200 or not ("job-link" in reply.text or "job-state" in reply.text):
            raise RuntimeError(f"{url}: HTTP {reply.status_code} {reply.text[:200]}")
        if i >= 2:
            times.append(elapsed * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archived", type=int, default=1_000_000)
    parser.add_argument("--active", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    deep = args.archived // 2
    pages = {
        "jobs, first page": "/monitor/jobs",
        "jobs, deep page (before the middle PandaID)": f"/monitor/jobs?before={deep}",
        "state=finished, deep page": f"/monitor/jobs?state=finished&before={deep}",
        "queue=QUEUE_7": "/monitor/jobs?queue=QUEUE_7",
        "user=user42, deep page": f"/monitor/jobs?user=user42&before={deep}",
        "sort=-modificationTime": "/monitor/jobs?sort=-modificationTime",
        "hours=24": "/monitor/jobs?hours=24",
        "a job's detail (archived)": f"/monitor/jobs/{deep}",
    }
    with fresh_database("postgresql", prefix="bench_monitor") as db_url:
        started = time.perf_counter()
        fill(db_url, "jobs_archived", 1, args.archived, STATES_ARCHIVED)
        fill(db_url, "jobs_active", args.archived + 1, args.active, STATES_ACTIVE)
        analyze(db_url)
        print(f"filled {args.archived:,} archived + {args.active:,} active jobs in {time.perf_counter() - started:.0f} s")
        rows = []
        for cache, names in ((10.0, list(pages)), (0.0, list(pages)[:2])):
            with server(db_url, cache) as url, httpx.Client(timeout=120) as client:
                for name in names:
                    times = timed(client, url + pages[name], args.requests)
                    label = name if cache else f"{name}, counts uncached"
                    rows.append((label, statistics.median(times), sorted(times)[int(len(times) * 0.95) - 1]))
    print(f"\n| page ({args.archived:,} archived, {args.active:,} active, PostgreSQL) | p50 ms | p95 ms |")
    print("|---|---:|---:|")
    for label, p50, p95 in rows:
        print(f"| {label} | {p50:.1f} | {p95:.1f} |")


if __name__ == "__main__":
    main()
