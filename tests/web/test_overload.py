"""Overload is shed, not queued.

- The admission controller, with a fake clock, in a simulated process of C connections (hypothesis): it never
  has more than its cap in flight; it sheds nothing while requests arrive no faster than they are served;
  under sustained overload its connections stay busy and the admitted requests wait a few service times.
- Every shed reply is a 503 with Retry-After in the protocol's form, before any database work, whoever shed
  it (the gunicorn worker, the app's own controller under mod_wsgi, the age bound); exempt paths (health
  checks, /metrics, static monitor files) are never shed.
- Submits are shed while the worker's Setupper helper is half a pipe behind (held at a gate), and a shed
  request on a keep-alive connection leaves no byte of its body to be read as the next request.
- Real servers at about twice their measured capacity, offered open-loop: every reply is a success or a 503
  with Retry-After, nothing waits anywhere near a client's time-out, exempt paths are answered 200 throughout,
  and the p99 of the successes stays within ``LATENCY_FACTOR`` times the unloaded p99 measured just before
  (no absolute timings: bench/overload.py has the figures, bench/README.md). ``pandasrv serve`` (1 worker x 2
  threads, 1 DB connection) and ``pandasrv apache`` (1 process x 2 threads) on PostgreSQL, submits of 100 jobs,
  the load of the issue's measurement.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import functools
import heapq
import json
import os
import socket
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from bench.overload import LONG_WAIT, closed_loop, open_loop, p, submit_body, submitter
from pandasrv.config import load_settings
from pandasrv.logic import handover
from pandasrv.taskbuffer.task_buffer import TaskBuffer
from pandasrv.web import admission
from pandasrv.web.worker import BUFFERED_BODY_BYTES
from tests.deploy.conftest import start_apache
from tests.waiting import wait_for
from tests.web.conftest import fresh_database, start_server
from tests.web.gated_setupper import GATED_VO
from tests.web.helpers import make_job, submit
from tests.web.inproc import InProcess, in_process_app

THREADS, CONNECTIONS = 2, 1
QUEUE_TIMEOUT = 2.0
APACHE_QUEUE = "OVERLOAD_APACHE"
HELD_BATCH = 2000  # jobs per submit held at the Setupper's gate: a few fill half a pipe with their PandaIDs
# The "few" of the issue: the successes' p99 under twice the capacity against the unloaded p99 of the same run.
# A property of the design, not a speed target: admission keeps at most about floor + target / A requests in a
# process, each answered within a few service times (docs/deploy.md "Overload"); without it (plain gunicorn)
# waits grow with the queue, to seconds within the 30 s of overload. The 30 s, not less: a worker's
# Setupper pipe took about 10 s of overload to fill, and before the backlog bound an admitted submit then
# blocked on it for seconds (7-12x), unseen in 8 s runs.
# Under Apache mod_wsgi queues requests before the app's controller sees them: CI saw 7.7 there before the
# backlog bound, so its bound stays 10 (the old behaviour gave 17-34x).
LATENCY_FACTOR = {"serve": 5, "apache": 10}
OVERLOAD_SECONDS = 30.0
EXEMPT = ("/server/panda/isAlive", "/api/v1/system/is_alive", "/metrics", "/monitor/static/monitor.css",
          "/favicon.ico")


# --- the controller, simulated ---------------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Simulated:
    arrived: float
    service: float
    admitted: bool = False
    finished: float | None = None


def simulate(controller: admission.Controller, clock: FakeClock, requests: list[Simulated], servers: int) -> None:
    """A web process: each request asks the controller as it arrives; admitted ones are served first in, first
    out by ``servers`` connections and reported ``done`` when they finish (a finish before an arrival at the
    same moment). Checks at every step that no more than the cap are in flight."""
    events = [(r.arrived, 1, i) for i, r in enumerate(requests)]
    heapq.heapify(events)
    waiting: collections.deque[int] = collections.deque()
    free = servers

    def start(i: int, now: float) -> None:
        nonlocal free
        free -= 1
        heapq.heappush(events, (now + requests[i].service, 0, i))

    while events:
        now, kind, i = heapq.heappop(events)
        clock.now = now
        request = requests[i]
        if kind == 0:
            request.finished = now
            assert request.admitted
            controller.done()
            free += 1
            if waiting:
                start(waiting.popleft(), now)
            continue
        request.admitted = controller.admit()
        assert controller.in_flight <= controller.limits.cap
        if request.admitted:
            if free:
                start(i, now)
            else:
                waiting.append(i)


def _arrivals(gaps: list[float], services: list[float], start: float = 0.0) -> list[Simulated]:
    requests, now = [], start
    for gap, service in zip(gaps, services):
        now += gap
        requests.append(Simulated(now, service))
    return requests


process_shape = st.tuples(st.integers(1, 8), st.integers(1, 4))  # threads, connections
service_times = st.floats(0.001, 0.5)


@hypothesis_settings(max_examples=200, deadline=None)
@given(shape=process_shape, history=st.lists(st.tuples(st.floats(0.0, 0.5), service_times), max_size=200),
       calm=st.lists(st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)), min_size=1, max_size=200),
       slowest=service_times)
def test_the_controller_never_exceeds_its_cap_and_sheds_nothing_while_arrivals_do_not_outpace_service(
        shape, history, calm, slowest):
    """Any history (overload included); once it has drained, requests each at least ``slowest / C`` after the
    last and each served within ``slowest``: never more than C in flight, so none is shed."""
    threads, connections = shape
    clock = FakeClock()
    controller = admission.Controller(admission.limits(threads, connections), clock)
    past = _arrivals([g for g, _ in history], [s for _, s in history])
    simulate(controller, clock, past, connections)
    drained = max([r.finished or r.arrived for r in past], default=0.0)
    gaps = [slowest / connections * (1 + extra) for extra, _ in calm]
    services = [slowest * fraction for _, fraction in calm]
    now = _arrivals(gaps, services, start=drained)
    simulate(controller, clock, now, connections)
    assert all(r.admitted for r in now), sum(not r.admitted for r in now)


@hypothesis_settings(max_examples=25, deadline=None)
@given(shape=process_shape, overload=st.floats(2.0, 6.0), service=st.floats(0.005, 0.5),
       spread=st.lists(st.floats(1.0, 1.5), min_size=64, max_size=64), seed=st.integers(0, 2**32 - 1))
def test_under_overload_the_controller_keeps_the_connections_busy_and_the_waits_short(
        shape, overload, service, spread, seed):
    """Arrivals (Poisson) at 2-6 x what C connections serve, for 300 requests' worth of service: after a
    warm-up the connections are busy at least 90 % of the time (shedding does not starve them); the admitted
    requests' p99 time to reply is within the target's bound (their own service, TARGET_FACTOR service times
    of queue, one more for the error of the estimate), and none waits beyond what the cap allows."""
    import random

    threads, connections = shape
    rng = random.Random(seed)
    clock = FakeClock()
    controller = admission.Controller(admission.limits(threads, connections), clock)
    mean = service * statistics.mean(spread)
    count = int(300 * overload)
    gaps = [rng.expovariate(overload * connections / mean) for _ in range(count)]
    requests = _arrivals(gaps, [service * spread[i % len(spread)] for i in range(count)])
    simulate(controller, clock, requests, connections)
    warm = [r for r in requests if r.arrived > requests[len(requests) // 5].arrived]
    admitted = [r for r in warm if r.admitted]
    window = warm[-1].arrived - warm[0].arrived
    busy = sum(r.service for r in admitted) / (connections * window)
    assert busy > 0.9, (busy, len(admitted), len(warm))
    longest = service * max(spread)
    replies = sorted(r.finished - r.arrived for r in admitted)
    assert replies[-1] <= (controller.limits.cap // connections + 1) * longest + 1e-9
    assert p(replies, 0.99) <= (2 + controller.TARGET_FACTOR) * longest + 1e-9


# --- shed replies, in process ----------------------------------------------------------------------------

@contextlib.contextmanager
def _gunicorn_verdict(age: float, verdict: admission.Verdict) -> Iterator[dict[str, Any]]:
    """The gunicorn worker queued the request ``age`` seconds ago with ``verdict`` (a shed one reaches a thread
    only under TLS, where the worker could not read it first)."""
    admission.record(time.monotonic() - age, verdict)
    try:
        yield {}
    finally:
        admission.record(None)


@contextlib.contextmanager
def _waited_in_mod_wsgi() -> Iterator[dict[str, Any]]:
    """mod_wsgi queued the request (its environ stamp, microseconds) longer than queue_timeout ago."""
    yield {"mod_wsgi.queue_start": str(int((time.time() - 2 * QUEUE_TIMEOUT) * 1e6))}


@contextlib.contextmanager
def _full_under_mod_wsgi(controller: admission.Controller) -> Iterator[dict[str, Any]]:
    """A mod_wsgi daemon process whose own controller already has its cap in flight."""
    controller.in_flight += controller.limits.cap  # as if the requests of its other threads were in flight
    try:
        yield {"mod_wsgi.process_group": "pandasrv"}
    finally:
        controller.in_flight -= controller.limits.cap


def _verdicts(running: InProcess) -> dict[str, Any]:
    return {"shed by the worker": functools.partial(_gunicorn_verdict, 0.0, admission.Verdict.SHED),
            "waited (gunicorn)": functools.partial(_gunicorn_verdict, 2 * QUEUE_TIMEOUT, admission.Verdict.ADMITTED),
            "waited (mod_wsgi)": _waited_in_mod_wsgi,
            "full (mod_wsgi)": functools.partial(_full_under_mod_wsgi, running.app.admission.controller)}


def test_a_shed_request_is_a_503_in_the_protocols_form_before_any_database_work(test_databases, backend, tmp_path):
    with in_process_app(test_databases, backend, tmp_path, queue_timeout=QUEUE_TIMEOUT) as running:
        calls = _calls(running)
        verdicts = _verdicts(running)

        @hypothesis_settings(max_examples=40, deadline=None)
        @given(call=st.sampled_from(sorted(calls)), verdict=st.sampled_from(sorted(verdicts)))
        def shed(call: str, verdict: str) -> None:
            jobs = running.tb.monitor_job_counts(("jobStatus",), {}, True)
            verb, path, kwargs = calls[call]
            with verdicts[verdict]() as environ:
                reply = running.request(verb, path, extras=environ, **kwargs)
            assert reply.status_code == 503, (verdict, call, reply.status_code, reply.text)
            assert int(reply.headers["Retry-After"]) == running.app.services.settings.retry_after_seconds
            _assert_protocol_form(path, reply.headers["Content-Type"], reply.content)
            assert running.tb.monitor_job_counts(("jobStatus",), {}, True) == jobs, "a shed submit stored jobs"

        shed()
        for call, (verb, path, kwargs) in calls.items():
            assert running.request(verb, path, **kwargs).status_code != 503, call


def _assert_protocol_form(path: str, content_type: str, body: bytes) -> None:
    if path.startswith("/api/"):
        assert content_type.startswith("application/json"), content_type
        reply = httpx.Response(503, content=body).json()
        assert reply["success"] is False and "server overloaded, retry later" in reply["message"], reply
    else:
        assert body.startswith(b"ERROR : server overloaded, retry later"), (path, body)


@pytest.mark.parametrize("v1", [False, True])
def test_the_workers_own_shed_reply_is_a_whole_503_in_the_protocols_form(v1):
    raw = admission.shed_reply(v1, 7)
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert lines[0] == "HTTP/1.1 503 Service Unavailable"
    assert headers["Retry-After"] == "7" and headers["Connection"] == "close"
    assert int(headers["Content-Length"]) == len(body)
    _assert_protocol_form("/api/v1/job/submit" if v1 else "/server/panda/getJob", headers["Content-Type"], body)


def test_exempt_paths_are_never_shed_nor_counted(test_databases, backend, tmp_path):
    with in_process_app(test_databases, backend, tmp_path, queue_timeout=QUEUE_TIMEOUT) as running:
        controller = running.app.admission.controller
        for verdict, made in _verdicts(running).items():
            for path in EXEMPT:
                with made() as environ:
                    in_flight = controller.in_flight
                    reply = running.request("GET", path, extras=environ)
                    assert controller.in_flight == in_flight
                assert reply.status_code == 200, (verdict, path, reply.status_code, reply.text[:200])
        assert all(admission.exempt(path) for path in EXEMPT)
        assert not any(admission.exempt(path) for path in ("/server/panda/getJob", "/api/v1/job/submit",
                                                           "/monitor/jobs", "/cache/x", "/monitor/static"))


@pytest.mark.parametrize("head, path", [
    (b"GET /server/panda/isAlive HTTP/1.1\r\nHost: x\r\n\r\n", "/server/panda/isAlive"),
    (b"POST /api/v1/job/submit?x=1 HTTP/1.1\r\n", "/api/v1/job/submit"),
    (b"\x16\x03\x01\x02\x00", None),
    (b"GET / HTTP/1.1", None),
])
def test_the_worker_reads_the_path_from_the_request_line(head, path):
    assert admission.request_path(head) == path


def _calls(running: InProcess) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """One call of each kind of route: legacy and v1 API methods, a cache file, a monitor page."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    return {
        "legacy getJob": ("POST", "/server/panda/getJob", {"body": f"siteName={running.queue}", "headers": form}),
        "v1 submit": ("POST", "/api/v1/job/submit", {"body": submit_body(running.queue, 3),
                                                     "headers": {"Content-Type": "application/json"}}),
        "cache file": ("GET", "/cache/nothing.tgz", {}),
        "monitor page": ("GET", "/monitor/jobs", {}),
    }


