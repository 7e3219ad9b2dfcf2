"""Flat with history: getJob, a ``running`` heartbeat and submit with a large archive against none.

    .venv/bin/python bench/history.py                 # quick: 100,000 archived jobs
    .venv/bin/python bench/history.py --full          # 1,000,000 archived jobs, series 0 / 10k / 100k / 1M

Two fresh databases, one empty and one with N archived jobs (``bench/archive_seed.py``: each with its files,
parameters and status-log rows), each behind its own gunicorn (``web_api.gunicorn``, W = 2, T = 4, C = 2);
the bench's pilot processes (``web_api.run``: httpx, one keep-alive connection each) run the same phases on
both, in turn, ``repeats`` times, so that the load of the shared machine falls on both alike. Then the
retention agent (``archive``: ``purge_database``) purges 100,000 of the archived jobs while paced pilots keep
calling getJob, and getJob's p95 is set against the same pilots' p95 just before.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import multiprocessing
import multiprocessing.synchronize
import os
import statistics
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import web_api  # noqa: E402
from bench.archive_seed import analyze, seed_archive  # noqa: E402
from bench.databases import fresh_database  # noqa: E402
from bench.figures import Figure, RunOptions, Section, Series, quantile  # noqa: E402
from pandasrv.config import Settings  # noqa: E402
from pandasrv.dataservice.retention import purge_database  # noqa: E402
from pandasrv.submit import JobRequest, build_jobs  # noqa: E402
from pandasrv.taskbuffer.db_proxy import DBProxy  # noqa: E402
from pandasrv.taskbuffer.file_spec import FileSpec  # noqa: E402
from pandasrv.taskbuffer.job_spec import JobSpec  # noqa: E402

QUICK_ARCHIVE, FULL_ARCHIVE = 100_000, 1_000_000
PURGED = 100_000  # archived jobs past retention.archived_days, purged under load
SERVER = {"workers": 2, "threads": 4, "db_connections": 2}
PILOTS = 8
# the phases of web_api.run whose rates the figures compare: (row name, figure name)
PHASES = (("submit (1000/request)", "submit"), ("getJob", "getJob"), ("updateJob running", "running heartbeat"))
PACED_PILOTS, PACED_PAUSE = 4, 0.01  # the getJob load during the purge: well below saturation


def archived_template() -> JobSpec:
    """A user job as the bench submits them, with an input file besides its output and log."""
    (job,) = build_jobs(JobRequest(site="ARCHIVE_SITE", transformation="/bin/true", arguments="archived",
                                   outputs=["archived.out"]), 1)
    job.add_file(FileSpec(lfn="archived.in", type="input", dataset="in.ds", status="ready", GUID="g-in"))
    return job


@contextmanager
def history_database(backend: str, recent: int, old: int = 0) -> Iterator[str]:
    """A fresh database with the bench queue, ``recent`` archived jobs changed a day ago and ``old`` ones
    past retention (changed in 2020), with fresh planner statistics."""
    with fresh_database(backend, prefix="history") as db_url:
        web_api.add_queue(db_url)
        now = _dt.datetime.now(_dt.UTC).replace(tzinfo=None)
        for count, modified in ((recent, now - _dt.timedelta(days=1)), (old, _dt.datetime(2020, 1, 1))):
            if count:
                seed_archive(db_url, archived_template(), count, modified)
        analyze(db_url)
        yield db_url


def phase_rates(url: str, db_url: str, jobs: int) -> dict[str, float]:
    """One run of the bench's phases; the rate (per second) of each phase the figures compare."""
    rows = {row["endpoint"]: row["rate"] for row in web_api.run(url, db_url, jobs, PILOTS, 1, ("running",))}
    return {figure: rows[phase] for phase, figure in PHASES}


# --- getJob under the purge ----------------------------------------------------------------------------

def _paced_pilot(url: str, stop: multiprocessing.synchronize.Event, out: Any) -> None:
    """getJob, a short pause, again, until ``stop``; puts the round trips (seconds) on ``out``."""
    times: list[float] = []
    while not stop.is_set():
        reply, elapsed = web_api.legacy_call(url, "getJob", web_api.GETJOB_REQUEST)
        if int(reply.get("StatusCode", -1)) != 0:
            raise RuntimeError(f"getJob under the purge got no job: {reply}")
        times.append(elapsed)
        stop.wait(PACED_PAUSE)
    out.put(times)


@contextmanager
def paced_getjob(url: str) -> Iterator[list[float]]:
    """Paced pilots call getJob while the block runs; the list holds their round trips afterwards."""
    context = multiprocessing.get_context("fork")
    stop, out = context.Event(), context.Queue()
    pilots = [context.Process(target=_paced_pilot, args=(url, stop, out)) for _ in range(PACED_PILOTS)]
    for pilot in pilots:
        pilot.start()
    times: list[float] = []
    try:
        yield times
    finally:
        stop.set()
        for _ in pilots:
            times.extend(out.get(timeout=120))
        for pilot in pilots:
            pilot.join(30)


def add_activated(db_url: str, count: int) -> None:
    proxy = DBProxy(db_url)
    try:
        request = JobRequest(site=web_api.QUEUE, transformation="/bin/true", arguments="paced")
        for start in range(0, count, web_api.BATCH):
            proxy.insert_jobs(build_jobs(request, min(web_api.BATCH, count - start)), status="activated")
    finally:
        proxy.close()


