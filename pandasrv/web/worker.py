"""The gunicorn worker of ``pandasrv serve``: gthread, but a connection gets a thread only once its request
has arrived.

gunicorn's threaded worker hands a new (or kept-alive, newly readable) connection to a thread as soon as its
first byte is there, and the thread then reads the rest blocking. A client that trickles its headers (a
slowloris) keeps that thread as long as it likes, and W x T such clients shut everybody else out. Here the
worker's own event loop reads the request head, and a body announced with a Content-Length up to
``BUFFERED_BODY_BYTES``, without blocking; only a complete request goes to the thread pool, with the bytes
given back to gunicorn's parser. A connection that has not sent its request within ``request_read_timeout``
seconds is closed. This is what Apache's event MPM and mod_reqtimeout do for ``pandasrv apache``. Chunked and larger
bodies (uploads) are read by the thread, as before, once their head is complete.
"""

from __future__ import annotations

import errno
import re
import selectors
import time
from collections import deque
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker

HEAD_END = b"\r\n\r\n"
BUFFERED_BODY_BYTES = 1024 * 1024
# a head larger than gunicorn accepts anyway (limit_request_fields x limit_request_field_size) goes to the
# parser, which answers it with its own 400
MAX_HEAD_BYTES = 100 * 8190
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d{1,12})[ \t]*\r\n", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:", re.IGNORECASE)


def _announced(data: bytes | bytearray) -> tuple[int, int | None] | None:
    """Where the body starts and the length its head announces (None: chunked), None without a whole head."""
    end = data.find(HEAD_END)
    if end < 0:
        return None
    head = data[:end + 2]
    if _CHUNKED.search(head):
        return end + len(HEAD_END), None
    found = _CONTENT_LENGTH.search(head)
    return end + len(HEAD_END), int(found.group(1)) if found else 0


def complete(data: bytes | bytearray) -> bool:
    """Whether ``data`` holds a whole request head and the small body it announces (or is past buffering).
    Bytes that cannot start an HTTP/1 request line (a TLS ClientHello sent to this plain-http port, binary
    noise) go to the parser at once, which answers them, instead of waiting for a head that never comes."""
    if data[:1] and not data[:1].isalpha():
        return True
    announced = _announced(data)
    if announced is None:
        return len(data) > MAX_HEAD_BYTES
    start, length = announced
    return length is None or length > BUFFERED_BODY_BYTES or len(data) - start >= length


def whole(data: bytes | bytearray) -> bool:
    """Whether ``data`` is a request with all of its (Content-Length) body: closing its connection after the
    reply then leaves no unread byte behind, which would turn the close into a reset that can cost the
    client the reply itself."""
    announced = _announced(data)
    return announced is not None and announced[1] is not None and len(data) - announced[0] >= announced[1]


class BufferingWorker(ThreadWorker):
    """gthread with request heads (and small bodies) read in the event loop; see the module docstring."""

    def init_process(self) -> None:
        self.reading: deque[TConn] = deque()
        self.read_timeout: float = self.app.settings.request_read_timeout
        super().init_process()

    def accept(self, listener: Any) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        self._read_request(TConn(self.cfg, client_sock, client_addr, listener.getsockname()))

    def on_client_socket_readable(self, conn: TConn, client: Any) -> None:
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._read_request(conn)

    def _read_request(self, conn: TConn) -> None:
        if self.cfg.is_ssl:  # the TLS handshake happens in the thread; gunicorn's own path
            self.enqueue_req(conn)
            return
        conn.sock.setblocking(False)
        conn.received = bytearray()
        conn.read_deadline = time.monotonic() + self.read_timeout
        self.reading.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_request_bytes, conn))

    def _on_request_bytes(self, conn: TConn, client: Any) -> None:
        try:
            chunk = client.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(conn)
            return
        conn.received += chunk
        if complete(conn.received):
            self.poller.unregister(client)
            self.reading.remove(conn)
            conn.data_ready = True
            self.enqueue_req(conn)

    def handle(self, conn: TConn) -> Any:
        received = getattr(conn, "received", None)
        if received:
            conn.received = None
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(bytes(received))
        return super().handle(conn)

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        for conn in [c for c in self.reading if c.read_deadline <= now]:
            self._drop(conn)

    def _drop(self, conn: TConn) -> None:
        try:
            self.poller.unregister(conn.sock)
        except (OSError, KeyError, ValueError):
            pass
        self.reading.remove(conn)
        self.nr_conns -= 1
        conn.close()
