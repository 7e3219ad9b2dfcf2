"""When a claimed job is given back: the rule that keeps a lost getJob reply from stranding a job.

A claim (``activated`` → ``sent``) is only half of a hand-over: the pilot confirms it with its first
``starting``/``running`` heartbeat. A reply lost on the way (the web worker killed between the claim's
commit and its reply, a connection broken during COMMIT, a client that gave up) leaves a job ``sent`` that
no pilot runs. Left alone, the Watcher fails it after ``watcher.sent`` (30 min) and, with ``maxAttempt``
reached, nothing runs it again.

So a claim not confirmed within ``watcher.unconfirmed`` seconds (default 5 min, well under the 2 h lost-
heartbeat timeout) goes back to ``activated`` with attemptNr + 1 and a status-log row saying why; the
next getJob hands it to another pilot, and a late heartbeat of the first pilot carries the old attemptNr,
which ``update_job`` refuses (``command=tobekilled``). A job given back ``watcher.unconfirmed_requeues``
times is left to the ``sent`` timeout, so a job whose reply can never be delivered does not cycle forever.
Where the server knows the reply was not delivered (the ConBridge child finds its caller gone), it gives
the claim back at once (``pandasrv.taskbuffer.con_bridge``).
"""

from __future__ import annotations

import datetime as _dt

from pandasrv.clock import utcnow
from pandasrv.config import Settings
from pandasrv.taskbuffer.store import JobStore


def unconfirmed_reason(seconds: float) -> str:
    """The status-log reason of a claim given back for want of a confirmation (after the requeue prefix)."""
    return f"no starting/running from the pilot within {seconds:g} s of the claim; attempt counted"


def requeue_unconfirmed(task_buffer: JobStore, settings: Settings, now: _dt.datetime | None = None,
                        batch_size: int = 1000) -> list[int]:
    """Give back every claim older than ``watcher.unconfirmed`` that no pilot confirmed; returns their PandaIDs."""
    seconds = settings.watcher.unconfirmed
    if seconds <= 0:
        return []
    now = now or utcnow()
    before = now - _dt.timedelta(seconds=seconds)
    requeued: list[int] = []
    after: int | None = 0
    while after is not None:
        ids, after = task_buffer.requeue_unconfirmed(before, settings.watcher.unconfirmed_requeues,
                                                     unconfirmed_reason(seconds), batch_size, after)
        requeued += ids
    return requeued
