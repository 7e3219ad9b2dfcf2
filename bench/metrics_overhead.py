"""What the Prometheus metrics cost the pilot path: getJob and heartbeat rates with metrics on (the
default, prometheus-client's multiprocess mode as under ``pandasrv serve``) and off
(``monitor.metrics = false``), back to back on one machine.

    .venv/bin/python bench/metrics_overhead.py --backend postgresql --jobs 3000 --pilots 8 --rounds 3

Each round runs ``bench/web_api.py``'s phases (submit, getJob until the queue is empty, one ``running`` and one
``finished`` heartbeat per job) once with metrics on and once off, in alternating order, each on a fresh
database and a fresh gunicorn; the table gives the median rate over the rounds and the ratio on/off.

On a shared machine whole-server rates vary by more than the metrics cost, so ``--in-process`` measures the
cost directly: one process in multiprocess mode (as a web worker is) serves getJob and a ``running``
heartbeat through two WSGI apps on one SQLite database, one with metrics and one without, in alternating
blocks, and prints the median time per request of each and the difference.

    .venv/bin/python bench/metrics_overhead.py --in-process --requests 3000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import web_api  # noqa: E402
from databases import fresh_database  # noqa: E402

from pandasrv.metrics_dir import VARIABLE  # noqa: E402


def one_run(backend: str, metrics: bool, options: argparse.Namespace) -> dict[str, float]:
    with fresh_database(backend) as db_url, tempfile.TemporaryDirectory(prefix="bench-metrics-") as files:
        web_api.add_queue(db_url)
        os.environ.pop(VARIABLE, None)
        if metrics:
            os.environ[VARIABLE] = files  # gunicorn's workers inherit it, as under pandasrv serve
        extra = {} if metrics else {"monitor__metrics": "false"}
        with web_api.gunicorn(db_url, options.workers, options.threads, options.db_connections, extra) as url:
            results = web_api.run(url, db_url, options.jobs, options.pilots, options.submitters)
        os.environ.pop(VARIABLE, None)
    return {entry["endpoint"]: entry["rate"] for entry in results}


def in_process(requests: int) -> None:
    """Median time per getJob (empty queue: every layer but the claim's row) and per repeated ``running``
    heartbeat, with and without metrics, through falcon's test client (no sockets)."""
    import gzip
    import json

    import falcon.testing

    from pandasrv.config import load_settings
    from pandasrv.submit import JobRequest, build_jobs
    from pandasrv.taskbuffer.db_admin import init_db
    from pandasrv.web.app import create_app

    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        db_url = f"sqlite:///{tmp}/db.sqlite"
        init_db(db_url)
        clients = {}
        for metrics in (True, False):
            app = create_app(load_settings(db_url=db_url, db_bridge=False, access_log=False, log_level="WARNING",
                                           monitor={"metrics": metrics}))
            clients[metrics] = falcon.testing.TestClient(app)
        tb = app.services.task_buffer
        tb.add_queue(web_api.QUEUE, web_api.QUEUE, "online", {})
        (panda_id,) = tb.insert_jobs(build_jobs(JobRequest(site=web_api.QUEUE, transformation="/bin/true"), 1),
                                     status="running")
        calls = {"getJob": {"siteName": web_api.QUEUE, "prodSourceLabel": "user", "node": "bench"},
                 "updateJob running": {"jobId": str(panda_id), "state": "running", "attemptNr": 0}}
        expected = {"getJob": 20, "updateJob running": 0}  # no activated job; the heartbeat applied

        def call(client: Any, method: str, data: dict[str, Any]) -> float:
            started = time.perf_counter()
            reply = client.simulate_post(f"/server/panda/{method.split()[0]}", body=gzip.compress(json.dumps(data).encode()),
                                         headers={"Content-Type": "application/json", "Accept": "application/json"},
                                         remote_addr="127.0.0.1")
            elapsed = time.perf_counter() - started
            if reply.status_code != 200 or int(reply.json["StatusCode"]) != expected[method]:
                raise RuntimeError(f"{method}: {reply.status_code} {reply.text[:200]}")
            return elapsed

        times: dict[tuple[str, bool], list[float]] = {(name, m): [] for name in calls for m in (True, False)}
        block = 100
        for start in range(0, requests, block):
            for metrics in ((True, False) if (start // block) % 2 == 0 else (False, True)):
                for name, data in calls.items():
                    times[(name, metrics)] += [call(clients[metrics], name, data) for _ in range(block)]
    print(f"in process, multiprocess mode, SQLite, {requests} requests each, alternating blocks of {block}")
    print("| call | metrics on, median µs | metrics off, median µs | cost of metrics µs | on / off |")
    print("|---|---:|---:|---:|---:|")
    for name in calls:
        on, off = (statistics.median(times[(name, m)]) * 1e6 for m in (True, False))
        print(f"| {name} | {on:.0f} | {off:.0f} | {on - off:.0f} | {on / off:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="postgresql", choices=("sqlite", "postgresql", "mysql"))
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--pilots", type=int, default=8)
    parser.add_argument("--submitters", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--db-connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--in-process", action="store_true", help="measure the cost per request in one process")
    parser.add_argument("--requests", type=int, default=3000, help="with --in-process: requests per call and mode")
    options = parser.parse_args()
    if options.in_process:
        with tempfile.TemporaryDirectory(prefix="bench-metrics-files-") as files:
            os.environ[VARIABLE] = files  # before prometheus-client is imported, as pandasrv serve does
            in_process(options.requests)
        return
    rates: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for round_number in range(options.rounds):
        for metrics in ((True, False) if round_number % 2 == 0 else (False, True)):
            rates[metrics].append(one_run(options.backend, metrics, options))
            print(f"round {round_number + 1}, metrics {'on' if metrics else 'off'}: "
                  + ", ".join(f"{name} {rate:.0f}/s" for name, rate in rates[metrics][-1].items()), flush=True)
    print(f"\n{options.backend}, {options.jobs} jobs, {options.pilots} pilots, W={options.workers} T={options.threads}, "
          f"median of {options.rounds} rounds")
    print("| phase | metrics on /s | metrics off /s | on / off |")
    print("|---|---:|---:|---:|")
    for name in rates[True][0]:
        on = statistics.median(run[name] for run in rates[True])
        off = statistics.median(run[name] for run in rates[False])
        print(f"| {name} | {on:.0f} | {off:.0f} | {on / off:.2f} |")


if __name__ == "__main__":
    main()
