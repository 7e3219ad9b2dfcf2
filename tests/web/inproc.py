"""The WSGI application in the test process, on a fresh database: fast enough to send it thousands of
generated requests (the fuzzers, the bad-input classes). Behaviour that lives in the server process
(gunicorn, worker hooks) is tested against ``start_server`` instead."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

import falcon.testing

from pandasrv.config import load_settings
from pandasrv.taskbuffer.task_buffer import TaskBuffer
from pandasrv.web.app import PandaApp, create_app
from tests.conftest import TestDatabases, fresh_database

MAX_BODY_BYTES = 4 * 1024 * 1024


class InProcess:
    """The app, a falcon test client on it, and a TaskBuffer on the same database to arrange state."""

    def __init__(self, app: PandaApp, db_url: str, queue: str) -> None:
        self.app = app
        self.client = falcon.testing.TestClient(app)
        self.db_url = db_url
        self.queue = queue

    @property
    def tb(self) -> TaskBuffer:
        return self.app.services.task_buffer

    def request(self, method: str, path: str, **kwargs: Any) -> falcon.testing.Result:
        kwargs.setdefault("remote_addr", "127.0.0.1")  # auth = none serves loopback peers only
        return self.client.simulate_request(method, path, **kwargs)


@contextlib.contextmanager
def in_process_app(databases: TestDatabases, backend: str, workdir: Path,
                   connect_as: Callable[[str], ContextManager[str]] = contextlib.nullcontext,
                   **overrides: Any) -> Iterator[InProcess]:
    """``create_app`` on a fresh ``backend`` database (auth none: the caller is local and production),
    with one online queue; bodies are limited to 4 MiB so limits are cheap to reach. ``connect_as`` turns
    the fresh database's URL into the one the app uses (another account, driver options)."""
    workdir.mkdir(parents=True, exist_ok=True)
    with fresh_database(databases, backend, workdir, prefix="pandasrv_i") as fresh_url, \
            connect_as(fresh_url) as db_url:
        settings = load_settings(db_url=db_url, db_bridge=False, db_connections=2,
                                 meta_cache_seconds=0, max_body_bytes=MAX_BODY_BYTES, access_log=False, **overrides)
        app = create_app(settings)
        queue = "INPROC_QUEUE"
        app.services.task_buffer.add_queue(queue, queue, "online", {})
        try:
            yield InProcess(app, db_url, queue)
        finally:
            app.services.close()
