"""Overload: offer about twice the measured capacity, open-loop, and see what the replies are.

    .venv/bin/python bench/overload.py --backend postgresql --workers 2 --seconds 30

The ``overload`` section of ``make bench`` (``section``) runs the same phases, shorter in quick mode.

Starts ``pandasrv serve --no-daemon`` (or ``--front apache``: ``pandasrv apache --no-daemon``; W workers x T
threads) on a fresh database, warms it up (every process loads the app and opens its connections), then:
1. unloaded: one client, one submit of ``--jobs`` jobs at a time, for a few seconds: the unloaded p99;
2. capacity: ``--clients`` closed-loop clients for a few seconds: submits served per second;
3. overload: submits sent open-loop at ``--factor`` x capacity for ``--seconds``, each on its own connection
   with a 60 s client timeout (what a pilot or panda-client does), whatever the earlier ones are doing.
Prints, for the overload phase, how many replies were successes, 503s with ``Retry-After``, other errors
and client time-outs, how many waited longer than 20 s, and the p50 / p99 of the successes and of the 503s.
The seed's rule (docs/deploy.md, "Overload"): time per request A x requests per second R must stay below M x W;
what does not fit is shed with a fast 503 rather than queued until clients time out.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import apache_vs_serve, web_api  # noqa: E402
from bench.databases import fresh_database  # noqa: E402
from bench.figures import Figure, RunOptions, Section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CLIENT_TIMEOUT = 60.0
LONG_WAIT = 20.0
SHED_PAUSE = 0.1



@dataclass(frozen=True)
class Phases:
    """Seconds of each phase: warm-up (every process loads the app), unloaded, capacity, overload."""

    warm_up: float = 3.0
    unloaded: float = 10.0
    capacity: float = 8.0
    overload: float = 30.0


QUICK = Phases(warm_up=2.0, unloaded=5.0, capacity=6.0, overload=10.0)


@dataclass
class Reply:
    status: int  # 0 = client time-out or connection error
    seconds: float
    retry_after: bool


@contextmanager
def submitter(url: str, body: bytes) -> Iterator[Callable[[], Reply]]:
    """A sender of ``body`` to ``url``, each time on a fresh connection as an independent client would send
    it; one shared httpx client, so that a client's own set-up (its TLS context) is not in the figures."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    with httpx.Client(timeout=CLIENT_TIMEOUT, limits=limits, headers=headers) as client:
        def send() -> Reply:
            started = time.monotonic()
            try:
                response = client.post(url, content=body)
            except httpx.HTTPError:
                return Reply(0, time.monotonic() - started, False)
            return Reply(response.status_code, time.monotonic() - started, "retry-after" in response.headers)

        yield send


def closed_loop(send: Callable[[], Reply], clients: int, seconds: float) -> list[Reply]:
    """``clients`` senders, each sending its next request when its last one is answered (a moment later if it
    was shed: a client that retried at once would only measure how fast the server sheds)."""
    deadline = time.monotonic() + seconds
    replies: list[Reply] = []
    lock = threading.Lock()

    def client() -> None:
        while time.monotonic() < deadline:
            reply = send()
            with lock:
                replies.append(reply)
            if reply.status != 200:
                time.sleep(SHED_PAUSE)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return replies


def open_loop(send: Callable[[], Reply], rate: float, seconds: float) -> list[Reply]:
    """``rate`` requests per second for ``seconds``, each started on time whatever the others are doing."""
    n = int(rate * seconds)
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(n, int(rate * CLIENT_TIMEOUT) + 16)) as pool:
        started = time.monotonic()
        futures = []
        for i in range(n):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(send))
        return [future.result() for future in futures]


def p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def summary(replies: list[Reply]) -> dict[str, float]:
    ok = [r.seconds for r in replies if r.status == 200]
    shed = [r for r in replies if r.status == 503]
    return {
        "requests": len(replies), "ok": len(ok), "shed_503": len(shed),
        "shed_with_retry_after": sum(r.retry_after for r in shed),
        "other_errors": sum(r.status not in (0, 200, 503) for r in replies),
        "timed_out": sum(r.status == 0 for r in replies),
        "waited_over_20s": sum(r.seconds > LONG_WAIT for r in replies),
        "ok_p50": p(ok, 0.5), "ok_p99": p(ok, 0.99),
        "shed_p50": p([r.seconds for r in shed], 0.5), "shed_p99": p([r.seconds for r in shed], 0.99),
    }


