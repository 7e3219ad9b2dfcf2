"""A daemon worker process: runs the scripts the master hands it, one at a time, with one TaskBuffer.

The worker leads its own process group so that the master can kill a hung run together with anything it
started (ConBridge children, subprocesses). Its TaskBuffer — and so its database sessions — lives as long as
the worker, across runs. A script that raises is logged and the worker carries on. Each run that was not
skipped is recorded in ``daemon_runs`` (start, end, result, the error's text) for the monitor.

Messages over the pipe (tuples): master → worker ``("run", name)``, ``("release", pid)`` (free what a dead
worker ``pid`` of this machine had locked) and ``("stop",)``;
worker → master ``("ready",)``, ``("done", name, outcome, retry_at, started)`` where ``outcome`` is ``ok``,
``error``, ``retry`` (it failed on a database outage: run it again after a short backoff) or ``skipped``
(a sync script whose lease another machine holds; ``retry_at`` is when it expires)
and ``started`` is when ``main`` was first called (after the lease was taken): the period counts from there.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from types import ModuleType

from pandasrv import metrics
from pandasrv.clock import SYSTEM_CLOCK, Clock
from pandasrv.config import Settings
from pandasrv.daemon.lease import Lease
from pandasrv.daemon.schedule import Script
from pandasrv.taskbuffer import errors
from pandasrv.taskbuffer.db_proxy import DBProxy
from pandasrv.taskbuffer.owners import owner_prefix, owner_token
from pandasrv.taskbuffer.store import Store
from pandasrv.taskbuffer.task_buffer import TaskBuffer

log = logging.getLogger("pandasrv.daemon.worker")

# Seconds the releaser of a worker whose master is gone waits for it to die, then keeps trying to give back
# its locks while the database is away.
RELEASE_PATIENCE = 30.0

# A run that fails with one of these met a database outage, not a bug: it is retried soon (outcome "retry").
TRANSIENT = (errors.ConnectionLost, errors.DBTimeout, errors.PoolTimeout, errors.LockTimeout)


def worker_main(conn: Connection, settings: Settings, schedule: dict[str, Script], master_pid: int) -> None:
    """Entry point of the worker process (forked by the master)."""
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    _watch_master(master_pid, settings.db_url)
    task_buffer = TaskBuffer(settings)
    runner = ScriptRunner(task_buffer, settings, schedule)
    conn.send(("ready",))
    try:
        while True:
            message = conn.recv()
            if message[0] == "stop":
                return
            if message[0] == "release":
                runner.release_dead(message[1])
                continue
            name = message[1]
            outcome, retry_at, started = runner.run(schedule[name])
            conn.send(("done", name, outcome, retry_at, started))
    except (EOFError, OSError):
        return
    finally:
        task_buffer.close()


def _watch_master(master_pid: int, db_url: str) -> None:
    """Kill this worker's whole process group as soon as the master is gone (e.g. kill -9 of the master).

    What this process had locked is given back by a releaser process started just before, in a session of its
    own, once this worker is dead (no new master could: it does not know this worker's pid). Released while
    the worker still ran, the locks could be taken again by the run (the Adder takes the next reports) between
    the release and the kill, and stay for ``lock_seconds``: ``bench/soak.py`` found 13 jobs held that way.
    """

    def watch() -> None:
        while os.getppid() == master_pid:
            time.sleep(0.5)
        try:
            releaser = subprocess.Popen([sys.executable, "-m", "pandasrv.daemon.worker", str(os.getpid())],
                                        stdin=subprocess.PIPE, start_new_session=True, close_fds=True)
            assert releaser.stdin is not None
            releaser.stdin.write(db_url.encode())  # not on the command line: the URL may carry a password
            releaser.stdin.close()
        except OSError as exc:
            log.warning("daemon master gone: no releaser for worker %d (%s); its locks expire", os.getpid(), exc)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="master-watch", daemon=True).start()


def _release_after_death(pid: int, db_url: str) -> None:
    """The releaser: wait for worker ``pid`` to be gone, then give back its locks (tried again while the
    database is away, for up to ``RELEASE_PATIENCE`` seconds)."""
    deadline = time.monotonic() + RELEASE_PATIENCE
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    while True:
        proxy = DBProxy(db_url, statement_timeout=RELEASE_PATIENCE)
        try:
            released = proxy.release_work_locks(owner_prefix(pid))
            log.warning("daemon master gone: released %d work lock(s) of worker %d", released, pid)
            return
        except errors.DBError as exc:
            if time.monotonic() > deadline:
                log.warning("daemon master gone: could not release the work locks of worker %d: %s", pid, exc)
                return
            time.sleep(1)
        finally:
            proxy.close()


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs: a zombie (state ``Z`` in ``/proc/<pid>/stat``, after the command name in
    parentheses) has already lost its database sessions."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return False
    return bool(fields) and fields[0] != b"Z"


class ScriptRunner:
    """Imports each script module once and runs it with the worker's TaskBuffer; times runs with ``clock``."""

    def __init__(self, task_buffer: Store, settings: Settings, schedule: dict[str, Script],
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.task_buffer = task_buffer
        self.clock = clock
        self.settings = settings
        self.schedule = schedule
        self.owner = owner_token()
        self._modules: dict[str, ModuleType] = {}
        self._unreleased: set[str] = set()  # owner prefixes whose locks are still to be given back

    def run(self, script: Script) -> tuple[str, float | None, float]:
        """Run one scheduled execution; never raises, so a failing script cannot take the worker down.

        After a failed run, everything this process had locked (output reports, leases: owner tokens
        ``host-pid-…``) is released before anything else runs, so the retry or another worker takes the
        work at once instead of waiting for the locks to expire. The same goes for a dead worker's locks
        (``release_dead``).
        """
        started = self.clock.time()
        try:
            self._release_work_locks()
            if script.sync:
                lease = Lease(self.task_buffer, script.lease_component, self.owner, script.period)
                previous = lease.holder()
                if not lease.acquire():
                    return "skipped", lease.expiry(), started
                self._count_lease(script, previous)
                started = self.clock.time()
                with lease:
                    self._call(script)
            else:
                self._call(script)
            outcome, message = "ok", None
        except TRANSIENT as exc:
            log.warning("script %s met a database outage (%s: %s); it is retried shortly", script.name,
                        exc.__class__.__name__, str(exc).splitlines()[0] if str(exc) else "")
            log.debug("script %s failed", script.name, exc_info=True)
            outcome, message = "retry", f"{exc.__class__.__name__}: {exc}"
        except Exception as exc:
            log.exception("script %s failed", script.name)
            outcome, message = "error", f"{exc.__class__.__name__}: {exc}"
        if outcome != "ok":
            metrics.DAEMON_FAILURES.labels(script.name).inc()
            self._unreleased.add(owner_prefix())
            self._release_work_locks()
        metrics.DAEMON_RUNS.labels(script.name, outcome).inc()
        metrics.DAEMON_DURATION.labels(script.name).observe(self.clock.time() - started)
        self._record(script, started, outcome, message)
        return outcome, None, started

    def _count_lease(self, script: Script, previous: str | None) -> None:
        """A lease whose last holder ran on another machine (``host-pid-random`` tokens) is a takeover."""
        metrics.LEASE_ACQUISITIONS.labels(script.name).inc()
        if previous and previous.rsplit("-", 2)[0] != self.owner.rsplit("-", 2)[0]:
            metrics.LEASE_TAKEOVERS.labels(script.name).inc()

    def release_dead(self, pid: int) -> None:
        """Free what worker ``pid`` of this machine had locked when it died or was killed (told by the master)."""
        self._unreleased.add(owner_prefix(pid))
        self._release_work_locks()

    def _release_work_locks(self) -> None:
        """Free what failed runs left locked; if the database is still away, try again before the next run."""
        for prefix in sorted(self._unreleased):
            try:
                released = self.task_buffer.release_work_locks(prefix)
            except errors.DBError as exc:
                log.warning("could not release the locks of a failed run yet: %s", str(exc).splitlines()[0])
                return
            self._unreleased.discard(prefix)
            if released:
                log.info("released %d work lock(s) left by a failed run (%s)", released, prefix)

    def _record(self, script: Script, started: float, outcome: str, message: str | None) -> None:
        """Best effort: a database too busy to take the record must not turn a good run into a failed one."""
        def utc(epoch: float) -> _dt.datetime:
            return _dt.datetime.fromtimestamp(epoch, _dt.UTC).replace(tzinfo=None)

        try:
            self.task_buffer.record_daemon_run(script.name, socket.gethostname(), utc(started), utc(self.clock.time()),
                                               outcome, message)
        except Exception as exc:
            log.warning("could not record the run of %s: %s", script.name, exc)

    def _call(self, script: Script) -> None:
        module = self._module(script)
        deadline = self.clock.monotonic() + script.period
        while True:
            result = module.main(self.task_buffer, self.settings, list(script.arguments))
            if not (script.loop and result is True and self.clock.monotonic() < deadline):
                return

    def _module(self, script: Script) -> ModuleType:
        if script.module not in self._modules:
            self._modules[script.module] = importlib.import_module(script.module)
        return self._modules[script.module]


if __name__ == "__main__":  # the releaser of a worker whose master is gone (see _watch_master)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    _release_after_death(int(sys.argv[1]), sys.stdin.read())
