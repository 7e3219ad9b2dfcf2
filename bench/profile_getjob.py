"""getJob in process (falcon test client, PostgreSQL), timed, with its database round trips counted, or profiled.

    .venv/bin/python bench/profile_getjob.py [--bridge | --reference] [--profile] [--calls N]

The legacy ``/server/panda/getJob`` form that wrk posts in bench/api_rates.py, one job per call, from one thread;
``--reference`` runs the minimal claim app (bench/refapps/claim.py) the same way instead. Prints the median time
per call, the CPU time per call of this process, of the ConBridge children and of the PostgreSQL sessions (CPU
time, unlike wall time, hardly depends on what else the shared machine runs), the statements one call sends to
the database (without ``--bridge``: the counting hooks the connections of this process) and, with
``--profile``, cProfile's 40 most expensive functions by internal time.
"""

from __future__ import annotations

import collections
import cProfile
import json
import multiprocessing
import os
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from databases import fresh_database  # noqa: E402

QUEUE = "BENCH_QUEUE"
BODY = json.dumps({"siteName": QUEUE, "computingElement": QUEUE, "prodSourceLabel": "user", "node": "bench",
                   "diskSpace": 100000, "mem": 4000.0, "cpu": 2600.0})


def count_statements(counter: collections.Counter[str]) -> None:
    """Count what every psycopg connection sends: statements by their first words, and COMMITs."""
    import psycopg

    execute, commit = psycopg.Cursor.execute, psycopg.Connection.commit

    def counted_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        text = query if isinstance(query, str) else str(query)
        counter[" ".join(text.split()[:3])[:40]] += 1
        if not self.connection.autocommit and self.connection.info.transaction_status == 0:
            counter["BEGIN (implicit)"] += 1
        return execute(self, query, *args, **kwargs)

    def counted_commit(self: Any) -> Any:
        if self.info.transaction_status != 0:
            counter["COMMIT"] += 1
        return commit(self)

    psycopg.Cursor.execute = counted_execute  # type: ignore[method-assign]
    psycopg.Connection.commit = counted_commit  # type: ignore[method-assign]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def backend_pids(url: str) -> list[int]:
    """The server processes of every session on the bench database but the one asking."""
    from pandasrv.taskbuffer.wrapped_cursor import connect

    conn = connect(url)
    try:
        rows = conn.cursor().execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                                     " AND pid <> pg_backend_pid()", {}).fetchall()
        conn.rollback()
        return [int(row[0]) for row in rows]
    finally:
        conn.close()


def main() -> None:
    import falcon.testing

    from pandasrv.config import load_settings
    from pandasrv.submit import JobRequest, build_jobs
    from pandasrv.web.app import create_app

    bridge, reference, profiled = "--bridge" in sys.argv, "--reference" in sys.argv, "--profile" in sys.argv
    calls = int(sys.argv[sys.argv.index("--calls") + 1]) if "--calls" in sys.argv else 500
    counter: collections.Counter[str] = collections.Counter()
    with fresh_database("postgresql") as url:
        app = create_app(load_settings(db_url=url, db_bridge=bridge, access_log=False, log_level="WARNING", auth="none"))
        tb = app.services.task_buffer
        if reference:
            os.environ["PANDASRV_DB_URL"] = url
            from refapps.claim import create_app as reference_app

            client = falcon.testing.TestClient(reference_app())
        else:
            client = falcon.testing.TestClient(app)
        tb.add_queue(QUEUE, QUEUE, "online", {"nickname": QUEUE, "status": "online", "type": "unified"})
        request = JobRequest(site=QUEUE, transformation="/bin/true", arguments="bench")
        for _ in range(0, calls + 20, 1000):
            tb.insert_jobs(build_jobs(request, 1000), status="activated")

        def get() -> None:
            reply = client.simulate_post("/server/panda/getJob", body=BODY, remote_addr="127.0.0.1",
                                         headers={"Content-Type": "application/json", "Accept": "application/json"})
            if reply.json.get("StatusCode") != 0:
                raise RuntimeError(reply.text[:300])

        for _ in range(10):  # warm-up: connections, caches
            get()
        children = [child.pid for child in multiprocessing.active_children()] if bridge else []
        sessions = backend_pids(url)
        if not bridge:
            count_statements(counter)
        profile = cProfile.Profile()
        times = []
        cpu_before = os.times()
        others_before = cpu_seconds(children), cpu_seconds(sessions)
        for _ in range(calls):
            started = time.perf_counter()
            if profiled:
                profile.enable()
            get()
            if profiled:
                profile.disable()
            times.append(time.perf_counter() - started)
        cpu_after = os.times()
        own = cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system
        bridged, database = (after - before for after, before in zip((cpu_seconds(children), cpu_seconds(sessions)),
                                                                      others_before))
        median = statistics.median(times)
        print(f"{calls} calls, median {median * 1e6:.0f} µs per call ({1 / median:.0f} jobs/s, one thread); CPU per "
              f"call: this process {own / calls * 1e6:.0f} µs, ConBridge children {bridged / calls * 1e6:.0f} µs, "
              f"PostgreSQL {database / calls * 1e6:.0f} µs")
        for statement, n in counter.most_common():
            print(f"  {n / calls:5.2f} per call  {statement}")
        if profiled:
            pstats.Stats(profile).sort_stats("tottime").print_stats(40)
        app.services.close()
        if reference:
            from refapps.claim import CONNECTIONS

            CONNECTIONS.get().close()


if __name__ == "__main__":
    main()