@contextmanager
def front(kind: str, db_url: str, workers: int, threads: int, extra: dict[str, str]) -> Iterator[str]:
    """``pandasrv serve --no-daemon`` or ``pandasrv apache --no-daemon`` (W x T) on a free port: its URL."""
    settings = {f"PANDASRV_{key.upper()}": value for key, value in extra.items()}
    if kind == "apache":
        os.environ.update(settings)
        with apache_vs_serve.apache(db_url, workers, threads, int(extra.get("db_connections", 2))) as url:
            yield url
        return
    port = web_api.free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PANDASRV_")}, "PANDASRV_DB_URL": db_url,
           "PANDASRV_PORT": str(port), "PANDASRV_WORKERS": str(workers), "PANDASRV_THREADS": str(threads),
           "PANDASRV_ACCESS_LOG": "false", "PANDASRV_LOG_LEVEL": "ERROR", "PYTHONPATH": str(ROOT), **settings}
    proc = subprocess.Popen([sys.executable, "-m", "pandasrv.cli", "serve", "--no-daemon"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        web_api.wait_until_alive(url, proc, "pandasrv serve")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def submit_body(site: str, jobs: int) -> bytes:
    from pandasrv.submit import JobRequest, build_jobs, encode_jobs

    return json.dumps(encode_jobs(build_jobs(JobRequest(site=site, transformation="/bin/true", arguments="x"),
                                             jobs))).encode()


@dataclass
class Run:
    """One measurement: the unloaded and overload summaries, the capacity and the rate offered."""

    unloaded: dict[str, float]
    capacity: float
    offered: float
    overload: dict[str, float]
    seconds: float

    @property
    def goodput(self) -> float:
        return self.overload["ok"] / self.seconds


def measure(backend: str, kind: str = "serve", workers: int = 2, threads: int = 4, jobs: int = 100,
            clients: int = 8, factor: float = 2.0, phases: Phases | None = None,
            extra: dict[str, str] | None = None) -> Run:
    """The phases of the module docstring on a fresh database."""
    from pandasrv.taskbuffer.db_proxy import DBProxy

    phases = phases or Phases()
    body = submit_body("OVERLOAD", jobs)
    with fresh_database(backend, prefix="overload_shed") as db_url:
        proxy = DBProxy(db_url)
        proxy.connect()
        proxy.add_queue("OVERLOAD", "OVERLOAD", "online", {})
        proxy.close()
        with front(kind, db_url, workers, threads, extra or {}) as url, \
                submitter(f"{url}/api/v1/job/submit", body) as send:
            closed_loop(send, workers * threads, phases.warm_up)
            unloaded = summary(closed_loop(send, 1, phases.unloaded))
            measured = closed_loop(send, clients, phases.capacity)
            capacity = sum(r.status == 200 for r in measured) / phases.capacity
            offered = factor * capacity
            overload = summary(open_loop(send, offered, phases.overload))
    return Run(unloaded, capacity, offered, overload, phases.overload)


def section(options: RunOptions) -> Section:
    """``make bench``'s overload figures: ``pandasrv serve`` W = 2 x T = 4 at twice its capacity, once (a
    run is already a distribution of hundreds of replies; quick mode runs 10 s of overload, about 40 s in
    all, full mode ``options.repeats`` runs of 30 s)."""
    phases = QUICK if options.quick else Phases()
    load = os.getloadavg()[0]
    runs = [measure(options.backend, phases=phases) for _ in range(1 if options.quick else options.repeats)]
    replies = f"{sum(r.overload['requests'] for r in runs)} replies"
    return Section(
        title="Overload: twice the capacity, open loop",
        figures=[
            Figure(name="goodput at 2 × capacity", unit="submits/s", samples=[r.goodput for r in runs],
                   reference="capacity (closed loop, same run)", reference_samples=[r.capacity for r in runs],
                   target=0.8, note=f"successes per second while offered twice the capacity; {replies}"),
            Figure(name="successes' p99 at 2 × capacity", unit="s", samples=[r.overload["ok_p99"] for r in runs],
                   reference="unloaded p99 (one client, same run)",
                   reference_samples=[r.unloaded["ok_p99"] for r in runs], target=5.0, higher_is_better=False,
                   note="the issue's \"a few times the unloaded p99\""),
            Figure(name="503 p99 at 2 × capacity", unit="s", samples=[r.overload["shed_p99"] for r in runs],
                   target=1.0, higher_is_better=False,
                   note=f"{sum(r.overload['shed_503'] for r in runs)} 503s, "
                        f"{sum(r.overload['shed_with_retry_after'] for r in runs)} with Retry-After"),
            Figure(name="replies that waited > 20 s", unit="replies",
                   samples=[float(r.overload["waited_over_20s"]) for r in runs], target=0, higher_is_better=False,
                   note=f"{sum(r.overload['timed_out'] + r.overload['other_errors'] for r in runs)} time-outs "
                        "or other errors"),
        ],
        notes=[f"pandasrv serve --no-daemon, W = 2 × T = 4, {options.backend}, submits of 100 jobs each on a fresh "
               f"connection; phases {phases.warm_up:g} s warm-up, {phases.unloaded:g} s unloaded, "
               f"{phases.capacity:g} s capacity (8 closed-loop clients), {phases.overload:g} s open loop at "
               f"2 × capacity; load average {load:.1f} at start (2 cores); bench/overload.py"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="postgresql")
    parser.add_argument("--front", choices=("serve", "apache"), default="serve")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=100, help="jobs per submit")
    parser.add_argument("--clients", type=int, default=8, help="closed-loop clients measuring capacity")
    parser.add_argument("--factor", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a pandasrv setting for the server, e.g. queue_timeout=5")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.set)
    run = measure(args.backend, args.front, args.workers, args.threads, args.jobs, args.clients, args.factor,
                  Phases(overload=args.seconds), extra)
    print(f"front={args.front} backend={args.backend} workers={args.workers} threads={args.threads} jobs/submit={args.jobs} "
          f"settings={extra or 'defaults'}")
    print(f"unloaded: p50 {run.unloaded['ok_p50']:.3f} s, p99 {run.unloaded['ok_p99']:.3f} s; "
          f"capacity {run.capacity:.1f} submits/s ({args.clients} closed-loop clients)")
    print(f"offered {run.offered:.1f}/s open-loop for {args.seconds:g} s:")
    for key, value in run.overload.items():
        print(f"  {key}: {value:.3f}" if isinstance(value, float) else f"  {key}: {value}")
    print(f"  goodput (ok per second): {run.goodput:.1f} of capacity {run.capacity:.1f} = {run.goodput / run.capacity:.2f}")
    print(f"  ok_p99 / unloaded p99: {run.overload['ok_p99'] / run.unloaded['ok_p99']:.1f}")


if __name__ == "__main__":
    main()