def test_submits_are_shed_while_the_setupper_helper_is_behind_and_a_shed_request_leaves_nothing_behind(
        test_databases, backend, tmp_path):
    """The Setupper helper of the one worker holds its first batch at the gate: submits are served until half
    its pipe is handed over, then the next submits (v1 and legacy, a body the worker buffers and one beyond
    that) are each a 503 with Retry-After and store nothing, and on a keep-alive connection the request sent
    behind a shed one is answered as itself (the shed body is never parsed as a request: once it was
    "Request Line is too large"), or the connection is closed. getJob is served meanwhile; once the gates
    open, submits are served again."""
    read_end, write_end = os.pipe()
    half_pipe = fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ) // 2
    os.close(read_end)
    os.close(write_end)
    with fresh_database(test_databases, backend, tmp_path) as db_url, \
            start_server(db_url, backend, tmp_path, workers=1, threads=THREADS, db_connections=CONNECTIONS,
                         access_log=False) as running:
        site = running.add_queue()
        held: list[list[Any]] = []
        while sum(len(json.dumps(ids)) + 1 for ids in held) < half_pipe:  # the hand-over's lines
            jobs = [make_job(site, f"held-{len(held)}-{i}", VO=GATED_VO) for i in range(HELD_BATCH)]
            held.append(submit(running.url, jobs))  # the reply comes at once; the batch waits at the gate
        host, port = running.url.removeprefix("http://").split(":")
        for path, content_type in (("/api/v1/job/submit", "application/json"),
                                   ("/server/panda/submitJobs", "application/x-www-form-urlencoded")):
            for size in (64 * 1024, BUFFERED_BODY_BYTES + 64 * 1024):
                first, rest = _shed_then_next((host, int(port)), path, content_type, size)
                status, headers, body = first
                assert status == 503, (path, size, status, body[:200])
                assert int(headers["retry-after"]) == running.settings.retry_after_seconds
                _assert_protocol_form(path, headers["content-type"], body)
                assert rest in (b"", b"alive=yes"), (path, size, rest[:200])
        assert admission.Verdict.SETUP_BEHIND.value in running.log_path.read_text()  # the log says why
        stored = sum(map(len, held))
        assert running.tb.monitor_job_counts(("computingSite",), {"queue": site}) == [(site, stored)]
        assert httpx.post(f"{running.url}/server/panda/getJob", data={"siteName": site},
                          timeout=LONG_WAIT).status_code == 200
        for batch in range(len(held)):
            for i in range(HELD_BATCH):
                (running.gates / f"held-{batch}-{i}").touch()
        wait_for(lambda: _submitted(running.url, make_job(site, "after")), timeout=60)


