"""The seed's capacity rule, pandasrv apache against pandasrv serve, and a web worker's memory under load.

    .venv/bin/python bench/capacity.py                # quick
    .venv/bin/python bench/capacity.py --full
    .venv/bin/python bench/capacity.py --full --rss-only   # the worker's RSS after 100,000 / 200,000 getJobs

- **A × R ≈ M × W**: for W = 1, 2, 4 web processes of one thread each (``pandasrv serve --workers W
  --threads 1``: one request at a time per process, as the rule counts them), ``wrk`` drives getJob closed
  loop with more connections than processes until the rate R saturates; A is the mean time per getJob in the
  server's access log (``time=`` of each line) over the same seconds. A·R/(M·W) is each process's busy
  fraction: near 1 while the processes are the bottleneck. On 2 cores it stops predicting capacity once the W
  processes, the database and wrk share the cores: A grows with W and R stops growing, so R = W / A measured
  at W = 1 overestimates.
- **pandasrv apache / pandasrv serve** at equal W × T (``bench/apache_vs_serve.apache``), getJob by wrk, in
  turn.
- **RSS**: one ``pandasrv serve`` worker (W = 1) serves getJob; its VmRSS after N and 2N requests.

The load generator is Debian's ``wrk`` (C, event loop; installed by the bench when missing): it spends a few
percent of a core at these rates, which is why it is not the bottleneck (its own CPU time is in the notes).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import web_api  # noqa: E402
from bench.apache_vs_serve import apache  # noqa: E402
from bench.databases import fresh_database  # noqa: E402
from bench.figures import Figure, RunOptions, Section, Series  # noqa: E402
from bench.history import add_activated, print_section  # noqa: E402
from bench.loadgen import WrkRun, run_wrk  # noqa: E402
from pandasrv.taskbuffer.wrapped_cursor import connect  # noqa: E402

WORKERS = (1, 2, 4)
# C per web process: the admission limit max(T, 2 C) = 8 per process stays above the connections that
# gunicorn's workers accept unevenly, so that no closed-loop request is shed
DB_CONNECTIONS = 4
APACHE_W, APACHE_T = 2, 4
RSS_LIMIT_MB, RSS_GROWTH = 80.0, 0.05
_ACCESS = re.compile(r"pandasrv\.access \w+ [A-Z]+ \S+ (\w+) caller=\S+ status=(\d+) time=([\d.]+)ms")


# --- pure parts: the access log, /proc ---------------------------------------------------------

def access_durations(lines: Iterable[str], method: str = "getJob") -> list[float]:
    """The durations (seconds) of the successful ``method`` calls in lines of pandasrv's access log
    (``... pandasrv.access INFO POST panda getJob caller=pandasrv status=200 time=3.2ms``)."""
    durations = []
    for line in lines:
        found = _ACCESS.search(line)
        if found and found.group(1) == method and found.group(2) == "200":
            durations.append(float(found.group(3)) / 1000)
    return durations


def failures(run: WrkRun) -> int:
    """Requests of a run that did not get a job: shed (503), refused, or lost on the socket."""
    return run.shed + run.failed + run.socket_errors


def vm_rss_mb(status: str) -> float:
    """VmRSS of a /proc/PID/status text, in MB (10^6 bytes)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise ValueError("no VmRSS line")


# --- the load generator ----------------------------------------------------------------------------------

