"""The WSGI entry that mod_wsgi loads: the settings ``pandasrv apache`` froze into its run directory.

mod_wsgi does not pass the command line or the caller's environment to its daemon processes, so the
settings travel as a JSON file beside the generated ``app.wsgi``; nothing is read from the environment.
The metrics directory that all W processes share (and the daemon master beside Apache) is ``metrics/``
in the same run directory; it must be chosen before prometheus-client is imported, hence the late import.
The application's log lines (one access line per request, refusals, outages) go to the process's standard
error, which mod_wsgi writes into Apache's error log; without a handler Python would drop all but warnings.

An application that cannot be built (a settings file the daemon user cannot read, a JWKS file or vomsdir
that is missing or unreadable for that user) would make mod_wsgi answer every request with its HTML 500.
Instead each request gets a 503 in the protocol's form, the reason is logged, and the application is built
again at most every ``RETRY_SECONDS``, so a repaired setting takes effect without a restart.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from pandasrv.config import Settings
from pandasrv.metrics_dir import use_multiprocess_dir
from pandasrv.web.codecs import JSON_TYPE, fail, to_json

METRICS_DIR = "metrics"
RETRY_SECONDS = 10.0
UNAVAILABLE = "the server cannot start with its settings; its operator finds the reason in the error log"
log = logging.getLogger("pandasrv.deploy.wsgi")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def build(settings_file: str) -> WsgiApp:
    """The application of one mod_wsgi daemon process, from the frozen settings."""
    path = Path(settings_file)
    use_multiprocess_dir(path.with_name(METRICS_DIR))
    from pandasrv.web.app import create_app

    settings = Settings.model_validate(json.loads(path.read_text(encoding="utf-8")))
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(process)d %(name)s %(levelname)s %(message)s")
    return create_app(settings)


class Deferred:
    """The application once it could be built; until then a 503 for every request."""

    def __init__(self, settings_file: str) -> None:
        self.settings_file = settings_file
        self.app: WsgiApp | None = None
        self.tried = float("-inf")
        self.lock = threading.Lock()
        self._try()

    def _try(self) -> None:
        self.tried = time.monotonic()
        try:
            self.app = build(self.settings_file)
        except Exception as exc:  # noqa: BLE001 - whatever stops the build, the callers get a clear answer
            logging.basicConfig(stream=sys.stderr)
            log.error("the application cannot start, requests are answered 503: %s: %s", type(exc).__name__, exc)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.app is None:
            with self.lock:
                if self.app is None and time.monotonic() - self.tried >= RETRY_SECONDS:
                    self._try()
        if self.app is not None:
            return self.app(environ, start_response)
        v1 = str(environ.get("PATH_INFO", "")).startswith("/api/")
        body = to_json(fail(UNAVAILABLE)) if v1 else f"ERROR : {UNAVAILABLE}".encode()
        start_response("503 Service Unavailable", [("Content-Type", JSON_TYPE if v1 else "text/plain"),
                                                   ("Content-Length", str(len(body))),
                                                   ("Retry-After", str(int(RETRY_SECONDS)))])
        return [body]


def load(settings_file: str) -> WsgiApp:
    """What ``app.wsgi`` calls: the application, or its stand-in until it can be built."""
    deferred = Deferred(settings_file)
    return deferred.app or deferred
