"""The daemon master: one per machine, a cron that feeds ``n_proc`` worker processes.

Rules kept here (PanDA's ``DaemonMaster``): at most one run of a script at a time on this machine; a script
is due ``period`` seconds after its last start, or within seconds (``RETRY_FIRST``, doubling) after a run
that failed on a database outage (a run longer than its period delays the next one and is
logged); a run longer than its ``timeout`` has its worker's whole process group killed and a new worker
started; what a worker killed or dead in the middle of a run had locked is given back at once by another
worker (the master keeps no database session); idle workers older than ``proc_lifetime`` are recycled.
Scripts are handed to idle workers directly, so the master always knows which worker runs what. Cross-machine
exclusion is the workers' business (``lease.py``): a sync script whose lease is held elsewhere comes back
``skipped`` with the lease's expiry.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Callable

from pandasrv.clock import SYSTEM_CLOCK, Clock
from pandasrv.config import Settings
from pandasrv.daemon.schedule import load_schedule
from pandasrv.daemon.worker import worker_main
from pandasrv.supervisor import Supervisor, command

log = logging.getLogger("pandasrv.daemon.master")

TICK = 0.2
RESPAWN_BACKOFF = 5.0
RETRY_FIRST = 1.0     # a run that met a database outage is retried after 1 s, 2 s, 4 s, ... (never later than
RETRY_MAX = 30.0      # its period would have it): the agents carry on within seconds of the database's return
STOP_GRACE = 5.0


@dataclass
class ScriptState:
    next_due: float
    started: float = 0.0
    worker: "WorkerHandle | None" = None
    retries: int = 0


@dataclass
class WorkerHandle:
    process: Any
    conn: Connection
    born: float
    ready: bool = False
    current: str | None = None
    since: float = 0.0
    retiring: bool = False

    @property
    def idle(self) -> bool:
        return self.ready and self.current is None and not self.retiring


class DaemonMaster:
    """The scheduler. Every reading of the time and every wait goes through ``clock``; workers are started and
    killed by ``_start_worker`` and ``_kill`` alone (tests simulate both, see ``tests/daemon/simulated.py``)."""

    def __init__(self, settings: Settings, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.clock = clock
        self.schedule = load_schedule(settings)
        now = clock.time()
        self.states = {name: ScriptState(next_due=now) for name in self.schedule}
        self.workers: list[WorkerHandle] = []
        self.context = multiprocessing.get_context("fork")
        self.next_spawn = 0.0
        self.stopping = False
        self.orphans: list[int] = []  # pids of workers that died mid-run, whose locks a live worker is to free

    # --- lifecycle -------------------------------------------------------------------------------
    def run(self) -> None:
        """Schedule until SIGTERM/SIGINT/SIGHUP, then stop every worker (and its process group)."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._request_stop)
        log.info("daemon master %d: %d workers, scripts %s", os.getpid(), self.settings.daemon.n_proc,
                 ", ".join(sorted(self.schedule)) or "(none)")
        try:
            while not self.stopping:
                self.tick()
        finally:
            self.shutdown()

    def _request_stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def shutdown(self) -> None:
        for worker in self.workers:
            try:
                worker.conn.send(("stop",))
            except OSError:
                pass
        deadline = self.clock.time() + STOP_GRACE
        for worker in self.workers:
            worker.process.join(max(deadline - self.clock.time(), 0.0) if worker.current is None else 0.0)
            self._kill(worker)
        self.workers.clear()

    # --- one scheduler pass ----------------------------------------------------------------------
    def tick(self) -> None:
        self._spawn_workers()
        self._collect(TICK)
        now = self.clock.time()
        self._reap(now)
        self._enforce_timeouts(now)
        self._recycle(now)
        self._hand_over_orphans()
        self._dispatch(now)

    def _spawn_workers(self) -> None:
        now = self.clock.time()
        while len(self.workers) < self.settings.daemon.n_proc and now >= self.next_spawn:
            self.workers.append(self._start_worker(now))

    def _start_worker(self, now: float) -> WorkerHandle:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=worker_main, name="pandasrv-daemon-worker",
                                       args=(child, self.settings, self.schedule, os.getpid()))
        process.start()
        child.close()
        assert process.pid is not None  # set by start()
        try:
            os.setpgid(process.pid, process.pid)
        except OSError:
            pass  # the worker already made itself a group leader
        return WorkerHandle(process=process, conn=parent, born=now)

    def _collect(self, timeout: float) -> None:
        by_conn = {worker.conn: worker for worker in self.workers}
        sentinels = [worker.process.sentinel for worker in self.workers]
        for ready in self.clock.wait(list(by_conn) + sentinels, timeout):
            worker = by_conn.get(ready)
            if worker is None:
                continue
            try:
                while worker.conn.poll():
                    self._on_message(worker, worker.conn.recv())
            except (EOFError, OSError):
                pass

    def _on_message(self, worker: WorkerHandle, message: tuple[Any, ...]) -> None:
        if message[0] == "ready":
            worker.ready = True
            return
        _, name, outcome, retry_at, started = message
        worker.current = None
        self.states[name].started = started
        self._finish(name, outcome, retry_at, self.clock.time())

    def _finish(self, name: str, outcome: str, retry_at: float | None, now: float) -> None:
        state, script = self.states[name], self.schedule[name]
        state.worker = None
        if outcome == "skipped":
            state.next_due = max(retry_at or now + min(script.period, 5), now + TICK)
            return
        if outcome == "retry":
            delay = min(RETRY_FIRST * 2 ** state.retries, RETRY_MAX, script.period)
            state.retries += 1
            state.next_due = now + delay
            log.warning("script %s failed on a database outage: retry %d in %.0f s", name, state.retries, delay)
            return
        state.retries = 0
        duration = now - state.started
        if duration > script.period and not script.loop:
            log.warning("script %s ran %.1f s, longer than its period of %d s: its next run is late",
                        name, duration, script.period)
        state.next_due = state.started + script.period

    def _reap(self, now: float) -> None:
        for worker in list(self.workers):
            if worker.process.is_alive():
                continue
            worker.process.join()
            self.workers.remove(worker)
            if worker.current is not None:
                log.error("worker %d died (exit code %s) while running %s", worker.process.pid,
                          worker.process.exitcode, worker.current)
                self.orphans.append(worker.process.pid)
                self._finish(worker.current, "error", None, now)
            elif not worker.retiring and now - worker.born < RESPAWN_BACKOFF:
                self.next_spawn = now + RESPAWN_BACKOFF
                log.error("worker %d exited right after start (exit code %s)", worker.process.pid,
                          worker.process.exitcode)

    def _enforce_timeouts(self, now: float) -> None:
        for worker in list(self.workers):
            if worker.current is None:
                continue
            script = self.schedule[worker.current]
            if now - worker.since <= script.timeout:
                continue
            log.error("script %s exceeded its timeout of %d s: killing worker %d and its process group",
                      script.name, script.timeout, worker.process.pid)
            self._kill(worker)
            self.workers.remove(worker)
            self.orphans.append(worker.process.pid)
            self._finish(script.name, "error", None, now)

    def _recycle(self, now: float) -> None:
        for worker in self.workers:
            if worker.idle and now - worker.born > self.settings.daemon.proc_lifetime:
                log.info("recycling worker %d after %.0f s", worker.process.pid, now - worker.born)
                worker.retiring = True
                try:
                    worker.conn.send(("stop",))
                except OSError:
                    self._kill(worker)

    def _hand_over_orphans(self) -> None:
        """Ask an idle worker to free the locks of workers that died mid-run (it does so before its next run)."""
        idle = [worker for worker in self.workers if worker.idle]
        while self.orphans and idle:
            try:
                idle[0].conn.send(("release", self.orphans[0]))
            except OSError:
                idle.pop(0)
                continue
            self.orphans.pop(0)

    def _dispatch(self, now: float) -> None:
        due = sorted((state.next_due, name) for name, state in self.states.items()
                     if state.worker is None and state.next_due <= now)
        idle = [worker for worker in self.workers if worker.idle]
        for (_, name), worker in zip(due, idle):
            try:
                worker.conn.send(("run", name))
            except OSError:
                continue
            worker.current, worker.since = name, now
            state = self.states[name]
            state.worker, state.started = worker, now

    def _kill(self, worker: WorkerHandle) -> None:
        try:
            os.killpg(worker.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        worker.process.join()
        worker.conn.close()


def run_master(settings: Settings) -> None:
    """Run the daemon master in this process until it is signalled (``pandasrv daemon``)."""
    DaemonMaster(settings).run()


def master_spawn(settings: Settings) -> Callable[[], subprocess.Popen[bytes]]:
    """A callable that starts the master as a child process; what ``pandasrv serve`` hands its Supervisor.

    A fresh interpreter rather than a fork of the caller: the web server's threads and sockets must not leak
    into the daemon. The settings travel as JSON on the child's stdin.
    """
    return command([sys.executable, "-m", "pandasrv.daemon.master"], stdin=settings.model_dump_json().encode())


def supervise_master(supervisor: Supervisor, settings: Settings) -> subprocess.Popen[bytes]:
    """Start the master under ``supervisor``, which restarts it with backoff when it dies and says so: what
    ``pandasrv serve`` and ``pandasrv apache`` run beside their web side (the supervisor must be started)."""
    master = supervisor.add("daemon master", master_spawn(settings))
    log.info("daemon master started (pid %d)", master.pid)
    return master


def start_master(settings: Settings) -> subprocess.Popen[bytes]:
    """Start the master as a child process, unsupervised; stop it with ``terminate()`` + ``wait()``."""
    return master_spawn(settings)()


def _main() -> None:
    settings = Settings.model_validate(json.loads(sys.stdin.read()))
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    run_master(settings)


if __name__ == "__main__":
    _main()