@dataclass
class Load:
    """getJob by wrk (``bench/loadgen.py``, its post script) on a new connection per request, as the pilot
    does: on keep-alive connections gunicorn's first worker to wake accepts all of them (measured: 433 of 433
    requests on one of 2 workers), and W would not matter. Adds up wrk's own CPU time and the failures."""

    body: str
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    requests: int = 0
    failed: int = 0

    def run(self, url: str, connections: int, seconds: float) -> WrkRun:
        env = {"BENCH_PATH": "/server/panda/getJob", "BENCH_BODY": self.body, "BENCH_OK": '"PandaID"',
               "BENCH_CLOSE": "1"}
        result = run_wrk(url, "post", connections, seconds, env)
        if result.empty:
            raise RuntimeError(f"{result.empty} getJobs found the queue empty: a cheaper call than the measured one")
        self.cpu_seconds += result.cpu_seconds
        self.wall_seconds += result.seconds
        self.requests += result.requests
        self.failed += failures(result)
        return result

    def warm(self, url: str, connections: int, timeout: float = 60) -> None:
        """Load until a second passes with at most 5 % failed getJobs: the first getJob in a web process (its
        ConBridge child, its caches) took 5.5 s on the loaded machine, and the requests queued behind it
        were shed. Warm-up runs count in neither the rates nor the failures."""
        deadline = time.monotonic() + timeout
        counts = self.requests, self.failed, self.wall_seconds, self.cpu_seconds
        while failures(result := self.run(url, connections, 1)) > 0.05 * result.requests or not result.ok:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} still fails getJobs after {timeout:g} s of warm-up: {result}")
        self.requests, self.failed, self.wall_seconds, self.cpu_seconds = counts

    def note(self) -> str:
        share = self.cpu_seconds / self.wall_seconds if self.wall_seconds else 0.0
        return (f"load generator: Debian's wrk (bench/loadgen.py: a thread per connection, closed loop, a "
                f"connection per request as the pilot), {share:.0%} of one core on average while it ran; "
                f"{self.failed} of its {self.requests:,} requests failed (counted out of every rate)")


# --- servers -----------------------------------------------------------------------------------------------

@dataclass
class Served:
    url: str
    pid: int
    log: Path

    def log_size(self) -> int:
        return self.log.stat().st_size

    def access_since(self, offset: int) -> list[float]:
        with self.log.open(errors="replace") as stream:
            stream.seek(offset)
            return access_durations(stream)

    def workers(self) -> list[int]:
        """The web worker processes: the children of gunicorn's master (this process)."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        return [int(pid) for pid in children]


@contextmanager
def serve(db_url: str, workers: int, threads: int, access_log: bool = True) -> Iterator[Served]:
    """``pandasrv serve --no-daemon`` on a free port, its log (with the access log) in a file."""
    port = web_api.free_port()
    env = {**os.environ, "PANDASRV_DB_URL": db_url, "PANDASRV_AUTH": "none",
           "PANDASRV_ACCESS_LOG": str(access_log).lower(), "PANDASRV_LOG_LEVEL": "INFO",
           "PANDASRV_DB_CONNECTIONS": str(DB_CONNECTIONS)}
    with tempfile.NamedTemporaryFile(prefix="pandasrv-bench-serve-", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
        proc = subprocess.Popen([sys.executable, "-m", "pandasrv.cli", "serve", "--no-daemon", "--port", str(port),
                                 "--workers", str(workers), "--threads", str(threads)],
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        web_api.wait_until_alive(url, proc, "pandasrv serve")
        yield Served(url, proc.pid, log_path)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log_path.unlink()


def activated_jobs(db_url: str) -> int:
    conn = connect(db_url)
    try:
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*) FROM jobs_active WHERE jobStatus = 'activated'")
        return int(cur.fetchall()[0][0])
    finally:
        conn.close()


class Reservoir:
    """Activated jobs for getJob to hand out: a getJob that finds none is cheaper and would flatter R."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url

    def ensure(self, count: int) -> None:
        missing = count - activated_jobs(self.db_url)
        if missing > 0:
            add_activated(self.db_url, missing)

    def check(self, what: str) -> None:
        if activated_jobs(self.db_url) == 0:
            raise RuntimeError(f"{what}: the queue ran empty, so the last getJobs found no job")


# --- the three measurements --------------------------------------------------------------------------------

@dataclass
class RuleRun:
    workers: int
    rate: float
    mean_seconds: float

    @property
    def busy(self) -> float:
        """A × R / (M × W) with M = 1."""
        return self.mean_seconds * self.rate / self.workers


def capacity_rule(db_url: str, load: Load, repeats: int, seconds: int) -> dict[int, list[RuleRun]]:
    runs: dict[int, list[RuleRun]] = {w: [] for w in WORKERS}
    reservoir = Reservoir(db_url)
    with ExitStack() as stack:
        servers = {w: stack.enter_context(serve(db_url, w, 1)) for w in WORKERS}
        for _ in range(repeats):
            for w, server in servers.items():
                reservoir.ensure(2000 * seconds)
                load.warm(server.url, 2 * w)
                offset = server.log_size()
                result = load.run(server.url, 2 * w, seconds)
                reservoir.check(f"W={w}")
                durations = server.access_since(offset)
                runs[w].append(RuleRun(w, result.rate, statistics.mean(durations)))
    return runs