def _submitted(url: str, job: Any) -> bool:
    reply = httpx.post(f"{url}/api/v1/job/submit", json={"jobs": json.dumps([job.to_state()])}, timeout=LONG_WAIT)
    assert reply.status_code in (200, 503), (reply.status_code, reply.text)
    return reply.status_code == 200


def test_under_mod_wsgi_the_app_sheds_submits_while_its_setupper_helper_is_behind(
        test_databases, backend, tmp_path, monkeypatch):
    """The daemon process's own admission applies the same bound: submits (v1, legacy) get the 503 before any
    database work, getJob does not."""
    with in_process_app(test_databases, backend, tmp_path, queue_timeout=QUEUE_TIMEOUT) as running:
        monkeypatch.setattr(handover, "helper_behind", lambda: True)
        calls = _calls(running)
        environ = {"mod_wsgi.process_group": "pandasrv"}
        jobs = running.tb.monitor_job_counts(("jobStatus",), {}, True)
        legacy = ("POST", "/server/panda/submitJobs", {"body": "jobs=[]", "headers": {
            "Content-Type": "application/x-www-form-urlencoded"}})
        for verb, path, kwargs in (calls["v1 submit"], legacy):
            reply = running.request(verb, path, extras=environ, **kwargs)
            assert reply.status_code == 503, (path, reply.status_code, reply.text)
            assert int(reply.headers["Retry-After"]) == running.app.services.settings.retry_after_seconds
            _assert_protocol_form(path, reply.headers["Content-Type"], reply.content)
        assert running.tb.monitor_job_counts(("jobStatus",), {}, True) == jobs
        verb, path, kwargs = calls["legacy getJob"]
        assert running.request(verb, path, extras=environ, **kwargs).status_code == 200
        assert running.app.admission.controller.in_flight == 0


