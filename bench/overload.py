"""Overload: offer about twice the measured capacity, open-loop, and see what the replies are.

    .venv/bin/python bench/overload.py --backend postgresql --workers 2 --seconds 30

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

ROOT = Path(__file__).resolve().parent.parent
CLIENT_TIMEOUT = 60.0
LONG_WAIT = 20.0
SHED_PAUSE = 0.1
WARM_UP_SECONDS = 3.0
UNLOADED_SECONDS = 10.0
CAPACITY_SECONDS = 8.0


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
    import apache_vs_serve
    import web_api

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
    sys.path.insert(0, str(ROOT / "bench"))
    from databases import fresh_database

    from pandasrv.taskbuffer.db_proxy import DBProxy

    extra = dict(item.split("=", 1) for item in args.set)
    body = submit_body("OVERLOAD", args.jobs)
    with fresh_database(args.backend, prefix="overload_shed") as db_url:
        proxy = DBProxy(db_url)
        proxy.connect()
        proxy.add_queue("OVERLOAD", "OVERLOAD", "online", {})
        proxy.close()
        with front(args.front, db_url, args.workers, args.threads, extra) as url, \
                submitter(f"{url}/api/v1/job/submit", body) as send:
            closed_loop(send, args.workers * args.threads, WARM_UP_SECONDS)  # every process loads the app
            unloaded = summary(closed_loop(send, 1, UNLOADED_SECONDS))
            measured = closed_loop(send, args.clients, CAPACITY_SECONDS)
            capacity = sum(r.status == 200 for r in measured) / CAPACITY_SECONDS
            offered = args.factor * capacity
            overload = summary(open_loop(send, offered, args.seconds))
    print(f"front={args.front} backend={args.backend} workers={args.workers} threads={args.threads} jobs/submit={args.jobs} "
          f"settings={extra or 'defaults'}")
    print(f"unloaded: p50 {unloaded['ok_p50']:.3f} s, p99 {unloaded['ok_p99']:.3f} s; "
          f"capacity {capacity:.1f} submits/s ({args.clients} closed-loop clients)")
    print(f"offered {offered:.1f}/s open-loop for {args.seconds:g} s:")
    for key, value in overload.items():
        print(f"  {key}: {value:.3f}" if isinstance(value, float) else f"  {key}: {value}")
    goodput = overload["ok"] / args.seconds
    print(f"  goodput (ok per second): {goodput:.1f} of capacity {capacity:.1f} = {goodput / capacity:.2f}")
    print(f"  ok_p99 / unloaded p99: {overload['ok_p99'] / unloaded['ok_p99']:.1f}")


if __name__ == "__main__":
    main()
