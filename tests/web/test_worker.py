"""``pandasrv serve``'s worker (pandasrv.web.worker): slow clients hold no thread, requests that arrive in
pieces are served intact, and a connection that never finishes its request is closed."""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pandasrv.web.worker import BUFFERED_BODY_BYTES, complete
from tests.conftest import fresh_database
from tests.web.conftest import RunningServer, start_server
from tests.web.helpers import submit_activated

READ_TIMEOUT = 2.0


# --- when is a request complete ------------------------------------------------------------------

@st.composite
def requests(draw: Any) -> tuple[bytes, int]:
    """A request and the length of its prefix that must be read before a thread gets it."""
    headers = draw(st.lists(st.tuples(st.from_regex(r"X-[A-Za-z]{1,8}", fullmatch=True),
                                      st.from_regex(r"[ -~]{0,20}", fullmatch=True)), max_size=5))
    framing = draw(st.sampled_from(["none", "length", "large", "chunked"]))
    body = draw(st.binary(max_size=300)) if framing in ("length", "chunked") else b""
    name = draw(st.sampled_from(["Content-Length", "content-length", "CONTENT-LENGTH"]))
    if framing == "length":
        headers.insert(draw(st.integers(0, len(headers))), (name, str(len(body))))
    elif framing == "large":
        headers.append((name, str(BUFFERED_BODY_BYTES + 1)))
    elif framing == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
    head = b"POST /server/panda/getJob HTTP/1.1\r\nHost: x\r\n" + b"".join(
        f"{k}: {v}\r\n".encode() for k, v in headers) + b"\r\n"
    return head + body, len(head) + (len(body) if framing == "length" else 0)


@given(requests())
def test_a_request_is_complete_exactly_when_its_head_and_small_body_are_in(case: tuple[bytes, int]) -> None:
    data, needed = case
    for cut in range(len(data) + 1):
        assert complete(data[:cut]) == (cut >= needed), (data, cut)


def test_an_endless_head_is_handed_to_the_parser() -> None:
    assert complete(b"GET / HTTP/1.1\r\n" + b"X-Long: " + b"a" * 900_000)


@given(st.binary(min_size=1, max_size=64).filter(lambda data: not data[:1].isalpha()))
def test_what_cannot_start_a_request_goes_to_the_parser_at_once(data: bytes) -> None:
    assert complete(data)


# --- against the server --------------------------------------------------------------------------

@contextlib.contextmanager
def one_worker_two_threads(databases: Any, workdir: Path, read_timeout: float) -> Iterator[RunningServer]:
    with fresh_database(databases, "sqlite", workdir) as db_url, \
            start_server(db_url, "sqlite", workdir, workers=1, threads=2, request_read_timeout=read_timeout) as running:
        running.add_queue(running.queue)
        yield running


