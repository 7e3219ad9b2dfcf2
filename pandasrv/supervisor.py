"""Keep helper processes running: restart a child that dies, with backoff, and say so.

Used by ``pandasrv serve`` for the daemon master (and by any front end that runs the daemon next to another
web server). Two pieces:

- ``RestartPolicy`` is the rule on its own, for children restarted in place by their owner (the ConBridge
  child, the Setupper helper): the first restart is immediate, each further death within ``stable_after``
  seconds of the previous start doubles the wait (from ``initial_delay`` up to ``max_delay``), a child that
  stayed up longer than ``stable_after`` (or had not died for ``alarm_interval``) starts afresh; every death
  is logged with its exit code, and a child that keeps dying
  (``alarm_deaths`` deaths within ``alarm_interval``) is reported at ERROR once per interval rather than
  silently retried forever.
- ``Supervisor`` owns ``subprocess.Popen`` children started by a ``spawn`` callable, watches them from one
  thread (``start``/``stop``) or in the foreground until SIGTERM/SIGINT (``run``), and applies the policy.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

log = logging.getLogger("pandasrv.supervisor")

POLL = 0.2


@dataclass
class RestartPolicy:
    """When a dead child may be started again, and the log lines that go with each death."""

    name: str
    first_delay: float = 0.0
    initial_delay: float = 0.5
    max_delay: float = 30.0
    stable_after: float = 60.0
    alarm_deaths: int = 3
    alarm_interval: float = 300.0
    started: float = 0.0
    delay: float = 0.0
    not_before: float = 0.0
    deaths: list[float] = field(default_factory=list)
    last_alarm: float = float("-inf")

    def on_start(self, now: float | None = None) -> None:
        self.started = time.monotonic() if now is None else now

    def on_death(self, exit_code: int | None, now: float | None = None) -> float:
        """Record one death; returns the seconds to wait before the restart (also kept in ``not_before``)."""
        now = time.monotonic() if now is None else now
        recent = [t for t in self.deaths if now - t < self.alarm_interval]
        if now - self.started >= self.stable_after or not recent:
            self.delay = self.first_delay
        else:
            self.delay = min(max(self.delay * 2, self.initial_delay), self.max_delay)
        self.not_before = now + self.delay
        self.deaths = recent + [now]
        log.warning("%s died (%s) after %.1f s; restarting in %.1f s", self.name, describe_exit(exit_code),
                    now - self.started, self.delay)
        if len(self.deaths) >= self.alarm_deaths and now - self.last_alarm >= self.alarm_interval:
            self.last_alarm = now
            log.error("%s keeps dying: %d deaths in the last %.0f s (latest: %s); still restarting it %s",
                      self.name, len(self.deaths), self.alarm_interval, describe_exit(exit_code),
                      f"with backoff up to {self.max_delay:.0f} s" if self.max_delay else "at once")
        return self.delay

    def may_start(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) >= self.not_before


def describe_exit(code: int | None) -> str:
    """Popen's return code in words (negative = killed by a signal; None = reaped elsewhere, status unknown)."""
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def command(argv: Sequence[str], stdin: bytes | None = None, **popen: Any) -> Callable[[], subprocess.Popen[bytes]]:
    """A ``spawn`` callable that runs ``argv`` in its own session and writes ``stdin`` (then EOF) to it."""

    def spawn() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(list(argv), stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                   start_new_session=True, close_fds=True, **popen)
        if stdin is not None:
            assert process.stdin is not None
            process.stdin.write(stdin)
            process.stdin.close()
        return process

    return spawn


class _Child:
    def __init__(self, name: str, spawn: Callable[[], subprocess.Popen[bytes]], policy: RestartPolicy) -> None:
        self.name = name
        self.spawn = spawn
        self.policy = policy
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0


class Supervisor:
    """Children started by ``spawn`` callables, restarted when they die, stopped with SIGTERM then SIGKILL."""

    def __init__(self, stop_grace: float = 30.0) -> None:
        self.stop_grace = stop_grace
        self._children: dict[str, _Child] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._owner = os.getpid()

    def add(self, name: str, spawn: Callable[[], subprocess.Popen[bytes]], **policy: Any) -> subprocess.Popen[bytes]:
        """Start ``name`` now and keep it running; ``policy`` overrides RestartPolicy's defaults."""
        child = _Child(name, spawn, RestartPolicy(name=name, **policy))
        with self._lock:
            self._children[name] = child
            self._launch(child)
        assert child.process is not None
        return child.process

    def process(self, name: str) -> subprocess.Popen[bytes] | None:
        """The current process of ``name`` (a new object after each restart)."""
        return self._children[name].process

    def restarts(self, name: str) -> int:
        return self._children[name].restarts

    def check(self) -> None:
        """One pass: restart every dead child whose backoff is over."""
        with self._lock:
            if self._stopping.is_set():
                return
            for child in self._children.values():
                if child.process is not None:
                    dead, code = poll(child.process)
                    if not dead:
                        continue
                    child.policy.on_death(code)
                    child.process = None
                if child.policy.may_start():
                    child.restarts += 1
                    self._launch(child)
                    assert child.process is not None
                    log.warning("%s restarted (pid %d, restart %d)", child.name, child.process.pid, child.restarts)

    def start(self) -> None:
        """Watch the children from a background thread (for a process that has its own main loop)."""
        self._thread = threading.Thread(target=self._watch, name="pandasrv-supervisor", daemon=True)
        self._thread.start()

    def run(self) -> None:
        """Watch the children in the foreground until SIGTERM or SIGINT, then stop them."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self._stopping.set())
        try:
            self._watch()
        finally:
            self.stop()

    def stop(self) -> None:
        """SIGTERM every child, wait up to ``stop_grace`` seconds, then SIGKILL what is left.

        A no-op in a forked copy of the owner (a gunicorn worker unwinding through the code that started
        the arbiter): the children belong to the owner.
        """
        if os.getpid() != self._owner:
            return
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            processes = [c.process for c in self._children.values() if c.process is not None]
            for process in processes:
                if process.poll() is None:
                    process.terminate()
            deadline = time.monotonic() + self.stop_grace
            for process in processes:
                try:
                    process.wait(max(deadline - time.monotonic(), 0.0))
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    def _watch(self) -> None:
        while not self._stopping.wait(POLL):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the watcher must outlive a failed spawn
                log.exception("supervisor pass failed; trying again")

    def _launch(self, child: _Child) -> None:
        try:
            child.process = child.spawn()
        except OSError as exc:
            child.policy.on_start()
            child.policy.on_death(None)
            log.error("could not start %s: %s", child.name, exc)
            return
        child.policy.on_start()


def poll(process: subprocess.Popen[bytes]) -> tuple[bool, int | None]:
    """(dead, exit code) of a child; the code is None when another ``waitpid(-1)`` reaped it first.

    gunicorn's arbiter reaps every child of its process, ours included; ``Popen.poll`` would then report
    a plain 0, which reads as a clean exit after a ``kill -9``.
    """
    if process.returncode is not None:
        return True, process.returncode
    try:
        pid, status = os.waitpid(process.pid, os.WNOHANG)
    except ChildProcessError:
        process.returncode = 0
        return True, None
    if pid == 0:
        return False, None
    process.returncode = os.waitstatus_to_exitcode(status)
    return True, process.returncode
