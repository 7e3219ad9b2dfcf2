"""What the store and the heartbeat policy say to each other: the rows it decides on, the writes it asks for.

The acceptance rules of a pilot heartbeat (which state may follow which, the attemptNr guard, repeats of a
final update) live in ``pandasrv.logic.heartbeat``; the store only runs SQL. So the store takes a request
that answers these questions (``HeartbeatRequest``) and carries out what it answers, in this order:

1. ``repeat()``: the one-statement update of a plain repeated heartbeat, guarded in its WHERE clause
   (PandaID, current status, attemptNr, no pending command); it needs no read and no lock;
2. when that touches no row (or there is none): the job's row in jobs_active, locked, goes to ``decide()``,
   which answers a reply alone or a ``HeartbeatWrite``;
3. a job no longer active goes to ``ended()``, with (for a ``final_report``) its archived row and whether its
   status log shows the final update ``final_reason()`` names.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any, Mapping, Protocol


@dataclass(frozen=True)
class HeartbeatReply:
    """The store's answer to one heartbeat (``result``: ok, notfound, badattemptnr, alreadydone, illegal)."""

    result: str
    status: str | None
    command: str | None
    debug: bool
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        reply: dict[str, Any] = {"found": self.result != "notfound", "result": self.result, "status": self.status,
                                 "command": self.command, "debug": self.debug}
        if self.error is not None:
            reply["error"] = self.error
        return reply


@dataclass(frozen=True)
class ActiveRow:
    """The locked jobs_active row a heartbeat is decided on."""

    status: str
    attempt: int
    command: str | None
    special: str | None
    diag: str | None
    end_time: _dt.datetime | None


@dataclass(frozen=True)
class ArchivedRow:
    """A job's row in jobs_archived."""

    status: str
    attempt: int
    command: str | None
    special: str | None


@dataclass(frozen=True)
class RepeatUpdate:
    """A heartbeat that changes nothing but its columns: one UPDATE guarded by ``status`` (and ``attempt_nr``
    when given) on a job with no command pending and no debug flag, answered ``reply`` when it touches the row."""

    status: str
    attempt_nr: int | None
    sets: Mapping[str, Any]
    reply: HeartbeatReply


@dataclass(frozen=True)
class HeartbeatWrite:
    """A decided heartbeat: the columns set on the locked row (over the reported ones), a status-log row when
    ``log`` (with ``reason``), the job output report when ``report_status`` is set, then ``reply``."""

    sets: Mapping[str, Any]
    reply: HeartbeatReply
    log: bool = False
    reason: str | None = None
    report_status: str | None = None


class HeartbeatRequest(Protocol):
    """One pilot heartbeat as the store needs it (implemented by ``pandasrv.logic.heartbeat.Heartbeat``)."""

    @property
    def panda_id(self) -> int: ...
    @property
    def values(self) -> Mapping[str, Any]: ...
    @property
    def report(self) -> str | None: ...
    @property
    def metadata(self) -> str | None: ...
    @property
    def pilot_log(self) -> str | None: ...
    @property
    def stdout(self) -> str | None: ...
    @property
    def final_report(self) -> bool: ...

    def repeat(self, now: _dt.datetime) -> RepeatUpdate | None: ...
    def decide(self, job: ActiveRow, now: _dt.datetime) -> HeartbeatReply | HeartbeatWrite: ...
    def final_reason(self, attempt: int) -> str | None: ...
    def ended(self, job: ArchivedRow | None, applied: bool) -> HeartbeatReply: ...