@pytest.fixture(scope="module")
def server(test_databases: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with one_worker_two_threads(test_databases, tmp_path_factory.mktemp("worker"), READ_TIMEOUT) as running:
        yield running


@pytest.fixture(scope="module")
def patient_server(test_databases: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A read timeout longer than the test: what keeps the slow clients from the threads is only the worker."""
    with one_worker_two_threads(test_databases, tmp_path_factory.mktemp("patient"), 600.0) as running:
        yield running


def connect(server: RunningServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def reply_of(stream: Any) -> bytes:
    """The next reply on a connection (``sock.makefile("rb")``: bytes of a following reply stay buffered),
    as its status line, a blank line and its body."""
    status = stream.readline().rstrip(b"\r\n")
    length = 0
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status + b"\r\n\r\n" + stream.read(length)


def test_slow_clients_do_not_take_the_threads(patient_server: RunningServer) -> None:
    """64 connections trickling headers beside one worker with two threads: every normal request is served."""
    server = patient_server
    slow = [connect(server) for _ in range(64)]
    try:
        for sock in slow:
            sock.sendall(b"GET /server/panda/isAlive HTTP/1.1\r\nHost: x\r\n")
        served = 0
        for _ in range(12):
            for sock in slow:
                sock.sendall(b"X-Slow: 1\r\n")
            served += httpx.get(f"{server.url}/server/panda/isAlive", timeout=30).text == "alive=yes"
        assert served == 12
    finally:
        for sock in slow:
            sock.close()


def test_tls_on_the_plain_port_is_answered_without_waiting(patient_server: RunningServer) -> None:
    """An https client on the http port: its ClientHello gets gunicorn's 400 (or a close) at once, not after
    the 600 s read timeout."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with connect(patient_server) as sock, pytest.raises(ssl.SSLError, match="WRONG_VERSION_NUMBER"):
        context.wrap_socket(sock, server_hostname="127.0.0.1")  # the answer is plain HTTP, not a ServerHello


def test_a_request_that_never_ends_is_closed_after_the_read_timeout(server: RunningServer) -> None:
    sock = connect(server)
    with sock:
        sock.sendall(b"GET /server/panda/isAlive HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the server, without a thread ever reading it
        assert time.monotonic() - started < READ_TIMEOUT + 10


def pilot_request(queue: str) -> bytes:
    body = gzip.compress(json.dumps({"siteName": queue, "prodSourceLabel": "user", "node": "n"}).encode())
    return (b"POST /server/panda/getJob HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Accept: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


@pytest.mark.parametrize("piece", [1, 7, 64])
def test_a_request_in_pieces_is_served_intact_twice_on_one_connection(server: RunningServer, piece: int) -> None:
    queue = f"{server.queue}_{piece}"
    server.add_queue(queue)
    (panda_id,) = submit_activated(server, queue)
    request = pilot_request(queue)
    answers = []
    with connect(server) as sock, sock.makefile("rb") as replies:
        for _ in range(2):  # the second request arrives on the kept-alive connection
            for start in range(0, len(request), piece):
                sock.sendall(request[start:start + piece])
                time.sleep(0.001)
            status, _, body = reply_of(replies).partition(b"\r\n\r\n")
            assert status == b"HTTP/1.1 200 OK"
            answers.append(json.loads(body))
    assert (answers[0]["StatusCode"], int(answers[0]["PandaID"]), answers[1]["StatusCode"]) == (0, panda_id, 20)


def test_pipelined_chunked_and_large_bodies(server: RunningServer) -> None:
    body = b'{"job_ids": [1099511627776]}'  # a job that never exists
    chunked = (b"POST /api/v1/job/get_description_incl_archive HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               b"Content-Type: application/json\r\nAccept: application/json\r\n\r\n"
               b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    with connect(server) as sock, sock.makefile("rb") as replies:
        sock.sendall(chunked + pilot_request(server.queue))  # two requests in one packet
        first = reply_of(replies)
        assert first.startswith(b"HTTP/1.1 200") and json.loads(first.partition(b"\r\n\r\n")[2]) == {
            "success": True, "message": "", "data": [None]}
        second = reply_of(replies)
        assert second.startswith(b"HTTP/1.1 200") and json.loads(second.partition(b"\r\n\r\n")[2])["StatusCode"] == 20
    large = json.dumps({"jobs": "x" * (BUFFERED_BODY_BYTES + 10)}).encode()
    reply = httpx.post(f"{server.url}/api/v1/job/submit", content=large, timeout=60,
                       headers={"Content-Type": "application/json", "Accept": "application/json"})
    assert reply.status_code < 500 and reply.json()["success"] is False


def test_many_clients_at_once_are_all_served(server: RunningServer) -> None:
    with ThreadPoolExecutor(16) as pool:
        texts = list(pool.map(lambda _: httpx.get(f"{server.url}/server/panda/isAlive", timeout=60).text, range(200)))
    assert texts == ["alive=yes"] * 200