def apache_against_serve(db_url: str, load: Load, repeats: int, seconds: int) -> tuple[list[float], list[float]]:
    """getJob rates (per second) through pandasrv apache and through pandasrv serve, W x T alike, in turn."""
    rates: dict[str, list[float]] = {"apache": [], "serve": []}
    reservoir = Reservoir(db_url)
    connections = APACHE_W * APACHE_T
    with ExitStack() as stack:
        urls = {"apache": stack.enter_context(apache(db_url, APACHE_W, APACHE_T, DB_CONNECTIONS)),
                "serve": stack.enter_context(serve(db_url, APACHE_W, APACHE_T, access_log=False)).url}
        for _ in range(repeats):
            for name, url in urls.items():
                reservoir.ensure(2000 * seconds)
                load.warm(url, connections)
                rates[name].append(load.run(url, connections, seconds).rate)
                reservoir.check(name)
    return rates["apache"], rates["serve"]


def worker_rss(db_url: str, load: Load, checkpoints: tuple[int, int]) -> tuple[list[tuple[int, float]], float]:
    """One worker (W = 1, T = 4) serves getJob until each checkpoint of requests (not counting the warm-up's);
    its VmRSS (MB) there, and its VmRSS before any request."""
    reservoir = Reservoir(db_url)
    reservoir.ensure(checkpoints[-1] + 2000)
    points: list[tuple[int, float]] = []
    with serve(db_url, 1, 4, access_log=False) as server:
        (worker,) = server.workers()
        status = Path(f"/proc/{worker}/status")
        start = vm_rss_mb(status.read_text())
        load.warm(server.url, 4)  # its first getJobs (ConBridge child, caches) are shed on a loaded machine
        served, rate = 0, 300.0
        for checkpoint in checkpoints:
            while served < checkpoint:
                result = load.run(server.url, 4, max(1, min(20, round((checkpoint - served) / rate))))
                if failures(result) > 0.01 * result.requests:  # a rare timeout at load 20 is counted in the notes
                    raise RuntimeError(f"{failures(result)} failed getJobs while measuring RSS")
                served += result.ok
                rate = max(result.rate, 1.0)
            points.append((served, vm_rss_mb(status.read_text())))
        reservoir.check("RSS")
    return points, start


# --- the section -------------------------------------------------------------------------------------------

def checkpoints_for(quick: bool) -> tuple[int, int]:
    return (4_000, 8_000) if quick else (100_000, 200_000)


def rss_figures(rss_points: list[tuple[int, float]], rss_start: float, quick: bool) -> list[Figure]:
    """The two RSS figures: the absolute limit after the first checkpoint, the growth to the second."""
    (n1, rss1), (n2, rss2) = rss_points
    mode = "quick mode: fewer requests than the issue's 100,000 / 200,000; " if quick else ""
    return [
        Figure(name=f"web worker RSS after {n1:,} getJob", unit="MB", samples=[rss1], target=RSS_LIMIT_MB,
               higher_is_better=False,
               note=f"{mode}pandasrv serve W=1 T=4, /proc/PID/status VmRSS of the worker; {rss_start:.1f} MB "
                    "before load"),
        Figure(name=f"web worker RSS after {n2:,} getJob", unit="MB", samples=[rss2], reference=f"after {n1:,}",
               reference_samples=[rss1], target=1 + RSS_GROWTH, higher_is_better=False,
               note=f"{mode}growth between the two counts, target ≤ {RSS_GROWTH:.0%}"),
    ]


