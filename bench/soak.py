"""Fault soak: jobs through retrying pilot emulators while the server's processes and the database are hit.

    .venv/bin/python bench/soak.py --jobs 5000 --pilots 16            # the figures in bench/README.md
    .venv/bin/python bench/soak.py --db postgresql://postgres@127.0.0.1:5432/somedb --jobs 1000

Starts ``pandasrv serve`` (gunicorn W x T and the supervised daemon master, ``add_main`` and
``recover_claims`` on short periods, ``watcher.unconfirmed`` short) on a fresh PostgreSQL database, submits
the jobs, then lets P pilot threads speak the pilot's wire protocol (gzip-JSON ``getJob``, ``updateJob``
running then finished with a file report; a 503 or a broken connection is tried again, as pilot3 does,
and a ``tobekilled`` answer makes the pilot drop the job). Meanwhile every ``--kill-every`` seconds a
random web worker or the daemon master (in turn) gets ``kill -9``, and once, when ``--db-kill-at`` of the
jobs are done, every session of the database is terminated and new ones are refused for ``--db-outage``
seconds (a database restart as the server sees it, without touching the other databases of the server).

At the end it prints the figures and exits 1 unless duplicates, lost, stuck and client errors are all 0:

- duplicate: a job whose ``running`` was accepted from two pilots (or one attempt handed out twice);
- lost: a job that did not finish and is no longer live (missing, failed, cancelled);
- stuck: a job still live (sent, running, holding, ...) ``--settle`` seconds after the pilots stopped;
- client error: a reply a pilot cannot use and must not retry (any HTTP status but 200 and 503, or a
  200 that is not the protocol's form);
- waits: the longest retry of one call, the longest time from a job's first claim to its last (a lost
  getJob reply given back, from ``job_status_log``), the longest time a reported job stayed ``holding``;
- recovery: from the moment the database accepts connections again to the first pilot call served, and
  to the first job the Adder finishes.

``--db-restart CMD`` runs CMD (e.g. ``pg_ctl restart`` of a private server) instead of the outage; never
point it at a server other databases use.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import gzip
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from web_api import free_port, wait_until_alive  # noqa: E402

from pandasrv.submit import JobRequest, build_jobs, encode_jobs  # noqa: E402
from pandasrv.taskbuffer.db_proxy import DBProxy  # noqa: E402
from pandasrv.taskbuffer.wrapped_cursor import connect  # noqa: E402

QUEUE = "SOAK_QUEUE"
BATCH = 500
LIVE = ("defined", "assigned", "activated", "sent", "starting", "running", "holding", "transferring", "merging")
RETRY_PAUSE = 0.3


@dataclass
class Options:
    jobs: int = 5000
    pilots: int = 16
    workers: int = 4
    threads: int = 4
    kill_every: float = 8.0
    db_kill_at: float = 0.4
    db_outage: float = 1.0
    unconfirmed: int = 10
    settle: float = 90.0
    db_restart: str = ""  # a shell command that restarts the database server, run instead of the outage
    deadline: float = 900.0
    stall: float = 0.0  # > 0: the pilots also stop once no job has finished for this many seconds
    workdir: Path = Path("/tmp")


@dataclass
class Stats:
    """What the pilots and the fault thread saw; one lock for all of it."""

    total: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    handed: dict[int, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))  # pid: (attempt, pilot)
    running: dict[int, set[tuple[int, int]]] = field(default_factory=lambda: defaultdict(set))
    finished_at: dict[int, float] = field(default_factory=dict)  # pid: time.time() of the accepted final update
    refused: Counter = field(default_factory=Counter)
    retried: Counter = field(default_factory=Counter)
    client_errors: list[str] = field(default_factory=list)
    longest_retry: float = 0.0
    kills: Counter = field(default_factory=Counter)
    db_back: float | None = None
    db_fault_seconds: float | None = None  # how long the outage (or the restart command) took
    first_served_after_db: float | None = None
    adder_after_db: float | None = None

    def done(self) -> bool:
        with self.lock:
            return len(self.finished_at) >= self.total


class ClientError(Exception):
    """A reply the pilot cannot use and must not retry."""


def parse_reply(text: str) -> dict[str, Any]:
    """How pilot3 reads a legacy reply: a JSON object, else a query string."""
    if text.startswith("{"):
        return json.loads(text)
    return {key: values[0] for key, values in parse_qs(text).items()}


class Pilot:
    """One pilot emulator: its own keep-alive connection, one job at a time."""

    def __init__(self, number: int, url: str, stats: Stats, stop: threading.Event) -> None:
        self.number, self.url, self.stats, self.stop = number, url, stats, stop
        self.client = httpx.Client(timeout=60, limits=httpx.Limits(max_keepalive_connections=1))

    def call(self, method: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """One call, tried again after a 503 or a transport error until served (None once told to stop)."""
        first = time.monotonic()
        body = gzip.compress(json.dumps(data).encode())
        while not self.stop.is_set():
            try:
                response = self.client.post(f"{self.url}/server/panda/{method}", content=body,
                                            headers={"Content-Type": "application/json"})
            except httpx.TransportError as exc:
                self._retry(type(exc).__name__)
                continue
            if response.status_code == 503:
                self._retry("503")
                continue
            try:
                if response.status_code != 200:
                    raise ClientError(f"HTTP {response.status_code}")
                reply = parse_reply(response.text)
                if "StatusCode" not in reply:
                    raise ClientError("no StatusCode")
            except (ClientError, ValueError) as exc:
                with self.stats.lock:
                    self.stats.client_errors.append(f"{method}: {exc}: {response.text[:200]!r}")
                raise ClientError(str(exc)) from None
            self._served(time.monotonic() - first)
            return reply
        return None

    def _retry(self, why: str) -> None:
        with self.stats.lock:
            self.stats.retried[why] += 1
        time.sleep(RETRY_PAUSE * (0.5 + random.random()))

    def _served(self, waited: float) -> None:
        now = time.time()
        with self.stats.lock:
            self.stats.longest_retry = max(self.stats.longest_retry, waited)
            if self.stats.db_back is not None and self.stats.first_served_after_db is None and now > self.stats.db_back:
                self.stats.first_served_after_db = now

    def run(self) -> None:
        request = {"siteName": QUEUE, "computingElement": QUEUE, "prodSourceLabel": "user",
                   "node": f"soak-{self.number}", "diskSpace": 100000, "mem": 4000.0, "cpu": 2600.0}
        while not self.stop.is_set() and not self.stats.done():
            reply = self.call("getJob", request)
            if reply is None:
                return
            if int(reply["StatusCode"]) != 0 or "PandaID" not in reply:
                time.sleep(RETRY_PAUSE)  # nothing to run now: lost replies come back after watcher.unconfirmed
                continue
            self.run_job(reply)

    def run_job(self, job: dict[str, Any]) -> None:
        panda_id, attempt = int(job["PandaID"]), int(job["attemptNr"])
        with self.stats.lock:
            self.stats.handed[panda_id].append((attempt, self.number))
        report = json.dumps({job["logFile"]: {"guid": job.get("logGUID") or "5d8e4b8c-2f0a-4e0b-9a55-%012d" % panda_id,
                                              "fsize": 1024, "adler32": "0a1b2c3d"}})
        for state in ("running", "finished"):
            data = {"jobId": str(panda_id), "state": state, "attemptNr": attempt, "siteName": QUEUE,
                    "node": f"soak-{self.number}", "schedulerID": "soak", "pilotID": f"soak|PR|{self.number}"}
            if state == "finished":
                data.update(pilotErrorCode=0, transExitCode=0, exeErrorCode=0, xml=report)
            reply = self.call("updateJob", data)
            if reply is None:
                return
            if int(reply["StatusCode"]) != 0 or reply.get("command") == "tobekilled":
                with self.stats.lock:
                    self.stats.refused[state] += 1  # given back meanwhile: another pilot runs it
                return
            with self.stats.lock:
                if state == "running":
                    self.stats.running[panda_id].add((attempt, self.number))
                else:
                    self.stats.finished_at.setdefault(panda_id, time.time())


# --- the server and the faults ----------------------------------------------------------------------

def server_settings(db_url: str, options: Options) -> dict[str, str]:
    daemon = {"n_proc": 2, "scripts": {
        "add_main": {"period": 60, "loop": True, "arguments": ["200", "0.2"]},
        "recover_claims": {"period": 2}}}
    return {"PANDASRV_DB_URL": db_url, "PANDASRV_AUTH": "none", "PANDASRV_ACCESS_LOG": "false",
            "PANDASRV_LOG_LEVEL": "INFO", "PANDASRV_META_CACHE_SECONDS": "0", "PANDASRV_DAEMON": json.dumps(daemon),
            "PANDASRV_WATCHER": json.dumps({"unconfirmed": options.unconfirmed})}


@contextlib.contextmanager
def serve(db_url: str, options: Options) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """``pandasrv serve`` with the daemon, its log in the work directory, stopped (group) at the end."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANDASRV_")}
    env.update(server_settings(db_url, options))
    log_path = options.workdir / f"soak-server-{port}.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "pandasrv.cli", "serve", "--host", "127.0.0.1", "--port",
                                    str(port), "--workers", str(options.workers), "--threads", str(options.threads)],
                                   env=env, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_alive(url, process, f"pandasrv serve (log: {log_path})")
        yield url, process, log_path
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def children(server_pid: int, command_part: str) -> list[int]:
    """Live children of the server whose command line contains ``command_part``."""
    found = []
    for child in psutil.Process(server_pid).children():
        with contextlib.suppress(psutil.NoSuchProcess):
            if command_part in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child.pid)
    return found


