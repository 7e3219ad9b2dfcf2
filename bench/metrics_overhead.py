"""What the Prometheus metrics cost the pilot path: getJob and heartbeat rates with metrics on (the
default, prometheus-client's multiprocess mode as under ``pandasrv serve``) and off
(``monitor.metrics = false``), back to back on one machine.

    .venv/bin/python bench/metrics_overhead.py --backend postgresql --jobs 3000 --pilots 8 --rounds 3

Each round runs ``bench/web_api.py``'s phases (submit, getJob until the queue is empty, one ``running`` and one
``finished`` heartbeat per job) once with metrics on and once off, in alternating order, each on a fresh
database and a fresh gunicorn; the table gives the median rate over the rounds and the ratio off/on.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

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
    options = parser.parse_args()
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
