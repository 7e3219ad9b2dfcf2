"""The daemon master and its script runner on simulated time: every decision is exact and a test of minutes of
scheduling takes milliseconds.

- ``SimulatedClock``: time moves only when the master waits, to the next thing a simulated worker does or by
  the whole timeout, never by the wall clock.
- ``SimulatedMaster``: the real ``DaemonMaster`` whose workers are ``SimulatedWorker`` objects on real pipes
  (in this process) instead of forked processes; each script behaves as ``behaviours`` says.
- ``main`` (with ``RecordingStore``): a script for ``ScriptRunner`` whose calls last simulated seconds.

What needs real processes (a timeout kills a whole process group, a worker keeps its session, a master killed
with -9) stays in ``test_scheduler.py`` and ``test_recovery.py`` with real masters.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import Any, Sequence

from pandasrv.config import Settings, load_settings
from pandasrv.daemon.master import DaemonMaster, WorkerHandle

START = 1000.0  # the simulated epoch: any time will do, a small one keeps float arithmetic exact enough
HANG = float("inf")  # a run that never ends


class SimulatedClock:
    """A ``Clock`` for the master: ``wait`` advances the time to the next event of a simulated worker if one
    falls within the timeout, else by the timeout."""

    def __init__(self, now: float = START) -> None:
        self.now = now
        self.workers: list[SimulatedWorker] = []

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def wait(self, handles: Sequence[Any], timeout: float) -> list[Any]:
        for worker in self.workers:
            worker.take_orders(self.now)
        if not any(_ready(handle) for handle in handles):
            due = min((w.finishes for w in self.workers if w.alive), default=HANG)
            if due <= self.now + timeout:
                self.now = max(due, self.now)
                for worker in self.workers:
                    worker.finish_due(self.now)
            else:
                self.now += timeout
        return [handle for handle in handles if _ready(handle)]


def _ready(handle: Any) -> bool:
    if isinstance(handle, Sentinel):
        return not handle.worker.alive
    return bool(handle.poll())


@dataclass
class Run:
    script: str
    pid: int
    start: float
    end: float | None = None


@dataclass(eq=False)
class Sentinel:
    worker: "SimulatedWorker"


@dataclass(eq=False)
class SimulatedWorker:
    """The process half of a worker handle: obeys the master's messages on ``conn`` in simulated time."""

    pid: int
    born: float
    conn: Connection
    behaviours: dict[str, tuple[float, str]]  # script -> (duration, outcome)
    runs: list[Run]
    alive: bool = True
    exitcode: int | None = None
    died: float | None = None
    current: Run | None = None
    released: list[int] = field(default_factory=list)  # pids whose locks the master asked this worker to free

    def __post_init__(self) -> None:
        self.sentinel = Sentinel(self)
        self.conn.send(("ready",))

    @property
    def finishes(self) -> float:
        if self.current is None:
            return HANG
        return self.current.start + self.behaviours[self.current.script][0]

    def take_orders(self, now: float) -> None:
        while self.alive and self.current is None and self.conn.poll():
            message = self.conn.recv()
            if message[0] == "stop":
                self.die(0, now)
            elif message[0] == "release":
                self.released.append(message[1])
            else:
                self.current = Run(message[1], self.pid, now)
                self.runs.append(self.current)

    def finish_due(self, now: float) -> None:
        if self.alive and self.current is not None and self.finishes <= now:
            run, self.current = self.current, None
            run.end = now
            self.conn.send(("done", run.script, self.behaviours[run.script][1], None, run.start))

    def die(self, exitcode: int, now: float) -> None:
        self.alive, self.exitcode, self.died = False, exitcode, now

    # the multiprocessing.Process interface the master uses
    def is_alive(self) -> bool:
        return self.alive

    def join(self, timeout: float | None = None) -> None:
        pass


class SimulatedMaster(DaemonMaster):
    """The real master with simulated workers: ``behaviours`` maps each script to (duration, outcome)."""

    def __init__(self, settings: Settings, behaviours: dict[str, tuple[float, str]]) -> None:
        self.sim = SimulatedClock()
        super().__init__(settings, clock=self.sim)
        self.behaviours = behaviours
        self.runs: list[Run] = []
        self.killed: list[tuple[int, float]] = []  # (pid, when)
        self._pids = itertools.count(100_001)

    def _start_worker(self, now: float) -> WorkerHandle:
        parent, child = Pipe()
        worker = SimulatedWorker(next(self._pids), now, child, self.behaviours, self.runs)
        self.sim.workers.append(worker)
        return WorkerHandle(process=worker, conn=parent, born=now)

    def _kill(self, worker: WorkerHandle) -> None:
        worker.process.die(-9, self.sim.now)
        self.killed.append((worker.process.pid, self.sim.now))
        worker.conn.close()

    def run_for(self, seconds: float) -> None:
        end = self.sim.now + seconds
        while self.sim.now < end:
            self.tick()

    def starts(self, script: str) -> list[float]:
        return [run.start for run in self.runs if run.script == script]


def scripts_settings(n_proc: int = 2, proc_lifetime: int = 28800, **scripts: dict[str, Any]) -> Settings:
    """Settings whose scripts are never imported (the workers are simulated): only their schedule counts."""
    entries = {name: {"module": __name__, **entry} for name, entry in scripts.items()}
    return load_settings(db_url="sqlite:///unused.db", log_level="WARNING",
                         daemon={"n_proc": n_proc, "proc_lifetime": proc_lifetime, "scripts": entries})


class RecordingStore:
    """The little of a ``Store`` that ``ScriptRunner`` uses, with the simulated clock the script ``main``
    below advances."""

    def __init__(self, clock: SimulatedClock) -> None:
        self.clock = clock
        self.calls: list[tuple[float, float]] = []  # (start, end) of each call of main
        self.recorded: list[tuple[str, str]] = []

    def record_daemon_run(self, script: str, host: str, start: Any, end: Any, result: str,
                          message: str | None) -> None:
        self.recorded.append((script, result))


def main(task_buffer: RecordingStore, settings: Settings, arguments: list[str]) -> bool:
    """A script: each call lasts ``arguments[0]`` simulated seconds and returns whether ``arguments[1]`` is
    ``again`` (a loop-mode script asks to be called again by returning True)."""
    start = task_buffer.clock.now
    task_buffer.clock.sleep(float(arguments[0]))
    task_buffer.calls.append((start, task_buffer.clock.now))
    return arguments[1] == "again"
