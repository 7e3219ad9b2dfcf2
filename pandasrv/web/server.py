"""``pandasrv serve``: the web application under gunicorn (W processes x T threads), plus the daemon.

gunicorn's arbiter restarts web workers that die, at once; each death is recorded under a ``RestartPolicy``
so that workers that keep dying are reported at ERROR once per interval, as every supervised process is.
The daemon master is a child of the same process, kept running by a ``Supervisor`` thread (restart with
backoff, logged; see ``pandasrv.supervisor``).

The application object is built in the gunicorn master (it touches no database); each worker builds
its own TaskBuffer after the fork, so no database session or ConBridge child is ever shared.
"""

from __future__ import annotations

import logging
import time
from concurrent import futures
from typing import Any, Callable

from gunicorn.app.base import BaseApplication

from pandasrv.config import Settings
from pandasrv.supervisor import RestartPolicy, Supervisor
from pandasrv.web import admission
from pandasrv.web.app import create_app
from pandasrv.web.worker import BufferingWorker, whole

log = logging.getLogger("pandasrv.web.server")


def _post_worker_init(worker: Any) -> None:
    """Open this worker's TaskBuffer now, so the first request does not pay for it."""
    worker.wsgi.services.task_buffer  # noqa: B018 - the property builds it


# gunicorn respawns a dead worker in its next loop (no backoff of ours) and logs the signal or exit code
# itself; the policy adds the death line and the once-per-interval alarm.
_WEB_WORKERS = RestartPolicy(name="web worker", initial_delay=0.0, max_delay=0.0)


def _pre_fork(server: Any, worker: Any) -> None:
    _WEB_WORKERS.on_start()


def _child_exit(server: Any, worker: Any) -> None:
    """A reaped worker: a death unless the arbiter is shutting down (it closes its listeners first)."""
    if server.LISTENERS:
        _WEB_WORKERS.on_death(None)


def _worker_exit(server: Any, worker: Any) -> None:
    services = getattr(worker.wsgi, "services", None)
    if services is not None:
        services.close()


class ShedWorker(BufferingWorker):
    """The buffering gthread worker (pandasrv.web.worker: a request reaches a thread only once it has arrived)
    with admission (pandasrv.web.admission): the worker's ``Controller`` decides for each request as it has
    arrived, on the worker's main loop (a submit also by its Setupper helper's backlog,
    ``admission.setup_backlogged``). An admitted one goes to the T threads, counted and timed until its
    reply. A shed one is answered on the main loop at once, with a reply made in advance (503, ``Retry-After``,
    the protocol's form), and its connection closed: no thread, no parsing of its body, so that shedding
    costs the worker almost nothing of what it needs to serve at capacity. An exempt one (a health check,
    /metrics, a static file) is served uncounted by the side lane's threads, and so is a shed request the
    worker has not read whole (under TLS, or a body beyond the buffered size): the app sheds it there and
    gunicorn drains its body, so that neither a reset loses the 503 nor the body is read as a request."""

    SIDE_THREADS = admission.SIDE_THREADS

    def init_process(self) -> None:
        settings = self.app.settings
        self.admission = admission.Controller(admission.limits(settings.threads, settings.db_connections))
        self.side_pool = futures.ThreadPoolExecutor(max_workers=self.SIDE_THREADS)
        self.shed_replies = {v1: admission.shed_reply(v1, settings.retry_after_seconds) for v1 in (False, True)}
        super().init_process()

    def run(self) -> None:
        try:
            super().run()
        finally:
            self.side_pool.shutdown(wait=False)

    def enqueue_req(self, conn: Any) -> None:
        conn.pandasrv_queued_at = time.monotonic()
        received = getattr(conn, "received", None) or b""
        path = admission.request_path(received)
        verdict = None if path is not None and admission.exempt(path) else admission.decide(path, self.admission)
        if verdict is not None and verdict.shed and path is not None and whole(received):
            self._shed(conn, path, verdict)
            return
        conn.pandasrv_verdict = verdict
        admitted = conn.pandasrv_verdict is admission.Verdict.ADMITTED
        future = (self.tpool if admitted else self.side_pool).submit(self.handle, conn)
        future.add_done_callback(lambda done: self.method_queue.defer(self._finished, conn, done))

    def _shed(self, conn: Any, path: str, verdict: admission.Verdict) -> None:
        """The whole request has arrived (``whole``), so closing after the reply loses nothing."""
        try:
            conn.sock.send(self.shed_replies[path.startswith("/api/")])
        except OSError:
            pass  # the client is gone, or its socket is full: either way it retries
        self.nr_conns -= 1
        conn.close()
        self.wsgi.admission.shed_outside(path, verdict.value)

    def _finished(self, conn: Any, future: Any) -> None:
        if conn.pandasrv_verdict is admission.Verdict.ADMITTED:
            self.admission.done()
        self.finish_request(conn, future)

    def handle(self, conn: Any) -> Any:
        admission.record(conn.pandasrv_queued_at, conn.pandasrv_verdict)
        try:
            return super().handle(conn)
        finally:
            admission.record(None)


class PandaServer(BaseApplication):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.application = create_app(settings)
        super().__init__()

    def load_config(self) -> None:
        settings = self.settings
        options = {
            "bind": f"{settings.host}:{settings.port}",
            "workers": settings.workers,
            "threads": settings.threads,
            "worker_class": "pandasrv.web.server.ShedWorker",
            "backlog": admission.listen_backlog(settings.workers, settings.threads),
            "timeout": max(120, int(settings.db_timeout * 2)),
            "graceful_timeout": 10,
            "keepalive": 30,
            "accesslog": None,
            "loglevel": settings.log_level.lower(),
            "post_worker_init": _post_worker_init,
            "worker_exit": _worker_exit,
            "pre_fork": _pre_fork,
            "child_exit": _child_exit,
            "proc_name": "pandasrv-web",
            "control_socket_disable": True,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.application


def serve(settings: Settings, alongside: Callable[[Supervisor], object] | None = None) -> None:
    """Run the web server in the foreground; ``alongside`` adds the processes that run beside it, supervised
    (``pandasrv serve`` passes the daemon master's ``supervise_master``: the web layer starts no daemon)."""
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    server = PandaServer(settings)
    supervisor = Supervisor()
    if alongside is not None:
        alongside(supervisor)
        supervisor.start()
    try:
        server.run()
    finally:
        supervisor.stop()
