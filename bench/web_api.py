"""Web API benchmark: submit, getJob and updateJob rates against a real gunicorn server.

    .venv/bin/python bench/web_api.py --backend postgresql --jobs 20000 --pilots 16 --workers 4

Starts gunicorn (``pandasrv.web.app:application``) on a fresh database, then, phase by phase:
submits jobs in batches of 1,000 through ``/api/v1/job/submit`` (panda-client's wire format), activates
them, and lets N pilot processes (one keep-alive httpx connection each, speaking the pilot's gzip-JSON
legacy protocol) drain the queue with ``getJob``, then send one ``running`` and one ``finished`` (with a
file report) heartbeat per job. Prints jobs/s and round-trip median / p95 per endpoint.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import math
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from databases import fresh_database  # noqa: E402

from pandasrv.submit import JobRequest, build_jobs, encode_jobs  # noqa: E402
from pandasrv.taskbuffer.db_proxy import DBProxy  # noqa: E402

QUEUE = "BENCH_QUEUE"
BATCH = 1000
# (real PanDA 1.0.4 on this machine kind, our target), per second
REFERENCE = {"submit": (100, 5000), "getJob": (70, 700), "running": (120, 1200), "finished": (65, 650)}


# --- database and server -------------------------------------------------------------------------

def add_queue(db_url: str) -> None:
    proxy = DBProxy(db_url)
    proxy.connect()
    try:
        proxy.add_queue(QUEUE, QUEUE, "online", {"nickname": QUEUE, "panda_resource": QUEUE, "status": "online",
                                                 "state": "ACTIVE", "type": "unified"})
    finally:
        proxy.close()


def activate_all(db_url: str, ids: list[int]) -> None:
    proxy = DBProxy(db_url)
    proxy.connect()
    try:
        for start in range(0, len(ids), BATCH):
            proxy.set_job_status(ids[start:start + BATCH], "activated")
    finally:
        proxy.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_alive(url: str, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    """Poll ``is_alive`` until the server answers; fail if its process exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/api/v1/system/is_alive", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up")
        time.sleep(0.2)


@contextmanager
def gunicorn(db_url: str, workers: int, threads: int, db_connections: int,
             extra: dict[str, str]) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PANDASRV_DB_URL": db_url, "PANDASRV_AUTH": "none", "PANDASRV_ACCESS_LOG": "false",
           "PANDASRV_LOG_LEVEL": "WARNING",
           "PANDASRV_DB_CONNECTIONS": str(db_connections),
           **{f"PANDASRV_{key.upper()}": value for key, value in extra.items()}}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "pandasrv.web.app:application",
                             "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads),
                             "--log-level", "warning", "--keep-alive", "30"], env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_alive(url, proc, "gunicorn")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


# --- pilots (one process each, one keep-alive connection) -------------------------------------------

_client: httpx.Client | None = None


def pilot_client() -> httpx.Client:
    global _client
    if _client is None:
        _client = httpx.Client(timeout=120, limits=httpx.Limits(max_keepalive_connections=1))
    return _client


# What a pilot of the bench queue sends with getJob.
GETJOB_REQUEST = {"siteName": QUEUE, "computingElement": QUEUE, "prodSourceLabel": "user",
                  "node": socket.gethostname(), "diskSpace": 100000, "mem": 4000.0, "cpu": 2600.0}
SHED_PAUSE, SHED_TRIES = 0.5, 120
shed_replies = 0  # per pilot process: 503s (load shedding) tried again