def rss_section(options: RunOptions) -> Section:
    """The RSS measurement alone (``--rss-only``): at full size it takes most of the section's time."""
    load = Load(body="")
    notes = [f"PostgreSQL; RSS only; load average {os.getloadavg()[0]:.1f} at start (2 cores)"]
    with tempfile.TemporaryDirectory(prefix="pandasrv-bench-wrk-") as tmp, fresh_database("postgresql") as db_url:
        load.body = str(Path(tmp) / "getjob.json")
        Path(load.body).write_text(json.dumps(web_api.GETJOB_REQUEST))
        web_api.add_queue(db_url)
        started = time.perf_counter()
        rss_points, rss_start = worker_rss(db_url, load, checkpoints_for(options.quick))
        notes.append(f"seconds: RSS {time.perf_counter() - started:.0f}; load average "
                     f"{os.getloadavg()[0]:.1f} at the end")
    notes.append(load.note())
    return Section(title="Worker memory", figures=rss_figures(rss_points, rss_start, options.quick), notes=notes)


def section(options: RunOptions) -> Section:
    quick = options.quick
    seconds = 2 if quick else 10
    checkpoints = checkpoints_for(quick)
    load = Load(body="")
    notes = [f"PostgreSQL; load average {os.getloadavg()[0]:.1f} at start (2 cores)"]
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="pandasrv-bench-wrk-") as tmp, fresh_database("postgresql") as db_url:
        load.body = str(Path(tmp) / "getjob.json")
        Path(load.body).write_text(json.dumps(web_api.GETJOB_REQUEST))
        web_api.add_queue(db_url)
        started = time.perf_counter()
        runs = capacity_rule(db_url, load, options.repeats, seconds)
        rule_done = time.perf_counter()
        apache_rates, serve_rates = apache_against_serve(db_url, load, options.repeats, seconds)
        apache_done = time.perf_counter()
        rss_points, rss_start = worker_rss(db_url, load, checkpoints)
        notes.append(f"seconds: capacity rule {rule_done - started:.0f}, apache/serve {apache_done - rule_done:.0f},"
                     f" RSS {time.perf_counter() - apache_done:.0f}")

    for w, by_w in runs.items():
        figures.append(Figure(
            name=f"A·R/(M·W) at W={w}", unit="ratio", samples=[run.busy for run in by_w], target=0.8,
            note=f"R median {statistics.median(r.rate for r in by_w):.0f} getJob/s, A median "
                 f"{statistics.median(r.mean_seconds for r in by_w) * 1000:.2f} ms (access log), T=1, "
                 f"{2 * w} wrk connections, {seconds} s per run"))
    figures.append(Figure(
        name="getJob rate at W=4 against W/A₁ (the rule's prediction from W=1)", unit="getJob/s",
        samples=[run.rate for run in runs[4]], reference="4 / A measured at W=1",
        reference_samples=[4 / run.mean_seconds for run in runs[1]],
        note="below 1: where A × R < M × W stops predicting capacity, the 2 cores being shared"))
    figures.append(Figure(
        name=f"getJob through pandasrv apache (W={APACHE_W}, T={APACHE_T})", unit="getJob/s", samples=apache_rates,
        reference=f"pandasrv serve, W={APACHE_W}, T={APACHE_T}", reference_samples=serve_rates, target=0.85,
        note=f"wrk, {APACHE_W * APACHE_T} connections, C={DB_CONNECTIONS}, {seconds} s per run, access logs off; the target "
             "is within 15 % either way (1.18 would be as far above)"))
    figures.extend(rss_figures(rss_points, rss_start, quick))
    series = [
        Series(name="getJob saturation rate against W", x_label="W (web processes, T=1)", y_label="getJob/s",
               points=[(float(w), statistics.median(r.rate for r in by_w)) for w, by_w in runs.items()]),
        Series(name="A (mean getJob time, access log) against W", x_label="W (web processes, T=1)",
               y_label="ms", points=[(float(w), statistics.median(r.mean_seconds for r in by_w) * 1000)
                                     for w, by_w in runs.items()]),
    ]
    notes.append(load.note())
    return Section(title="Capacity rule, Apache, worker memory", figures=figures, series=series, notes=notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rss-only", action="store_true", help="only the worker's RSS at the two checkpoints")
    args = parser.parse_args()
    started = time.perf_counter()
    run = rss_section if args.rss_only else section
    print_section(run(RunOptions(quick=not args.full, repeats=args.repeats)))
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