def purge_under_load(url: str, db_url: str, quiet_seconds: float) -> tuple[list[float], list[float], float, int]:
    """getJob round trips for ``quiet_seconds`` without the purge, then while ``archive``'s purge runs;
    returns both, the purge's seconds and the archived jobs it deleted."""
    with paced_getjob(url) as quiet:
        time.sleep(quiet_seconds)
    settings = Settings(db_url=db_url)
    proxy = DBProxy(db_url)
    try:
        with paced_getjob(url) as loaded:
            started = time.perf_counter()
            deleted = purge_database(proxy, settings)  # type: ignore[arg-type]  # a DBProxy is a Store
            purge_seconds = time.perf_counter() - started
    finally:
        proxy.close()
    return quiet, loaded, purge_seconds, deleted["jobs_archived"]


# --- the section ---------------------------------------------------------------------------------------

def section(options: RunOptions) -> Section:
    archive = QUICK_ARCHIVE if options.quick else FULL_ARCHIVE
    jobs = 1000 if options.quick else 4000
    sizes = [] if options.quick else [10_000, 100_000]  # quick: the two ends only
    backend = options.backend
    mode = "quick mode: " if options.quick else ""
    samples: dict[str, dict[int, list[float]]] = {figure: {0: [], archive: []} for _, figure in PHASES}
    notes = [f"{backend}; gunicorn W={SERVER['workers']} T={SERVER['threads']} C={SERVER['db_connections']}, "
             f"{PILOTS} pilot processes (httpx, one keep-alive connection each), {jobs} jobs per run; the empty "
             f"and the {archive:,}-job database are measured in turn, {options.repeats} times; load average "
             f"{os.getloadavg()[0]:.1f} at start (2 cores)"]
    with ExitStack() as stack:
        started = time.perf_counter()
        empty_db = stack.enter_context(history_database(backend, 0))
        full_db = stack.enter_context(history_database(backend, archive - PURGED, PURGED))
        notes.append(f"seeded {archive:,} archived jobs (files, parameters, status log) in "
                     f"{time.perf_counter() - started:.0f} s")
        servers = {0: (empty_db, stack.enter_context(web_api.gunicorn(empty_db, **SERVER, extra={}))),
                   archive: (full_db, stack.enter_context(web_api.gunicorn(full_db, **SERVER, extra={})))}
        for _ in range(options.repeats):
            for size, (db_url, url) in servers.items():
                for figure, rate in phase_rates(url, db_url, jobs).items():
                    samples[figure][size].append(rate)
        db_url, url = servers[archive]
        add_activated(db_url, 8_000 if options.quick else 30_000)
        quiet, loaded, purge_seconds, deleted = purge_under_load(url, db_url, 3.0)
    between: dict[int, dict[str, float]] = {}
    for size in sizes:
        with history_database(backend, size) as db_url, web_api.gunicorn(db_url, **SERVER, extra={}) as url:
            between[size] = phase_rates(url, db_url, jobs)

    figures = [Figure(name=f"{figure} with {archive:,} archived jobs", unit="jobs/s",
                      samples=by_size[archive], reference=f"{figure} with no archived job",
                      reference_samples=by_size[0], target=0.90,
                      note=f"{mode}{archive:,} archived jobs, each with 3 files, its parameters and 5 status-log rows"
                           + ("; the full report seeds 1,000,000" if options.quick else ""))
               for figure, by_size in samples.items()]
    figures.append(Figure(
        name=f"getJob p95 while archive purges {deleted:,} jobs", unit="ms", samples=[quantile(loaded, 0.95) * 1000],
        reference="getJob p95 just before, same pilots", reference_samples=[quantile(quiet, 0.95) * 1000],
        target=1.5, higher_is_better=False,
        note=f"{PACED_PILOTS} paced pilots (getJob, {PACED_PAUSE * 1000:.0f} ms pause); the purge took "
             f"{purge_seconds:.1f} s in batches of {Settings().retention.batch_size} (one transaction each); "
             f"max {max(loaded) * 1000:.0f} ms against {max(quiet) * 1000:.0f} ms; one run"))
    series = []
    for _, figure in PHASES:
        medians = {0: statistics.median(samples[figure][0]), archive: statistics.median(samples[figure][archive])}
        medians.update({size: rates[figure] for size, rates in between.items()})
        series.append(Series(name=f"{figure} rate against history size", x_label="archived jobs",
                             y_label="jobs/s", points=sorted((float(k), v) for k, v in medians.items())))
    if sizes:
        notes.append("intermediate history sizes (" + ", ".join(f"{s:,}" for s in sizes) + ") are one run each")
    return Section(title=f"Flat with history ({backend})", figures=figures, series=series, notes=notes)


def print_section(result: Section) -> None:
    """The section as plain text, for a run of one module alone."""
    print(f"\n## {result.title}")
    for figure in result.figures:
        ratio = f"{figure.ratio:.3f}" if figure.ratio is not None else "-"
        ref = f"{figure.reference_median:.1f}" if figure.reference_median is not None else "-"
        print(f"{figure.name:<58} {figure.median:>9.1f} {figure.unit:<7} ref {ref:>9}  ratio {ratio}"
              f"  target {figure.target}  met {figure.met}")
        print(f"    samples {[round(x, 1) for x in figure.samples]} ref {[round(x, 1) for x in figure.reference_samples]}"
              f"  {figure.note}")
    for curve in result.series:
        print(f"{curve.name}: " + ", ".join(f"({x:,.0f}, {y:.0f})" for x, y in curve.points))
    for note in result.notes:
        print(f"note: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="1,000,000 archived jobs (default: quick, 100,000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", default="postgresql", choices=("postgresql", "mysql", "sqlite"))
    args = parser.parse_args()
    started = time.perf_counter()
    print_section(section(RunOptions(quick=not args.full, repeats=args.repeats, backend=args.backend)))
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