def legacy_call(url: str, method: str, data: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """One pilot call; a 503 (shed before any database work) is tried again after a short pause, as the pilot
    does, and counted in ``shed_replies``. The time is the answered attempt's round trip."""
    global shed_replies
    for _ in range(SHED_TRIES):
        started = time.perf_counter()
        response = pilot_client().post(f"{url}/server/panda/{method}", content=gzip.compress(json.dumps(data).encode()),
                                       headers={"Content-Type": "application/json", "Accept": "application/json"})
        elapsed = time.perf_counter() - started
        if response.status_code != 503:
            break
        shed_replies += 1
        time.sleep(SHED_PAUSE)
    if response.status_code != 200:  # a plain exception: httpx's own cannot cross the process pool
        raise RuntimeError(f"{method}: HTTP {response.status_code}: {response.text[:200]}")
    return response.json(), elapsed


def drain(url: str) -> tuple[list[int], list[float], int]:
    """getJob until the queue is empty; returns the jobs this pilot got, every round trip and the 503s."""
    ids: list[int] = []
    times: list[float] = []
    shed_before = shed_replies
    while True:
        reply, elapsed = legacy_call(url, "getJob", GETJOB_REQUEST)
        times.append(elapsed)
        if int(reply.get("StatusCode", -1)) != 0:
            return ids, times, shed_replies - shed_before
        ids.append(int(reply["PandaID"]))


# A pilot stops at its first "no jobs" reply, which may come while jobs are left: the last ones were locked by
# another claimer (SKIP LOCKED) or by another transaction that locks jobs_active rows. The drain runs again
# while activated jobs remain, at most this many times.
DRAIN_ROUNDS = 5


def still_activated(db_url: str, ids: list[int]) -> int:
    proxy = DBProxy(db_url)
    try:
        return sum(status == "activated" for status, _, _ in proxy.get_job_status(ids).values())
    finally:
        proxy.close()


def check_handed_out(db_url: str, ids: list[int], got: list[list[int]]) -> None:
    """Every job was handed to exactly one pilot; otherwise say which went twice (a server bug) and where
    the missing ones are (``sent``: a claim whose reply no pilot read; ``activated``: the drain gave up)."""
    counts = collections.Counter(pid for pid_list in got for pid in pid_list)
    twice = sorted(pid for pid, n in counts.items() if n > 1)
    if twice:
        raise RuntimeError(f"getJob handed out {len(twice)} jobs twice: {twice[:10]}")
    missing = sorted(set(ids) - set(counts))
    if missing:
        proxy = DBProxy(db_url)
        try:
            found = proxy.get_job_status(missing)
        finally:
            proxy.close()
        statuses = collections.Counter(found[pid][0] if pid in found else "not found" for pid in missing)
        raise RuntimeError(f"getJob: {len(missing)} jobs never reached a pilot, by status now: {dict(statuses)}")


def heartbeat(args: tuple[str, list[int], str, dict[str, str]]) -> tuple[list[float], int]:
    url, ids, state, logs = args
    times = []
    shed_before = shed_replies
    for panda_id in ids:
        data = {"jobId": str(panda_id), "state": state, "siteName": QUEUE, "node": "bench", "attemptNr": 0,
                "schedulerID": "bench", "pilotID": "bench|PR|1", "coreCount": 1}
        if state == "finished":
            data.update(pilotErrorCode=0, transExitCode=0, exeErrorCode=0, xml=json.dumps({logs[str(panda_id)]: {
                "guid": "5d8e4b8c-2f0a-4e0b-9a55-%012d" % panda_id, "fsize": 1024, "adler32": "0a1b2c3d",
                "surl": f"file://localhost/se/{panda_id}.log.tgz", "endpoint": "LOCAL_DISK"}}))
        reply, elapsed = legacy_call(url, "updateJob", data)
        if int(reply.get("StatusCode", -1)) != 0:
            raise RuntimeError(f"updateJob {state} of {panda_id} failed: {reply}")
        times.append(elapsed)
    return times, shed_replies - shed_before


def submit_batch(args: tuple[str, str]) -> tuple[list[int], float]:
    url, body = args
    started = time.perf_counter()
    response = pilot_client().post(f"{url}/api/v1/job/submit", content=body,
                                   headers={"Content-Type": "application/json", "Accept": "application/json"})
    elapsed = time.perf_counter() - started
    reply = response.json()
    if not reply.get("success"):
        raise RuntimeError(f"submit failed: {reply.get('message')}")
    return [int(entry[0]) for entry in reply["data"]], elapsed


# --- phases ----------------------------------------------------------------------------------------

def row(name: str, count: int, wall: float, times: list[float], shed: int = 0) -> dict[str, Any]:
    ordered = sorted(times)
    return {"endpoint": name, "count": count, "rate": count / wall if wall else 0.0, "shed": shed,
            "median_ms": statistics.median(ordered) * 1000 if ordered else 0.0,
            "p95_ms": ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)] * 1000 if ordered else 0.0}