def _shed_then_next(address: tuple[str, int], path: str, content_type: str,
                    size: int) -> tuple[tuple[int, dict[str, str], bytes], bytes]:
    """POSTs ``size`` bytes of body to ``path`` and an isAlive right behind it on the same connection: the
    first reply (status, headers, body) and the body of the second, b"" if the server closed instead."""
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {size}\r\n"
            f"\r\n").encode()
    probe = b"GET /server/panda/isAlive HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(address, timeout=LONG_WAIT) as sock:
        sock.sendall(head + b"x" * size + probe)
        reader = sock.makefile("rb")
        first = _read_response(reader)
        try:
            second = _read_response(reader) if first[1].get("connection") != "close" else None
        except ConnectionError:
            second = None
    return first, b"" if second is None else second[2]


def _read_response(reader: Any) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length from a socket's file: status, headers (lower-case), body."""
    status_line = reader.readline()
    if not status_line:
        raise ConnectionError("closed")
    headers = {}
    while (line := reader.readline().rstrip(b"\r\n")):
        name, value = line.decode("latin-1").split(":", 1)
        headers[name.strip().lower()] = value.strip()
    body = reader.read(int(headers.get("content-length", 0)))
    return int(status_line.split()[1]), headers, body


@pytest.mark.solo  # the latency bound compares two windows of one run: no other test in between
@pytest.mark.backends("postgresql")
def test_excess_load_gets_a_fast_503_under_pandasrv_serve(test_databases, backend, tmp_path):
    with fresh_database(test_databases, backend, tmp_path) as db_url, \
            start_server(db_url, backend, tmp_path, workers=1, threads=THREADS, db_connections=CONNECTIONS,
                         access_log=False) as running:
        _offer_twice_the_capacity(running.url, running.add_queue(), LATENCY_FACTOR["serve"])


