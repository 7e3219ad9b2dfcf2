"""Daemon scripts benchmark: seconds per run of each script on a loaded database.

    .venv/bin/python bench/daemon_scripts.py --backend postgresql --archived 100000 --active 10000

Fills a fresh database through the DB proxy's bulk insert (1,000 jobs per call) and bulk status
transitions: ``--archived`` final jobs and ``--active`` live ones (running, sent, holding with a file
report, transferring, activated, assigned, defined). Then times, in-process with an in-process proxy:

- copy_archive when nothing is stale (the usual run) and when every live job is stale (the clock moved on);
- dataset_manager (Setupper recovery, Activator, Finisher), add_sub;
- add_main rounds over the holding jobs' reports (reports per second);
- archive (retention) purging every archived job; tmpwatch over 1,000 files of the DB cache.
Also the Setupper hand-over: the caller's cost of ``start_setupper`` and the time until the jobs are active.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from databases import fresh_database  # noqa: E402

from pandasrv.config import load_settings  # noqa: E402
from pandasrv.daemon.scripts import add_sub, archive, copy_archive, dataset_manager  # noqa: E402
from pandasrv.dataservice.adder import Adder  # noqa: E402
from pandasrv.dataservice.retention import clean_cache, purge_database  # noqa: E402
from pandasrv.dataservice.watcher import run_watcher  # noqa: E402
from pandasrv.logic.handover import start_setupper, stop_setupper  # noqa: E402
from pandasrv.taskbuffer.file_spec import FileSpec  # noqa: E402
from pandasrv.taskbuffer.job_spec import JobSpec  # noqa: E402
from pandasrv.taskbuffer.task_buffer import TaskBuffer  # noqa: E402

CHUNK = 1000
# Share of the live jobs per status, and the transitions that bring a defined job there.
ACTIVE_MIX = (("running", 0.4, ("activated", "sent", "running")), ("sent", 0.1, ("activated", "sent")),
              ("holding", 0.1, ("activated", "sent", "running", "holding")),
              ("transferring", 0.1, ("activated", "sent", "running", "transferring")),
              ("activated", 0.1, ("activated",)), ("assigned", 0.1, ("assigned",)), ("defined", 0.1, ()))


def new_job(i: int) -> JobSpec:
    job = JobSpec(jobName=f"bench.{i}", computingSite=f"QUEUE_{i % 20}", prodSourceLabel="managed", VO="generic",
                  transformation="run.sh", attemptNr=1, currentPriority=100 + i % 7)
    dataset = f"bench.out.{i // 100}"  # a task's output dataset: 100 jobs
    job.add_file(FileSpec(lfn="out.$PANDAID.root", type="output", dataset=dataset, destinationDBlock=dataset))
    job.add_file(FileSpec(lfn="log.$PANDAID.tgz", type="log", dataset=dataset, destinationDBlock=dataset))
    return job


def fill(tb: TaskBuffer, n: int, steps: tuple[str, ...], offset: int) -> list[int]:
    ids: list[int] = []
    for start in range(0, n, CHUNK):
        part = tb.insert_jobs([new_job(offset + start + k) for k in range(min(CHUNK, n - start))])
        for step in steps:
            tb.set_job_status(part, step, {"startTime": _dt.datetime.now(_dt.UTC).replace(tzinfo=None)}
                              if step == "running" else None)
        ids += part
    return ids


def add_reports(tb: TaskBuffer, ids: list[int]) -> None:
    for job in tb.peek_jobs(ids, archived=False):
        report = {f.lfn: {"guid": str(uuid.uuid4()), "fsize": 100, "adler32": "01020304"}
                  for f in job.Files if f.type in ("output", "log")}
        tb.insert_output_report(job.PandaID, 1, "managed", "finished", json.dumps(report))


def timed(label: str, fn: Callable[[], Any], results: dict[str, float]) -> Any:
    start = time.perf_counter()
    value = fn()
    results[label] = time.perf_counter() - start
    print(f"  {label:<44} {results[label]:8.3f} s", flush=True)
    return value


def setupper_handover(settings: Any, tb: TaskBuffer, results: dict[str, float]) -> None:
    calls, ends = [], []
    for _ in range(5):
        ids = tb.insert_jobs([new_job(0) for _ in range(100)])
        start = time.perf_counter()
        start_setupper(settings, ids)
        calls.append(time.perf_counter() - start)
        while tb.get_job_status([ids[-1]])[ids[-1]][0] != "activated":
            time.sleep(0.005)
        ends.append(time.perf_counter() - start)
    stop_setupper()
    results["start_setupper call (first, helper start)"] = calls[0]
    results["start_setupper call (warm helper)"] = sorted(calls[1:])[len(calls[1:]) // 2]
    results["100 submitted jobs activated (helper start)"] = ends[0]
    results["100 submitted jobs activated (warm helper)"] = sorted(ends[1:])[len(ends[1:]) // 2]
    for label in list(results)[-4:]:
        print(f"  {label:<44} {results[label]:8.3f} s", flush=True)


def run(backend: str, archived: int, active: int) -> dict[str, float]:
    results: dict[str, float] = {}
    with fresh_database(backend) as url:
        settings = load_settings(db_url=url, db_bridge=False, log_level="WARNING")
        tb = TaskBuffer(settings)
        print(f"{backend}: {archived} archived + {active} active jobs", flush=True)
        timed("fill: archived jobs", lambda: fill(tb, archived, ("failed",), 0), results)
        holding: list[int] = []
        start = time.perf_counter()
        for status, share, steps in ACTIVE_MIX:
            ids = fill(tb, int(active * share), steps, archived)
            holding += ids if status == "holding" else []
        add_reports(tb, holding)
        results["fill: active jobs"] = time.perf_counter() - start
        print(f"  {'fill: active jobs':<44} {results['fill: active jobs']:8.3f} s", flush=True)
        for n in range(1000):
            tb.store_cache_file(f"file{n}", "bench", b"x")

        timed("copy_archive, nothing stale", lambda: copy_archive.main(tb, settings, []), results)
        timed("add_sub", lambda: add_sub.main(tb, settings, []), results)
        timed("dataset_manager", lambda: dataset_manager.main(tb, settings, ["1000", "0"]), results)
        adder = Adder(tb, settings)
        n_reports = timed("add_main: all reports, rounds of 100", lambda: sum(iter(lambda: adder.run_round(100), 0)),
                          results)
        print(f"  {'  -> reports per second':<44} {n_reports / results['add_main: all reports, rounds of 100']:8.0f}")
        setupper_handover(settings, tb, results)
        later = _dt.datetime.now(_dt.UTC).replace(tzinfo=None) + _dt.timedelta(days=8)
        timed("tmpwatch (1000 DB cache files, all old)", lambda: clean_cache(tb, settings, now=later), results)
        moved = timed("copy_archive, every live job stale", lambda: run_watcher(tb, settings, now=later), results)
        print(f"  {'  -> jobs timed out':<44} {sum(len(v) for v in moved.values()):8d}")
        timed("archive, nothing old enough", lambda: archive.main(tb, settings, []), results)
        purged = timed("archive, purge everything", lambda: purge_database(tb, settings, now=later), results)
        print(f"  {'  -> archived jobs purged':<44} {purged['jobs_archived']:8d}")
        tb.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", choices=("sqlite", "postgresql", "mysql"))
    parser.add_argument("--archived", type=int, default=100_000)
    parser.add_argument("--active", type=int, default=10_000)
    args = parser.parse_args()
    for backend in args.backend or ["sqlite"]:
        run(backend, args.archived, args.active)


if __name__ == "__main__":
    main()
