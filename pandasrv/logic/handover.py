"""The Setupper hand-over: what the submit path calls to have new jobs set up without waiting for it.

``start_setupper`` hands the PandaIDs to a helper process and returns at once (the seed's asynchronous
request: the reply does not wait). The jobs themselves travel through the database only; the helper
receives nothing but their IDs, and runs ``pandasrv.dataservice.setupper`` (started by module name: the
web layer, which calls this, imports nothing of the dataservice).

The helper is one long-lived child per web process, started on first use, with its own TaskBuffer: a
submit then costs one pipe write, where a fresh process per request would pay interpreter start-up and a
new database session every time. A helper that dies is restarted with backoff and logged, and what it had
not confirmed goes to its successor (see ``_Helper``); jobs no helper ever saw stay ``defined`` and are
picked up by the ``dataset_manager`` script.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import subprocess
import sys
import threading
from collections import deque
from typing import Sequence

from pandasrv.config import Settings
from pandasrv.supervisor import RestartPolicy, poll

log = logging.getLogger("pandasrv.logic.handover")
HELPER_MODULE = "pandasrv.dataservice.setupper"


# Batches handed to the helper and not yet confirmed, kept to give to its successor if it dies; beyond
# this many the oldest are left to ``recover_defined``.
PENDING_BATCHES = 1000
PIPE_BYTES = 65536  # a pipe's capacity where the system does not say (Linux: F_GETPIPE_SZ, 64 KiB by default)


class _Helper:
    """The per-process helper child, the pipe that feeds it, and the batches it has not confirmed.

    The helper confirms each batch with one newline on its stdout once it is set up (or has failed). A
    helper that dies is restarted under ``RestartPolicy`` (logged; backoff and a once-per-interval alarm
    when it keeps dying), and the batches it had not confirmed go to its successor: setting up is
    idempotent (only ``defined`` jobs are touched), so a batch done twice costs one query.
    """

    lock = threading.Lock()
    process: subprocess.Popen[bytes] | None = None
    owner_pid = 0
    settings_json = ""
    policy = RestartPolicy(name="setupper helper")
    pending: deque[bytes] = deque()
    dropped = 0  # batches pushed out of ``pending`` that the current helper will still confirm
    unconfirmed = 0  # bytes of ``pending`` when confirmations were last read
    capacity = PIPE_BYTES  # of the current helper's pipe

    @classmethod
    def send(cls, settings: Settings, panda_ids: list[int]) -> None:
        line = (json.dumps(panda_ids) + "\n").encode()
        with cls.lock:
            if cls.owner_pid != os.getpid():  # after a fork (gunicorn workers) the parent's helper is not ours
                cls.process, cls.owner_pid, cls.pending, cls.dropped, cls.unconfirmed = None, os.getpid(), deque(), 0, 0
                cls.policy = RestartPolicy(name="setupper helper")
            if len(cls.pending) >= PENDING_BATCHES:
                cls.pending.popleft()
                cls.dropped += 1
            cls.pending.append(line)
            if cls._usable(settings) and cls._write([line]):
                return
            if not cls.policy.may_start():
                log.warning("setupper helper in restart backoff; %d batches wait for it", len(cls.pending))
                return
            cls._start(settings)

    @classmethod
    def _usable(cls, settings: Settings) -> bool:
        """Whether the current helper takes the next batch: confirmations read, a dead one recorded, one with
        other settings retired (it ends at the end of its input)."""
        process = cls.process
        if process is None:
            return False
        assert process.stdin is not None and process.stdout is not None
        if cls.settings_json != settings.model_dump_json():  # it sets up what it has and ends: not a death
            process.stdin.close()
            cls.process = None
            cls.pending = deque([cls.pending[-1]])  # only the new batch is for the new settings
            return False
        cls._read_confirmations(process)
        dead, code = poll(process)
        if dead:
            cls._died(code)
            return False
        return True

    @classmethod
    def _read_confirmations(cls, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        try:
            while confirmed := os.read(process.stdout.fileno(), 65536):
                for _ in range(confirmed.count(b"\n")):
                    if cls.dropped:
                        cls.dropped -= 1
                    elif cls.pending:
                        cls.pending.popleft()
        except BlockingIOError:
            pass
        cls.unconfirmed = sum(map(len, cls.pending))

    @classmethod
    def behind(cls) -> bool:
        """Whether the live helper has half its pipe's capacity given and not confirmed. Never waits: while
        a sender holds the lock (it may be blocked on a full pipe) the count it last saw is the answer."""
        if not cls.lock.acquire(blocking=False):
            return 2 * cls.unconfirmed >= cls.capacity
        try:
            process = cls.process
            if process is None or cls.owner_pid != os.getpid():
                return False
            cls._read_confirmations(process)
            return 2 * cls.unconfirmed >= cls.capacity
        finally:
            cls.lock.release()

    @classmethod
    def _write(cls, lines: list[bytes]) -> bool:
        assert cls.process is not None and cls.process.stdin is not None
        try:
            cls.process.stdin.write(b"".join(lines))
            cls.process.stdin.flush()
            return True
        except OSError:
            cls._died()
            return False

    @classmethod
    def _died(cls, code: int | None = None) -> None:
        process, cls.process = cls.process, None
        assert process is not None
        if code is None and process.returncode is None:
            process.kill()  # a broken pipe can come before the exit is visible
            code = process.wait()
        cls.policy.on_death(code)
        if cls.pending:
            log.warning("%d batches the setupper helper had not confirmed go to its successor", len(cls.pending))

    @classmethod
    def _start(cls, settings: Settings) -> None:
        settings_json = settings.model_dump_json()
        if settings_json != cls.settings_json:  # a helper for other settings is another child, its own record
            cls.settings_json, cls.policy = settings_json, RestartPolicy(name="setupper helper")
        cls.policy.on_start()
        try:
            process = subprocess.Popen([sys.executable, "-m", HELPER_MODULE],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        except OSError as exc:
            cls.policy.on_death(None)
            log.error("could not start the setupper helper (%s); %d batches wait for it", exc, len(cls.pending))
            return
        assert process.stdout is not None and process.stdin is not None
        os.set_blocking(process.stdout.fileno(), False)
        cls.process, cls.dropped, cls.capacity = process, 0, _pipe_bytes(process.stdin.fileno())
        cls._write([(cls.settings_json + "\n").encode(), *cls.pending])


def stop_setupper(timeout: float = 10.0) -> None:
    """End this process's helper after it has set up what it was given, so a caller that drops its database
    afterwards (``bench/daemon_scripts.py``) leaves no session behind."""
    with _Helper.lock:
        process, _Helper.process = _Helper.process, None
        if process is None or _Helper.owner_pid != os.getpid():
            return
        try:
            process.stdin.close()  # type: ignore[union-attr]
            process.wait(timeout)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        process.stdout.close()  # type: ignore[union-attr]
        _Helper.pending.clear()


def start_setupper(settings: Settings, panda_ids: Sequence[int]) -> None:
    """Hand ``panda_ids`` to this process's Setupper helper and return without waiting for it."""
    if panda_ids:
        _Helper.send(settings, [int(i) for i in panda_ids])


def helper_behind() -> bool:
    """Whether this process's Setupper helper has been handed half its pipe's capacity of PandaIDs that it
    has not set up yet (False without a live helper). The hand-over blocks once that pipe is full, and the
    helper, which reads every job back and updates it, can fall that far behind under sustained submits;
    admission sheds submits from here on (``pandasrv.web.admission``), the other half of the pipe taking
    the batches of the submits already admitted."""
    return _Helper.behind()


def _pipe_bytes(fd: int) -> int:
    getter = getattr(fcntl, "F_GETPIPE_SZ", None)  # Linux
    return PIPE_BYTES if getter is None else fcntl.fcntl(fd, getter)