def database_outage(db_url: str, seconds: float) -> int:
    """Terminate every session of the database and refuse new ones for ``seconds``; returns the sessions killed."""
    parts = urlsplit(db_url)
    name = parts.path.lstrip("/")
    admin = connect(parts._replace(path="/postgres").geturl())
    try:
        admin.raw.autocommit = True
        cursor = admin.cursor()
        cursor.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            pids = [row[0] for row in cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()",
                {"name": name}).fetchall()]
            killed = sum(bool(cursor.execute("SELECT pg_terminate_backend(:pid)", {"pid": pid}).fetchone()[0])
                         for pid in pids)
            time.sleep(seconds)
        finally:
            cursor.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    finally:
        admin.close()
    return killed


def count_finished(db_url: str, ids: list[int]) -> int:
    return sum(status == "finished" for status in statuses(db_url, ids).values())


def statuses(db_url: str, ids: list[int]) -> dict[int, str]:
    proxy = DBProxy(db_url)
    try:
        found: dict[int, str] = {}
        for start in range(0, len(ids), 1000):
            found.update({pid: row[0] for pid, row in proxy.get_job_status(ids[start:start + 1000]).items()})
        return found
    finally:
        proxy.close()


def faults(server_pid: int, db_url: str, ids: list[int], options: Options, stats: Stats,
           stop: threading.Event) -> None:
    """kill -9 a web worker and the daemon master in turn; the database outage once, past ``db_kill_at``."""
    turn = 0
    while not stop.wait(options.kill_every):
        kind, command_part = (("web worker", "pandasrv.cli"), ("daemon master", "pandasrv.daemon.master"))[turn % 2]
        turn += 1
        candidates = children(server_pid, command_part)
        if candidates:
            with contextlib.suppress(ProcessLookupError):
                os.kill(random.choice(candidates), signal.SIGKILL)
                with stats.lock:
                    stats.kills[kind] += 1
        with stats.lock:
            due = stats.db_back is None and len(stats.finished_at) >= options.db_kill_at * stats.total
        if due:
            fault_started = time.time()
            if options.db_restart:  # a private server: the one the tests share must not be restarted
                subprocess.run(options.db_restart, shell=True, check=True)
                hit = {"database restart": 1}
            else:
                hit = {"database sessions": database_outage(db_url, options.db_outage), "database outage": 1}
            with stats.lock:
                stats.kills.update(hit)
                stats.db_back = time.time()
                stats.db_fault_seconds = stats.db_back - fault_started
            watch_adder(db_url, ids, stats, stop)


