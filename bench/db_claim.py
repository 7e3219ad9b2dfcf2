"""DB layer benchmark: bulk insert, concurrent claims (in-process and through ConBridge), bridge overhead.

    .venv/bin/python bench/db_claim.py                       # all three backends
    .venv/bin/python bench/db_claim.py --backend postgresql --jobs 10000 --claimers 8 --repeat 3

Per backend, on a fresh database: bulk-inserts ``--jobs`` activated jobs (batches of 1,000, each job
with an input, an output and a log file) and reports jobs/s; then ``--claimers`` processes drain the
queue with one-job ``claim_jobs`` calls and the wall time gives claims/s, once with an in-process
DBProxy per claimer and once with a ConBridge per claimer; finally the ConBridge overhead is the
difference of the median latency of trivial calls (``ping``) through a bridge and in-process.
Every figure is the median over ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from databases import fresh_database  # noqa: E402

from pandasrv.config import load_settings  # noqa: E402
from pandasrv.taskbuffer.claim_request import ClaimRequest  # noqa: E402
from pandasrv.taskbuffer.con_bridge import ConBridge  # noqa: E402
from pandasrv.taskbuffer.db_proxy import DBProxy  # noqa: E402
from pandasrv.taskbuffer.file_spec import FileSpec  # noqa: E402
from pandasrv.taskbuffer.job_spec import JobSpec  # noqa: E402

SITE = "BENCH_SITE"
BATCH = 1000
TARGETS = {"insert": 10_000, "claim_pg": 2_000, "overhead_us": 150}


def make_jobs(n: int, offset: int) -> list[JobSpec]:
    jobs = []
    for i in range(offset, offset + n):
        job = JobSpec(jobName=f"bench.{i}", computingSite=SITE, prodSourceLabel="managed", currentPriority=i % 100,
                      transformation="run.sh", jobParameters=f"--event-range {i}", prodUserName="bench")
        job.add_file(FileSpec(lfn=f"in.{i}.root", type="input", dataset="bench.in", status="ready"))
        job.add_file(FileSpec(lfn="out.$PANDAID.root", type="output", dataset="bench.out"))
        job.add_file(FileSpec(lfn="log.$PANDAID.tgz", type="log", dataset="bench.log"))
        jobs.append(job)
    return jobs


def bulk_insert(db_url: str, n_jobs: int) -> float:
    """Insert n_jobs activated jobs in batches; returns jobs/s over the inserts only."""
    proxy = DBProxy(db_url)
    batches = [make_jobs(min(BATCH, n_jobs - start), start) for start in range(0, n_jobs, BATCH)]
    proxy.ping()
    started = time.perf_counter()
    for batch in batches:
        proxy.insert_jobs(batch, status="activated")
    elapsed = time.perf_counter() - started
    proxy.close()
    return n_jobs / elapsed


def claimer(db_url: str, bridged: bool, start: Any, results: Any) -> None:
    """Claim one job per call until the queue is empty; reports (claims, first call, last call)."""
    proxy = ConBridge(load_settings(db_url=db_url, db_timeout=60)) if bridged else DBProxy(db_url)
    proxy.ping()
    start.wait()
    claims, began = 0, time.perf_counter()
    while proxy.claim_jobs(ClaimRequest(site=SITE, labels=("managed",), n=1, node="bench")):
        claims += 1
    results.put((claims, began, time.perf_counter()))
    proxy.close()


def claim_rate(db_url: str, n_claimers: int, bridged: bool) -> tuple[float, int]:
    """claims/s of n_claimers processes draining the queue, and the number of claims."""
    context = multiprocessing.get_context("forkserver")
    start, results = context.Event(), context.Queue()
    processes = [context.Process(target=claimer, args=(db_url, bridged, start, results)) for _ in range(n_claimers)]
    for process in processes:
        process.start()
    time.sleep(1.0 if bridged else 0.5)  # let every claimer connect before the clock starts
    start.set()
    outcomes = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
    claims = sum(o[0] for o in outcomes)
    elapsed = max(o[2] for o in outcomes) - min(o[1] for o in outcomes)
    return claims / elapsed, claims


def bridge_overhead(db_url: str, calls: int) -> tuple[float, float]:
    """Median latency (µs) of ping in-process and through a ConBridge."""
    direct, bridge = DBProxy(db_url), ConBridge(load_settings(db_url=db_url, db_timeout=60))
    medians = []
    for proxy in (direct, bridge, direct, bridge):
        proxy.ping()
        samples = []
        for _ in range(calls):
            began = time.perf_counter()
            proxy.ping()
            samples.append(time.perf_counter() - began)
        medians.append(statistics.median(samples) * 1e6)
    direct.close()
    bridge.close()
    return min(medians[0], medians[2]), min(medians[1], medians[3])


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, float]:
    runs: dict[str, list[float]] = {"insert": [], "claim": [], "claim_bridge": [], "direct_us": [], "bridge_us": []}
    for _ in range(args.repeat):
        for key, bridged in (("claim", False), ("claim_bridge", True)):
            with fresh_database(backend, "bench_claim") as db_url:
                runs["insert"].append(bulk_insert(db_url, args.jobs))
                rate, claims = claim_rate(db_url, args.claimers, bridged)
                if claims != args.jobs:
                    raise SystemExit(f"{backend}: {claims} claims for {args.jobs} jobs")
                runs[key].append(rate)
                if bridged:
                    direct_us, bridge_us = bridge_overhead(db_url, args.calls)
                    runs["direct_us"].append(direct_us)
                    runs["bridge_us"].append(bridge_us)
    return {key: statistics.median(values) for key, values in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", choices=("sqlite", "postgresql", "mysql"))
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--claimers", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--calls", type=int, default=5000, help="trivial calls per overhead sample")
    args = parser.parse_args()
    backends = args.backend or ["sqlite", "postgresql", "mysql"]

    print(f"{args.jobs} jobs, {args.claimers} claimer processes, median of {args.repeat} runs, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    header = (f"{'backend':<11} {'insert jobs/s':>13} {'claims/s':>9} {'claims/s bridged':>16} "
              f"{'ping µs':>8} {'bridged µs':>10} {'overhead µs':>11}")
    print(header)
    print("-" * len(header))
    for backend in backends:
        r = run_backend(backend, args)
        print(f"{backend:<11} {r['insert']:>13,.0f} {r['claim']:>9,.0f} {r['claim_bridge']:>16,.0f} "
              f"{r['direct_us']:>8.0f} {r['bridge_us']:>10.0f} {r['bridge_us'] - r['direct_us']:>11.0f}", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at end")
    print(f"targets: insert >= {TARGETS['insert']:,} jobs/s (PostgreSQL), claims >= {TARGETS['claim_pg']:,}/s "
          f"(PostgreSQL in-process), ConBridge overhead <= {TARGETS['overhead_us']} µs/call")


if __name__ == "__main__":
    main()