@pytest.mark.solo  # the latency bound compares two windows of one run: no other test in between
@pytest.mark.backends("postgresql")
def test_excess_load_gets_a_fast_503_under_pandasrv_apache(test_databases, backend, tmp_path):
    """The same admission in the mod_wsgi daemon process (its own controller, with side threads of its own
    for the shed and exempt requests), the same bounds."""
    with fresh_database(test_databases, backend, tmp_path) as db_url, \
            start_apache(db_url, tmp_path, extra=["--no-daemon", "--processes", "1", "--threads", str(THREADS)],
                         db_connections=CONNECTIONS, access_log="false") as running:
        tb = TaskBuffer(load_settings(db_url=db_url, db_bridge=False, db_connections=1))
        try:
            tb.add_queue(APACHE_QUEUE, APACHE_QUEUE, "online", {})
        finally:
            tb.close()
        _offer_twice_the_capacity(running.url, APACHE_QUEUE, LATENCY_FACTOR["apache"])


def _offer_twice_the_capacity(url: str, site: str, latency_factor: float) -> None:
    """The unloaded latency (one client), the capacity (as many closed-loop clients as the process admits),
    then twice the capacity open-loop for ``OVERLOAD_SECONDS``, while a prober asks for the exempt paths: the classes of the
    replies and their bounds. Admission decides as a request arrives, so a 503 comes before any wait and is
    faster than the successes."""
    clients = admission.limits(THREADS, CONNECTIONS).cap
    with submitter(f"{url}/api/v1/job/submit", submit_body(site, 100)) as send:
        closed_loop(send, clients, 1.0)  # warm-up: every process has loaded the app
        unloaded = closed_loop(send, 1, 3.0)
        measured = closed_loop(send, clients, 3.0)
        capacity = sum(r.status == 200 for r in measured) / 3.0
        assert capacity > 0, sorted({r.status for r in measured})
        with _probing(url) as probes:
            replies = open_loop(send, 2 * capacity, OVERLOAD_SECONDS)
    assert {r.status for r in replies} <= {200, 503}, sorted({r.status for r in replies})
    shed = [r for r in replies if r.status == 503]
    served = [r for r in replies if r.status == 200]
    assert shed and served, (len(shed), len(served))
    assert all(r.retry_after for r in shed)
    assert max(r.seconds for r in replies) < LONG_WAIT
    served_seconds = sorted(r.seconds for r in served)
    assert statistics.median(r.seconds for r in shed) < statistics.median(served_seconds)
    served_p99 = p(served_seconds, 0.99)
    unloaded_p99 = p([r.seconds for r in unloaded if r.status == 200], 0.99)
    print(f"overload: capacity {capacity:.1f}/s, {len(served)} served, {len(shed)} shed, "
          f"served p99 / unloaded p99 = {served_p99 / unloaded_p99:.1f}, exempt probes {collections.Counter(probes)}")
    assert served_p99 <= latency_factor * unloaded_p99, (served_p99, unloaded_p99)
    assert probes and set(probes) == {(path, 200) for path in EXEMPT}, collections.Counter(probes)


@contextlib.contextmanager
def _probing(url: str) -> Iterator[list[tuple[str, int]]]:
    """Asks for every exempt path in turn, each on a fresh connection, until the block ends."""
    probes: list[tuple[str, int]] = []
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client(timeout=LONG_WAIT, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            while not stop.is_set():
                for path in EXEMPT:
                    probes.append((path, client.get(f"{url}{path}").status_code))

    thread = threading.Thread(target=probe)
    thread.start()
    try:
        yield probes
    finally:
        stop.set()
        thread.join()