def watch_adder(db_url: str, ids: list[int], stats: Stats, stop: threading.Event) -> None:
    """The first job the Adder finishes after the outage (the pilots' recovery is seen by the pilots)."""
    before = None
    deadline = time.monotonic() + 120
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            now = count_finished(db_url, ids)
        except Exception:  # noqa: BLE001 - the database may still refuse us for a moment
            time.sleep(0.2)
            continue
        if before is None:
            before = now
        elif now > before:
            with stats.lock:
                stats.adder_after_db = time.time()
            return
        time.sleep(0.2)


# --- the run -----------------------------------------------------------------------------------------

def add_queue(db_url: str) -> None:
    proxy = DBProxy(db_url)
    try:
        proxy.add_queue(QUEUE, QUEUE, "online", {"astorages": {a: ["LOCAL_DISK"] for a in ("pr", "pw", "pl")}})
    finally:
        proxy.close()


def submit_all(url: str, db_url: str, jobs: int) -> list[int]:
    """Submit through the API (503s tried again), then wait for the Setupper to activate every job."""
    specs = build_jobs(JobRequest(site=QUEUE, transformation="/bin/true", arguments="soak"), jobs)
    ids: list[int] = []
    with httpx.Client(timeout=120) as client:
        for start in range(0, jobs, BATCH):
            body = json.dumps(encode_jobs(specs[start:start + BATCH]))
            while True:
                reply = client.post(f"{url}/api/v1/job/submit", content=body,
                                    headers={"Content-Type": "application/json", "Accept": "application/json"})
                if reply.status_code != 503:
                    break
                time.sleep(1)
            data = reply.json()
            if not data.get("success"):
                raise RuntimeError(f"submit failed: {data}")
            ids += [int(entry[0]) for entry in data["data"]]
    deadline = time.monotonic() + 300
    while any(status != "activated" for status in statuses(db_url, ids).values()):
        if time.monotonic() > deadline:
            raise RuntimeError("the submitted jobs were not all activated within 300 s")
        time.sleep(0.5)
    return ids


