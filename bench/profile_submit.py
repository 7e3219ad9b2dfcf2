"""Submit in process (falcon test client, PostgreSQL, calls of 1,000 jobs), timed and optionally profiled.

    .venv/bin/python bench/profile_submit.py [--bridge] [--profile]

The Setupper hand-over is left out (it is a separate process). Prints the time per call, the median rate,
the CPU time per call of this process and of its descendants (the ConBridge children: CPU time is what a
loaded, shared machine distorts least) and, with ``--profile``, cProfile's 45 most expensive functions by
cumulative time.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from databases import fresh_database  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


def descendants_cpu() -> float:
    """CPU seconds (user + system) used so far by the live descendants of this process, from /proc."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / _TICK
    mine, found = {os.getpid()}, True
    while found:
        found = False
        for pid, parent in parents.items():
            if parent in mine and pid not in mine:
                mine.add(pid)
                found = True
    return sum(cpu[pid] for pid in mine - {os.getpid()})


def main() -> None:
    import falcon.testing

    from pandasrv.config import load_settings
    from pandasrv.submit import JobRequest, build_jobs, encode_jobs
    from pandasrv.web import user_if
    from pandasrv.web.app import create_app

    bridge, profiled = "--bridge" in sys.argv, "--profile" in sys.argv
    with fresh_database("postgresql") as url:
        app = create_app(load_settings(db_url=url, db_bridge=bridge, access_log=False, log_level="WARNING", auth="none"))
        user_if.start_setupper = lambda settings, ids: None  # type: ignore[assignment]
        client = falcon.testing.TestClient(app)
        app.services.task_buffer.add_queue("BENCH_QUEUE", "BENCH_QUEUE", "online", {})
        request = JobRequest(site="BENCH_QUEUE", transformation="/bin/true", arguments="bench")
        bodies = [json.dumps(encode_jobs(build_jobs(request, 1000))) for _ in range(8)]

        def post(body: str) -> None:
            reply = client.simulate_post("/api/v1/job/submit", body=body, remote_addr="127.0.0.1",
                                         headers={"Content-Type": "application/json", "Accept": "application/json"})
            if not reply.json["success"]:
                raise RuntimeError(reply.text[:300])

        post(bodies[0])
        profile = cProfile.Profile()
        times, own, children = [], [], []
        for body in bodies[1:]:
            started, cpu, child_cpu = time.perf_counter(), time.process_time(), descendants_cpu()
            if profiled:
                profile.enable()
            post(body)
            if profiled:
                profile.disable()
            times.append(time.perf_counter() - started)
            own.append(time.process_time() - cpu)
            children.append(descendants_cpu() - child_cpu)
        print("ms per call", [round(t * 1000) for t in times], "median jobs/s", round(1000 / statistics.median(times)))
        print("CPU ms per call: this process", round(statistics.median(own) * 1000),
              "descendants", round(statistics.median(children) * 1000), "load", Path("/proc/loadavg").read_text().split()[0])
        if profiled:
            pstats.Stats(profile).sort_stats("cumulative").print_stats(45)
        app.services.close()


if __name__ == "__main__":
    main()