def run(url: str, db_url: str, jobs: int, pilots: int, submitters: int,
        states: tuple[str, ...] = ("running", "finished")) -> list[dict[str, Any]]:
    """The phases in order: submit, activate, getJob, then one heartbeat per job of each of ``states``."""
    specs = build_jobs(JobRequest(site=QUEUE, transformation="/bin/true", arguments="bench"), jobs)
    logs_by_name = {job.jobName: job.Files[-1].lfn for job in specs}
    bodies = [json.dumps(encode_jobs(specs[i:i + BATCH])) for i in range(0, jobs, BATCH)]
    results = []
    with multiprocessing.Pool(submitters) as pool:
        started = time.perf_counter()
        submitted = pool.map(submit_batch, [(url, body) for body in bodies], chunksize=1)
        wall = time.perf_counter() - started
    ids = [pid for batch, _ in submitted for pid in batch]
    results.append(row(f"submit ({BATCH}/request)", len(ids), wall, [t for _, t in submitted]))
    activate_all(db_url, ids)
    logs = dict(zip(map(str, ids), (logs_by_name[job.jobName] for job in specs)))

    with multiprocessing.Pool(pilots) as pool:
        started = time.perf_counter()
        drained: list[tuple[list[int], list[float], int]] = []
        for _ in range(DRAIN_ROUNDS):
            drained += pool.map(drain, [url] * pilots, chunksize=1)
            if not still_activated(db_url, ids):
                break
        wall = time.perf_counter() - started
        got = [pid_list for pid_list, _, _ in drained]
        results.append(row("getJob", sum(map(len, got)), wall, [t for _, times, _ in drained for t in times],
                           sum(shed for _, _, shed in drained)))
        check_handed_out(db_url, ids, got)

        for state in states:
            started = time.perf_counter()
            beats = pool.map(heartbeat, [(url, pid_list, state, {str(p): logs[str(p)] for p in pid_list})
                                         for pid_list in got], chunksize=1)
            wall = time.perf_counter() - started
            results.append(row(f"updateJob {state}", len(ids), wall, [t for part, _ in beats for t in part],
                               sum(shed for _, shed in beats)))
    return results


def print_table(backend: str, options: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    print(f"\nbackend={backend} jobs={options.jobs} pilots={options.pilots} "
          f"gunicorn workers={options.workers} threads={options.threads} db_connections={options.db_connections} "
          f"settings={options.setting}")
    print(f"{'endpoint':<22}{'count':>8}{'per s':>10}{'median ms':>11}{'p95 ms':>9}{'PanDA':>8}{'target':>8}"
          f"{'503s':>7}")
    for entry in results:
        words = entry["endpoint"].split()
        key = words[-1] if words[0] == "updateJob" else words[0]
        bar, target = REFERENCE[key]
        print(f"{entry['endpoint']:<22}{entry['count']:>8}{entry['rate']:>10.0f}{entry['median_ms']:>11.1f}"
              f"{entry['p95_ms']:>9.1f}{bar:>8}{target:>8}{entry['shed']:>7}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", action="append", choices=("sqlite", "postgresql", "mysql"),
                        help="repeatable; default postgresql and sqlite")
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--pilots", type=int, default=16)
    parser.add_argument("--submitters", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--db-connections", type=int, default=4)
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                        help="extra server setting, e.g. db_bridge=false (becomes PANDASRV_KEY)")
    options = parser.parse_args()
    extra = dict(item.split("=", 1) for item in options.setting)
    for backend in options.backend or ["postgresql", "sqlite"]:
        with fresh_database(backend) as db_url:
            add_queue(db_url)
            with gunicorn(db_url, options.workers, options.threads, options.db_connections, extra) as url:
                results = run(url, db_url, options.jobs, options.pilots, options.submitters)
        print_table(backend, options, results)


if __name__ == "__main__":
    main()