def claimed_again(db_url: str) -> list[float]:
    """Per job claimed more than once (its reply lost, the claim given back): seconds from its first claim to
    its last, from ``job_status_log`` (the soak's database holds only the soak's jobs)."""
    conn = connect(db_url)
    try:
        rows = conn.cursor().execute(
            "SELECT PandaID, MIN(modificationTime), MAX(modificationTime) FROM job_status_log "
            "WHERE jobStatus = 'sent' GROUP BY PandaID HAVING COUNT(*) > 1").fetchall()
    finally:
        conn.close()
    return [(last - first).total_seconds() for _, first, last in rows]


def stuck_details(db_url: str, stuck: list[int]) -> list[str]:
    """Up to 10 stuck jobs with their output report's lock: what the operator would look at first."""
    if not stuck:
        return []
    conn = connect(db_url)
    try:
        rows = {row[0]: row[1:] for row in conn.cursor().execute(
            f"SELECT PandaID, attemptNr, lockedBy, lockedTime, timeStamp FROM job_output_report "
            f"WHERE PandaID IN ({','.join(str(int(pid)) for pid in stuck[:10])})").fetchall()}
    finally:
        conn.close()
    return [f"{pid}: report {rows.get(pid, 'none')}" for pid in stuck[:10]]


def longest_holding(db_url: str, stats: Stats) -> float:
    """The longest time from a job's accepted final update to the Adder finishing it."""
    proxy = DBProxy(db_url)
    try:
        longest = 0.0
        ids = list(stats.finished_at)
        for start in range(0, len(ids), 1000):
            for job in proxy.peek_jobs(ids[start:start + 1000], with_files=False, archived=True):
                if job is not None and job.jobStatus == "finished":
                    done = job.modificationTime.replace(tzinfo=_dt.UTC).timestamp()
                    longest = max(longest, done - stats.finished_at[job.PandaID])
        return longest
    finally:
        proxy.close()


def wait_for_pilots(threads: list[threading.Thread], stats: Stats, options: Options, started: float) -> None:
    """Until the pilots are done, the deadline has passed, or (``stall``) no job has finished for ``stall``
    seconds: a bound on a run that has stopped making progress, whatever the pace of the machine."""
    progress_since = time.time()
    while any(thread.is_alive() for thread in threads):
        if time.monotonic() - started > options.deadline:
            return
        with stats.lock:
            last = max(stats.finished_at.values(), default=progress_since)
        if options.stall and time.time() - last > options.stall:
            return
        next(thread for thread in threads if thread.is_alive()).join(1.0)


