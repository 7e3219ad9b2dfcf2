"""ConBridge: a DBProxy in a child process, so a hung database call can be killed with its session.

Each call crosses a pipe (our own processes on both ends, so pickle is fine). A call that takes longer
than ``db_timeout`` gets its child SIGKILLed (the server session is terminated too, in case the
server has not noticed yet), the caller gets ``DBTimeout`` at once, and the next call starts a fresh
child. Children come from a forkserver: forking a threaded web worker is unsafe, and the forkserver
(itself single-threaded, with the DB modules preloaded) starts a warm child in about 0.1 s where
spawn needs a fresh interpreter and its imports (0.3-0.4 s).
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import pickle
import signal
import threading
import traceback
from multiprocessing.connection import Connection
from typing import Any, Callable

from pandasrv.taskbuffer import errors
from pandasrv.taskbuffer.db_proxy import DBProxy, public_methods

log = logging.getLogger(__name__)

# Imported once by the forkserver so that every child starts warm: this module and the drivers
# (psycopg alone takes ~0.1 s to import). Children still re-import the parent's main script as
# ``__mp_main__`` (the multiprocessing rule: a main script must be import-safe), except when it runs
# as ``python -m package``.
_PRELOAD = [
    __name__, "pandasrv.taskbuffer.drivers.sqlite", "pandasrv.taskbuffer.drivers.postgresql",
    "pandasrv.taskbuffer.drivers.mysql",
]

# Seconds to wait for a child to go after a polite stop, before SIGKILL.
_STOP_GRACE = 2.0

_context_lock = threading.Lock()
_context: Any = None


def _mp_context() -> Any:
    global _context
    with _context_lock:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(_PRELOAD)
            _context = context
        return _context


def _portable(exc: BaseException) -> BaseException:
    """The exception itself if it survives pickling (with the child's traceback as a note), else a DBError."""
    exc.add_note("in ConBridge child:\n" + "".join(traceback.format_exception(exc)).rstrip())
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return errors.DBError(f"{type(exc).__name__}: {exc}")


def _serve(conn: Connection, db_url: str, statement_timeout: float | None) -> None:
    """Child main loop: one call at a time until the parent closes the pipe or sends None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    proxy = DBProxy(db_url, statement_timeout=statement_timeout)
    try:
        conn.send((True, proxy.session_id()))
    except Exception as exc:
        conn.send((False, _portable(exc)))
        return
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        if message is None:
            break
        name, args, kwargs = message
        try:
            reply = (True, getattr(proxy, name)(*args, **kwargs))
        except BaseException as exc:
            reply = (False, _portable(exc))
        try:
            conn.send(reply)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            conn.send((False, errors.DBError(f"{name}: result cannot cross the ConBridge pipe: {exc}")))
    proxy.close()


class ConBridge:
    """Any public DBProxy method, called in a child process under ``db_timeout``."""

    _methods = public_methods()

    def __init__(self, settings: Any, *, statement_timeout: float | None = None) -> None:
        self.db_url: str = settings.db_url
        self.timeout: float = float(settings.db_timeout)
        self.statement_timeout = statement_timeout
        self._lock = threading.Lock()
        self._process: Any = None
        self._pipe: Connection | None = None
        self._session: int | None = None

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or name not in self._methods:
            raise AttributeError(f"{type(self).__name__} has no method {name!r}")
        return functools.partial(self._call, name)

    @property
    def pid(self) -> int | None:
        """The child's process id, None while no child runs."""
        return self._process.pid if self._process is not None else None

    @property
    def session(self) -> int | None:
        """The child's database session id (see DBProxy.session_id)."""
        return self._session

    def ping(self) -> bool:
        try:
            return bool(self._call("ping"))
        except errors.DBError as exc:
            log.info("ConBridge ping failed: %s", exc)
            return False

    def close(self) -> None:
        """Stop the child (politely, then SIGKILL); a later call starts a new one."""
        with self._lock:
            process, pipe = self._process, self._pipe
            self._process = self._pipe = self._session = None
            if process is None:
                return
            try:
                pipe.send(None)
            except OSError:
                pass
            process.join(_STOP_GRACE)
            if process.is_alive():
                process.kill()
                process.join()
            pipe.close()

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            pipe = self._pipe if self._process is not None else self._start()
            try:
                pipe.send((name, args, kwargs))
                if not pipe.poll(self.timeout):
                    self._kill(terminate_session=True)
                    raise errors.DBTimeout(f"{name} took longer than db_timeout={self.timeout:g}s; its DB session was killed")
                ok, value = pipe.recv()
            except (EOFError, OSError) as exc:
                self._kill(terminate_session=True)
                raise errors.ConnectionLost(f"ConBridge child died during {name}: {exc!r}") from None
        if ok:
            return value
        raise value

    def _start(self) -> Connection:
        parent_end, child_end = _mp_context().Pipe()
        process = _mp_context().Process(
            target=_serve, args=(child_end, self.db_url, self.statement_timeout), name="pandasrv-conbridge", daemon=True
        )
        process.start()
        child_end.close()
        self._process, self._pipe = process, parent_end
        try:
            if not parent_end.poll(self.timeout):
                raise errors.DBTimeout(f"ConBridge child did not connect within db_timeout={self.timeout:g}s")
            ok, value = parent_end.recv()
        except (EOFError, OSError) as exc:
            self._kill(terminate_session=False)
            raise errors.ConnectionLost(f"ConBridge child died while connecting: {exc!r}") from None
        except errors.DBTimeout:
            self._kill(terminate_session=False)
            raise
        if not ok:
            self._kill(terminate_session=False)
            raise value
        self._session = value
        return parent_end

    def _kill(self, *, terminate_session: bool) -> None:
        """SIGKILL the child; then end its server session, which may outlive it until the server notices."""
        process, pipe, session = self._process, self._pipe, self._session
        self._process = self._pipe = self._session = None
        if process is not None:
            process.kill()
            process.join()
        if pipe is not None:
            pipe.close()
        if terminate_session and session is not None:
            self._terminate(session)

    def _terminate(self, session: int) -> None:
        proxy = DBProxy(self.db_url)
        try:
            if proxy.backend != "sqlite" and proxy.terminate_session(session):
                log.info("terminated DB session %s of a killed ConBridge child", session)
        except errors.DBError as exc:
            log.warning("could not terminate DB session %s: %s", session, exc)
        finally:
            proxy.close()
