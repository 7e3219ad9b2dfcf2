"""getJob and heartbeat cost of this tree against an older commit, back to back, in process.

    .venv/bin/python bench/compare_commits.py --base 5778a07 --jobs 500 --rounds 5
    .venv/bin/python bench/compare_commits.py --base 5778a07 --head 334fd0e --jobs 500 --rounds 5

Issue 8 asks what its fixes (one conversion point for every parameter, bounded decoding, the label table,
per-request identity checks) cost getJob. The base commit (and ``--head``, else this tree as it is) is
checked out into a temporary ``git worktree``; each round runs the same measurement once on each (alternating
which goes first),
each in a fresh process whose ``pandasrv`` comes from that tree (``PYTHONPATH``): a fresh SQLite database,
``--jobs`` activated jobs, the WSGI app through falcon's test client (no sockets, no ConBridge, no access
log), one getJob per job (each claims one) and one ``running`` heartbeat per job. The table gives the median
time per call over all rounds and the ratio to the base.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "BENCH_QUEUE"


def measure(jobs: int) -> dict[str, list[float]]:
    """Run in a process whose ``pandasrv`` is the tree under test."""
    import falcon.testing

    from pandasrv.config import load_settings
    from pandasrv.submit import JobRequest, build_jobs
    from pandasrv.taskbuffer.db_admin import init_db
    from pandasrv.web.app import create_app

    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        db_url = f"sqlite:///{tmp}/db.sqlite"
        init_db(db_url)
        app = create_app(load_settings(db_url=db_url, db_bridge=False, access_log=False, log_level="WARNING"))
        tb = app.services.task_buffer
        tb.add_queue(QUEUE, QUEUE, "online", {})
        tb.insert_jobs(build_jobs(JobRequest(site=QUEUE, transformation="/bin/true"), jobs), status="activated")
        client = falcon.testing.TestClient(app)

        def call(method: str, data: dict[str, Any]) -> tuple[dict[str, Any], float]:
            started = time.perf_counter()
            reply = client.simulate_post(f"/server/panda/{method}", body=gzip.compress(json.dumps(data).encode()),
                                         headers={"Content-Type": "application/json", "Accept": "application/json"},
                                         remote_addr="127.0.0.1")
            return reply.json, time.perf_counter() - started

        times: dict[str, list[float]] = {"getJob": [], "updateJob running": []}
        claimed = []
        for _ in range(jobs):
            reply, elapsed = call("getJob", {"siteName": QUEUE, "prodSourceLabel": "user", "node": "bench"})
            if int(reply["StatusCode"]) != 0:
                raise RuntimeError(f"getJob: {reply}")
            claimed.append((reply["PandaID"], reply.get("attemptNr", 0)))
            times["getJob"].append(elapsed)
        for panda_id, attempt in claimed:
            reply, elapsed = call("updateJob", {"jobId": str(panda_id), "state": "running", "attemptNr": attempt})
            if int(reply["StatusCode"]) != 0:
                raise RuntimeError(f"updateJob: {reply}")
            times["updateJob running"].append(elapsed)
        app.services.close()
    return times


def run_on(tree: Path, jobs: int) -> dict[str, list[float]]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, __file__, "--measure", "--jobs", str(jobs)], env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="5778a07", help="the commit to compare with (default: before issue 8)")
    parser.add_argument("--head", help="the commit to measure against the base (default: this tree as it is)")
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.measure:
        print(json.dumps(measure(options.jobs)))
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
                    for call, values in run_on(trees[name], options.jobs).items():
                        times[name].setdefault(call, []).extend(values)
                print(f"round {round_number + 1} of {options.rounds} done", flush=True)
        finally:
            for tree, _ in checked_out:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)
    head = options.head or "this tree at " + subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                                            capture_output=True, text=True).stdout.strip()
    print(f"\nin process, SQLite, {options.jobs} jobs x {options.rounds} rounds; base {options.base}, head {head}")
    print("| call | base, median µs | head, median µs | head / base |")
    print("|---|---:|---:|---:|")
    for call in times["base"]:
        old, new = (statistics.median(times[name][call]) * 1e6 for name in trees)
        print(f"| {call} | {old:.0f} | {new:.0f} | {new / old:.2f} |")


if __name__ == "__main__":
    main()