def run_soak(db_url: str, options: Options) -> dict[str, Any]:
    """Run the whole soak on an initialised PostgreSQL database; returns the figures."""
    add_queue(db_url)
    with serve(db_url, options) as (url, process, log_path):
        ids = submit_all(url, db_url, options.jobs)
        stats = Stats(total=len(ids))
        stop, stop_faults = threading.Event(), threading.Event()
        pilots = [Pilot(n, url, stats, stop) for n in range(options.pilots)]
        threads = [threading.Thread(target=p.run, name=f"pilot-{p.number}") for p in pilots]
        fault_thread = threading.Thread(target=faults, args=(process.pid, db_url, ids, options, stats, stop_faults))
        started = time.monotonic()
        for thread in threads + [fault_thread]:
            thread.start()
        wait_for_pilots(threads, stats, options, started)
        stop.set()
        stop_faults.set()
        for thread in threads + [fault_thread]:
            thread.join()
        pilots_wall = time.monotonic() - started
        settle_end = time.monotonic() + options.settle
        final = statuses(db_url, ids)
        while any(final.get(pid) in LIVE for pid in ids) and time.monotonic() < settle_end:
            time.sleep(1)
            final = statuses(db_url, ids)
        deadline = time.monotonic() + 15  # the supervisor notes a death within a fraction of a second
        while True:
            log = log_path.read_text(errors="replace")
            logged = deaths_logged(log)
            if all(logged[kind] >= stats.kills[kind] for kind in logged) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    return figures(db_url, ids, final, stats, pilots_wall, log, log_path)


def figures(db_url: str, ids: list[int], final: dict[int, str], stats: Stats, wall: float, log: str,
            log_path: Path) -> dict[str, Any]:
    duplicates = sum(1 for pid in ids if len(stats.running.get(pid, ())) > 1
                     or len(stats.handed.get(pid, [])) > len({a for a, _ in stats.handed.get(pid, [])}))
    states = Counter(final.get(pid, "missing") for pid in ids)
    back = stats.db_back
    again = claimed_again(db_url)
    return {
        "jobs": len(ids), "pilots wall s": round(wall, 1), "final states": dict(states),
        "kills": dict(stats.kills),
        "deaths logged": deaths_logged(log),
        "duplicates": duplicates,
        "lost": sum(n for state, n in states.items() if state != "finished" and state not in LIVE),
        "stuck": sum(n for state, n in states.items() if state in LIVE),
        "stuck samples": stuck_details(db_url, [pid for pid in ids if final.get(pid) in LIVE]),
        "client errors": len(stats.client_errors), "client error samples": stats.client_errors[:5],
        "retried calls": dict(stats.retried), "refused updates (job given back)": dict(stats.refused),
        "jobs claimed again (reply lost)": len(again),
        "longest call retry s": round(stats.longest_retry, 1),
        "longest lost-reply wait s": round(max(again, default=0.0), 1),
        "longest holding s": round(longest_holding(db_url, stats), 1),
        "db outage (or restart) s": None if stats.db_fault_seconds is None else round(stats.db_fault_seconds, 2),
        "db outage recovery, first call served s": None if back is None or stats.first_served_after_db is None
        else round(stats.first_served_after_db - back, 2),
        "db outage recovery, first job finished by the Adder s": None if back is None or stats.adder_after_db is None
        else round(stats.adder_after_db - back, 2),
        "tracebacks in the server log": log.count("Traceback (most recent call last)"),
        "server log": str(log_path),
    }


def deaths_logged(log: str) -> dict[str, int]:
    """The supervisors' death lines in the server log, per kind of process the soak kills."""
    return {kind: log.count(f"{kind} died") for kind in ("web worker", "daemon master")}


def healthy(result: dict[str, Any]) -> bool:
    return not (result["duplicates"] or result["lost"] or result["stuck"] or result["client errors"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="an initialised PostgreSQL database (default: a fresh one, dropped after)")
    defaults = Options()
    for name, value in vars(defaults).items():
        if name != "workdir":
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--workdir", type=Path, default=Path("var/soak"))
    args = parser.parse_args()
    options = Options(**{k: v for k, v in vars(args).items() if k != "db"})
    options.workdir.mkdir(parents=True, exist_ok=True)
    if args.db:
        result = run_soak(args.db, options)
    else:
        from databases import fresh_database

        with fresh_database("postgresql", prefix="soak") as db_url:
            result = run_soak(db_url, options)
    print(json.dumps(result, indent=2))
    sys.exit(0 if healthy(result) else 1)


if __name__ == "__main__":
    main()
