"""getJob and heartbeat cost of this tree against an older commit, back to back, in process.

    .venv/bin/python bench/compare_commits.py --base 5778a07 --jobs 500 --rounds 5
    .venv/bin/python bench/compare_commits.py --base 5778a07 --head 334fd0e --jobs 500 --rounds 5

Issue 8 asks what its fixes (one conversion point for every parameter, bounded decoding, the label table,
per-request identity checks) cost getJob. The base commit (and ``--head``, else this tree as it is) is
checked out into a temporary ``git worktree``; each round runs the same measurement once on each (alternating
which goes first),
each in a fresh process whose ``pandasrv`` comes from that tree (``PYTHONPATH``): a fresh SQLite database,
``--jobs`` activated jobs, the WSGI app through falcon's test client (no sockets, no access log; no ConBridge
unless ``--bridge``), one getJob per job (each claims one), a ``running`` heartbeat per job (the change from
``sent``), a second one (a plain repeat) and repeats again through ``update_jobs_bulk`` in calls of 100.
``--backend postgresql``/``mysql`` runs on a fresh database of the test servers. The table gives the median
time per call (per heartbeat for the bulk call) over all rounds and the ratio to the base.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "BENCH_QUEUE"
BULK = 100


@contextlib.contextmanager
def fresh_database(backend: str) -> Iterator[str]:
    """A new database on ``backend``, through the tree under test's own helpers (bench/databases.py would put
    this checkout's ``pandasrv`` first on the path)."""
    from pandasrv.taskbuffer.db_admin import init_db
    from pandasrv.taskbuffer.wrapped_cursor import connect

    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
            init_db(f"sqlite:///{tmp}/db.sqlite")
            yield f"sqlite:///{tmp}/db.sqlite"
        return
    server, admin_db = {"postgresql": (os.environ.get("PANDASRV_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432"),
                                       "postgres"),
                        "mysql": (os.environ.get("PANDASRV_TEST_MYSQL", "mysql://root@127.0.0.1:3306"), "")}[backend]
    name = f"bench_compare_{os.getpid()}"

    def admin(statement: str) -> None:
        conn = connect(f"{server}/{admin_db}")
        try:
            if backend == "postgresql":
                conn.raw.autocommit = True
            conn.cursor().execute(statement)
        finally:
            conn.close()

    admin(f"CREATE DATABASE {name}")
    try:
        init_db(f"{server}/{name}")
        yield f"{server}/{name}"
    finally:
        admin(f"DROP DATABASE {name}")


def measure(jobs: int, backend: str, bridge: bool) -> dict[str, list[float]]:
    """Run in a process whose ``pandasrv`` is the tree under test."""
    import falcon.testing

    from pandasrv.config import load_settings
    from pandasrv.submit import JobRequest, build_jobs
    from pandasrv.web.app import create_app

    with fresh_database(backend) as db_url:
        app = create_app(load_settings(db_url=db_url, db_bridge=bridge, access_log=False, log_level="WARNING"))
        tb = app.services.task_buffer
        tb.add_queue(QUEUE, QUEUE, "online", {})
        tb.insert_jobs(build_jobs(JobRequest(site=QUEUE, transformation="/bin/true"), jobs), status="activated")
        client = falcon.testing.TestClient(app)

        def call(path: str, data: dict[str, Any]) -> tuple[dict[str, Any], float]:
            started = time.perf_counter()
            body = json.dumps(data).encode()  # the pilot gzips its legacy calls, Harvester's v1 calls are plain
            reply = client.simulate_post(path, body=body if path.startswith("/api") else gzip.compress(body),
                                         headers={"Content-Type": "application/json", "Accept": "application/json"},
                                         remote_addr="127.0.0.1")
            return reply.json, time.perf_counter() - started

        times: dict[str, list[float]] = {"getJob": [], "updateJob running": [], "updateJob running, repeated": [],
                                         f"update_jobs_bulk of {BULK}, per heartbeat": []}
        claimed = []
        for _ in range(jobs):
            reply, elapsed = call("/server/panda/getJob", {"siteName": QUEUE, "prodSourceLabel": "user", "node": "bench"})
            if int(reply["StatusCode"]) != 0:
                raise RuntimeError(f"getJob: {reply}")
            claimed.append((reply["PandaID"], reply.get("attemptNr", 0)))
            times["getJob"].append(elapsed)
        for name in ("updateJob running", "updateJob running, repeated"):
            for panda_id, attempt in claimed:
                reply, elapsed = call("/server/panda/updateJob", {"jobId": str(panda_id), "state": "running",
                                                                  "attemptNr": attempt, "cpuConsumptionTime": 7})
                if int(reply["StatusCode"]) != 0:
                    raise RuntimeError(f"updateJob: {reply}")
                times[name].append(elapsed)
        for start in range(0, len(claimed) - BULK + 1, BULK):
            batch = [{"job_id": pid, "job_status": "running", "attempt_nr": attempt, "cpu_consumption_time": 9}
                     for pid, attempt in claimed[start:start + BULK]]
            reply, elapsed = call("/api/v1/pilot/update_jobs_bulk", {"job_list": batch})
            if not reply.get("success") or not all(item.get("success") for item in reply["data"]):
                raise RuntimeError(f"update_jobs_bulk: {reply}")
            times[f"update_jobs_bulk of {BULK}, per heartbeat"].append(elapsed / BULK)
        app.services.close()
    return times


def run_on(tree: Path, options: argparse.Namespace) -> dict[str, list[float]]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, __file__, "--measure", "--jobs", str(options.jobs), "--backend", options.backend]
    done = subprocess.run(command + (["--bridge"] if options.bridge else []), env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="5778a07", help="the commit to compare with (default: before issue 8)")
    parser.add_argument("--head", help="the commit to measure against the base (default: this tree as it is)")
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "mysql"), default="sqlite")
    parser.add_argument("--bridge", action="store_true", help="with the ConBridge (db_bridge = true)")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.measure:
        print(json.dumps(measure(options.jobs, options.backend, options.bridge)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-trees-") as tmp:
        trees = {"base": Path(tmp) / "base", "head": Path(tmp) / "head" if options.head else ROOT}
        checked_out = [(trees[name], commit) for name, commit in (("base", options.base), ("head", options.head)) if commit]
        for tree, commit in checked_out:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), commit], check=True)
        try:
            times: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
            for round_number in range(options.rounds):
                for name in (list(trees) if round_number % 2 == 0 else list(trees)[::-1]):
                    for call, values in run_on(trees[name], options).items():
                        times[name].setdefault(call, []).extend(values)
                print(f"round {round_number + 1} of {options.rounds} done", flush=True)
        finally:
            for tree, _ in checked_out:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)
    head = options.head or "this tree at " + subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                                            capture_output=True, text=True).stdout.strip()
    print(f"\nin process, {options.backend}, ConBridge {'on' if options.bridge else 'off'}, {options.jobs} jobs x"
          f" {options.rounds} rounds; base {options.base}, head {head}")
    print("| call | base, median µs | head, median µs | head / base |")
    print("|---|---:|---:|---:|")
    for call in times["head"]:
        if call not in times["base"]:
            continue
        old, new = (statistics.median(times[name][call]) * 1e6 for name in trees)
        print(f"| {call} | {old:.0f} | {new:.0f} | {new / old:.2f} |")


if __name__ == "__main__":
    main()
