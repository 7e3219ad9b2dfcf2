"""Report section: pandasrv's API rates beside the reference apps, back to back in one run on PostgreSQL.

    .venv/bin/python -m bench.report --section api_rates

``pandasrv serve`` (ConBridge on, the default; W = 2 x T = 4, access log off, auth none) and the reference apps
(bench/refapps/, gunicorn gthread with the same W x T) run side by side on fresh databases; wrk (bench/loadgen.py)
drives each with C = W x T connections for a fixed window, target and reference runs interleaved (A B A B ...) so
that the shared machine's load drifts hit both. Figures:

- getJob against the minimal claim app (target: 0.75 of its rate); the queue is topped up before every window;
- the pilot cycle (getJob, starting, running x3, finished with a file report; pandasrv's daemon master runs, so
  its Adder finalises the jobs meanwhile) against the minimal cycle app (target 0.60); cycles per second;
- submit in calls of 1,000 jobs (target 6,000 jobs/s; two httpx threads, a fixed number of calls: a call lasts
  about a second) and update_jobs_bulk of 100 running heartbeats (target 3,000 heartbeats/s), absolute;
- falcon's hello world: the ceiling of the stack and of the load generator.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

from bench.databases import fresh_database
from bench.figures import Figure, RunOptions, Section, quantile
from bench.loadgen import WrkRun, ensure_wrk, run_wrk
from bench.stack import pandasrv_serve, refapp
from bench.web_api import QUEUE, add_queue, submit_batch
from pandasrv.submit import JobRequest, build_jobs, encode_jobs
from pandasrv.taskbuffer.claim_request import ClaimRequest
from pandasrv.taskbuffer.db_proxy import DBProxy
from pandasrv.taskbuffer.wrapped_cursor import connect

WORKERS, THREADS = 2, 4
CONNECTIONS = WORKERS * THREADS
SUBMIT_BATCH, BULK = 1000, 100
# Two submitters, as a pair of panda-client sessions: W x T bodies of 1.6 MB at once overload the server (it sheds).
SUBMIT_CONNECTIONS = 2
LABELS = ("user", "managed", "test")
GETJOB_BODY = json.dumps({"siteName": QUEUE, "computingElement": QUEUE, "prodSourceLabel": "user", "node": "bench",
                          "diskSpace": 100000, "mem": 4000.0, "cpu": 2600.0})


def window(options: RunOptions) -> float:
    return 3.0 if options.quick else 10.0


def top_up(db_url: str, activated: int) -> None:
    """Insert activated jobs (submit's form: outputs and a log file) until the queue holds ``activated``."""
    missing = activated - _scalar(db_url, "SELECT COUNT(*) FROM jobs_active WHERE computingSite = :site "
                                          "AND jobStatus = 'activated'", {"site": QUEUE})
    if missing <= 0:
        return
    proxy = DBProxy(db_url)
    try:
        proxy.connect()
        for start in range(0, missing, SUBMIT_BATCH):
            request = JobRequest(site=QUEUE, transformation="/bin/true", arguments="bench")
            proxy.insert_jobs(build_jobs(request, min(SUBMIT_BATCH, missing - start)), status="activated")
    finally:
        proxy.close()


def _scalar(db_url: str, sql: str, binds: dict[str, str] | None = None) -> int:
    conn = connect(db_url)
    try:
        cur = conn.cursor()
        cur.execute(sql, binds or {})
        row = cur.fetchone()
        conn.rollback()
        return int(row[0]) if row else 0
    finally:
        conn.close()


def _pending_reports(db_url: str) -> int:
    """Output reports pandasrv's Adder has not finalised yet."""
    return _scalar(db_url, "SELECT COUNT(*) FROM job_output_report")


def _latencies(runs: list[WrkRun]) -> str:
    return (f"p50 {statistics.median(r.p50_ms for r in runs):.1f} ms, p95 {statistics.median(r.p95_ms for r in runs):.1f}"
            f" ms; 503s retried {sum(r.shed for r in runs)}, failed {sum(r.failed for r in runs)}, "
            f"socket errors {sum(r.socket_errors for r in runs)}")


def _interleaved(repeats: int, first: Callable[[], WrkRun], second: Callable[[], WrkRun]) -> tuple[list[WrkRun], list[WrkRun]]:
    """A B A B ...: the target and its reference alternate, so that a drift of the machine's load hits both."""
    a_runs, b_runs = [], []
    for _ in range(repeats):
        a_runs.append(first())
        b_runs.append(second())
    return a_runs, b_runs


class Phases:
    """Wall time of each phase of the section, for the report's notes (the quick report has 5 minutes in all)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.monotonic()

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = now - self._last
        self._last = now

    def note(self) -> str:
        return "wall time per phase: " + ", ".join(f"{name} {value:.0f} s" for name, value in self.seconds.items())


def _check(runs: list[WrkRun], what: str) -> None:
    if not all(run.ok for run in runs):
        raise RuntimeError(f"{what}: a run completed nothing: {runs}")


def getjob_figures(options: RunOptions, seconds: float, phases: Phases) -> list[Figure]:
    """getJob against the minimal claim app, the falcon hello ceiling, update_jobs_bulk and submit."""
    env = {"BENCH_PATH": "/server/panda/getJob", "BENCH_OK": '"PandaID"'}
    depth = int(seconds * 1500) + 500
    with fresh_database("postgresql") as db_url, ExitStack() as stack, \
            tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        add_queue(db_url)
        body = Path(tmp) / "getjob.json"
        body.write_text(GETJOB_BODY)
        env["BENCH_BODY"] = str(body)
        pandas = stack.enter_context(pandasrv_serve(db_url, WORKERS, THREADS))
        claim = stack.enter_context(refapp("claim", WORKERS, THREADS, db_url))
        hello = stack.enter_context(refapp("hello", WORKERS, THREADS))
        phases.mark("database and servers")

        def getjob(url: str) -> Callable[[], WrkRun]:
            def run() -> WrkRun:
                top_up(db_url, depth)
                return run_wrk(url, "post", CONNECTIONS, seconds, env)
            return run

        for url in (pandas, claim):  # warm-up: connections, caches, the claim's statistics
            top_up(db_url, depth)
            run_wrk(url, "post", CONNECTIONS, 1, env)
        ours, minimal = _interleaved(options.repeats, getjob(pandas), getjob(claim))
        _check(ours + minimal, "getJob")
        phases.mark("getJob")
        ceiling = [run_wrk(hello, "post", CONNECTIONS, seconds, {"BENCH_PATH": "/", "BENCH_OK": "hello"})
                   for _ in range(options.repeats)]
        phases.mark("hello")
        bulk = bulk_runs(db_url, pandas, options, seconds, Path(tmp))
        phases.mark("update_jobs_bulk")
        submit = submit_runs(pandas, options)
        phases.mark("submit")

    hello_rate = statistics.median(r.rate for r in ceiling)
    ours_rate = statistics.median(r.rate for r in ours)
    return [
        Figure("getJob", "jobs/s", [r.rate for r in ours], reference="minimal claim app",
               reference_samples=[r.rate for r in minimal], target=0.75,
               note=f"pandasrv {_latencies(ours)}; minimal claim app {_latencies(minimal)}; {CONNECTIONS} connections, "
                    f"{seconds:g} s windows, queue topped up to {depth} activated jobs before each"),
        Figure("falcon hello world (stack and load generator ceiling)", "req/s", [r.rate for r in ceiling],
               note=f"{_latencies(ceiling)}; {hello_rate / ours_rate:.1f} x pandasrv's getJob rate; wrk's own CPU: "
                    f"{statistics.median(r.cpu_us_per_request for r in ceiling):.0f} µs per request here, "
                    f"{statistics.median(r.cpu_us_per_request for r in ours):.0f} µs per pandasrv getJob "
                    f"({statistics.median(r.cpu_seconds / r.seconds for r in ours) * 100:.1f} % of one core): wrk is not "
                    "what limits the figures above"),
        Figure("update_jobs_bulk, 100 running heartbeats a call", "heartbeats/s", [r.rate * BULK for r in bulk],
               target=3000.0, note=f"{_latencies(bulk)}; one set of {BULK} sent jobs per connection"),
        Figure("submit, calls of 1,000 jobs", "jobs/s", [r.rate * SUBMIT_BATCH for r in submit], target=6000.0,
               note=f"{_latencies(submit)}; panda-client's wire form, {SUBMIT_CONNECTIONS} httpx threads, "
                    f"{submit[0].requests} calls per sample"),
    ]


def bulk_runs(db_url: str, url: str, options: RunOptions, seconds: float, tmp: Path) -> list[WrkRun]:
    """update_jobs_bulk: each connection sends the running heartbeats of its own 100 sent jobs, over and over."""
    top_up(db_url, CONNECTIONS * BULK)
    proxy = DBProxy(db_url)
    try:
        for index in range(1, CONNECTIONS + 1):
            jobs = proxy.claim_jobs(ClaimRequest(site=QUEUE, n=BULK, labels=LABELS, node="bench"))
            if len(jobs) != BULK:
                raise RuntimeError(f"update_jobs_bulk: claimed {len(jobs)} jobs, not {BULK}")
            entries = [{"job_id": job.PandaID, "job_status": "running", "node": "bench"} for job in jobs]
            (tmp / f"bulk-{index}.json").write_text(json.dumps({"job_list": entries}))
    finally:
        proxy.close()
    env = {"BENCH_PATH": "/api/v1/pilot/update_jobs_bulk", "BENCH_BODY": str(tmp / "bulk-%d.json"),
           "BENCH_OK": '"success": true'}
    run_wrk(url, "post", CONNECTIONS, 1, env)
    runs = [run_wrk(url, "post", CONNECTIONS, seconds, env) for _ in range(options.repeats)]
    _check(runs, "update_jobs_bulk")
    return runs


def submit_runs(url: str, options: RunOptions) -> list[WrkRun]:
    """Submit in calls of 1,000 jobs from two threads, a fixed number of calls per sample timed from the first
    send to the last reply: a call takes about a second here, too long for wrk's fixed window to count whole
    calls. The client's share is sending 1.6 MB per call, little beside the server's work."""
    jobs = build_jobs(JobRequest(site=QUEUE, transformation="/bin/true", arguments="bench"), SUBMIT_BATCH)
    body = json.dumps(encode_jobs(jobs))
    calls = SUBMIT_CONNECTIONS * (1 if options.quick else 5)
    runs = []
    with ThreadPoolExecutor(SUBMIT_CONNECTIONS) as pool:
        list(pool.map(submit_batch, [(url, body)] * SUBMIT_CONNECTIONS))  # warm-up
        for _ in range(options.repeats):
            started = time.perf_counter()
            times = [elapsed for _, elapsed in pool.map(submit_batch, [(url, body)] * calls)]
            wall = time.perf_counter() - started
            runs.append(WrkRun(seconds=wall, requests=calls, ok=calls, shed=0, failed=0, empty=0, socket_errors=0,
                               p50_ms=quantile(times, 0.5) * 1000, p95_ms=quantile(times, 0.95) * 1000))
    return runs


def cycle_figure(options: RunOptions, seconds: float, phases: Phases) -> Figure:
    """Whole pilot cycles per second: pandasrv serve with its daemon (the Adder finalises the reports) against
    the minimal cycle app, which archives the job in the final update itself. Each on its own database."""
    env = {"BENCH_SITE": QUEUE}
    depth = int(seconds * 400) + 500
    backlog: list[int] = []
    with ExitStack() as stack:
        ours_db = stack.enter_context(fresh_database("postgresql"))
        minimal_db = stack.enter_context(fresh_database("postgresql"))
        for db_url in (ours_db, minimal_db):
            add_queue(db_url)
            top_up(db_url, depth)
        pandas = stack.enter_context(pandasrv_serve(ours_db, WORKERS, THREADS, daemon=True))
        minimal = stack.enter_context(refapp("cycle", WORKERS, THREADS, minimal_db))
        phases.mark("cycle: databases and servers")

        def cycles(url: str, db_url: str, is_ours: bool) -> Callable[[], WrkRun]:
            def run() -> WrkRun:
                top_up(db_url, depth)
                result = run_wrk(url, "cycle", CONNECTIONS, seconds, env)
                if is_ours:
                    backlog.append(_pending_reports(db_url))
                return result
            return run

        run_wrk(pandas, "cycle", CONNECTIONS, 1, env)
        run_wrk(minimal, "cycle", CONNECTIONS, 1, env)
        ours, reference = _interleaved(options.repeats, cycles(pandas, ours_db, True),
                                       cycles(minimal, minimal_db, False))
        _check(ours + reference, "pilot cycle")
        drained = _drain(ours_db)
        phases.mark("pilot cycle")
        archived = [_scalar(db, "SELECT COUNT(*) FROM jobs_archived WHERE jobStatus = 'finished'")
                    for db in (ours_db, minimal_db)]
    return Figure("pilot cycle (getJob, starting, running x3, finished + Adder)", "cycles/s", [r.rate for r in ours],
                  reference="minimal cycle app", reference_samples=[r.rate for r in reference], target=0.60,
                  note=f"pandasrv {_latencies(ours)}; minimal {_latencies(reference)}; output reports the Adder had "
                       f"not taken at the end of each window: {backlog}, all finalised {drained}; jobs archived as "
                       f"finished (warm-ups included): pandasrv {archived[0]}, minimal {archived[1]}")


def _drain(db_url: str, timeout: float = 60) -> str:
    """Waits until pandasrv's Adder has taken every output report; says how long that took."""
    started = time.monotonic()
    while _pending_reports(db_url):
        if time.monotonic() - started > timeout:
            return f"NOT within {timeout:.0f} s"
        time.sleep(0.2)
    return f"{time.monotonic() - started:.1f} s after the last window"


def section(options: RunOptions) -> Section:
    if options.backend != "postgresql":
        raise RuntimeError("api_rates measures PostgreSQL only (the reference apps use psycopg)")
    ensure_wrk()
    seconds = window(options)
    phases = Phases()
    figures = getjob_figures(options, seconds, phases)
    figures.append(cycle_figure(options, seconds, phases))
    return Section(
        title="API rates against the reference apps",
        figures=figures,
        notes=[f"pandasrv serve (ConBridge on) and the reference apps of bench/refapps/ under gunicorn, W = {WORKERS}, "
               f"T = {THREADS}; load generator wrk, {CONNECTIONS} connections, one per wrk thread; "
               f"{options.repeats} interleaved windows of {seconds:g} s per figure", phases.note()],
    )
