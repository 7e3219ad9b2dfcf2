"""The pilot heartbeat's acceptance policy (panda-protocol.md §2.3 items 5-7).

A heartbeat is built once at the web edge (``Heartbeat``, from the wire names) and handed to the store,
which asks it what to do (``pandasrv.taskbuffer.heartbeat_plan`` says in which order). The rules:

- a pilot reports only ``PILOT_STATES``; ``finished``/``failed`` are stored as ``holding`` plus a job output
  report for the Adder;
- a heartbeat that carries an attemptNr other than the job's is from a pilot whose claim was given back:
  it is told ``tobekilled`` (``badattemptnr``) and changes nothing;
- an ended job, or a final update repeated (a job already ``holding``, or ``transferring`` that the server
  did not set), is answered ``alreadydone``; a late ``running``/``starting`` of a job that is already
  ``holding``/``transferring``/``merging`` is acknowledged with the job's status and changes nothing;
- every other change is checked against the state machine (``job_states``) and writes a status-log row;
- a job no longer active: a repeat of the final update that was applied to it (same state and attemptNr,
  recorded in its status log) is answered as the first was; anything else is told to stop (``notfound``);
- the common case, a ``running``/``starting``/``transferring`` heartbeat repeated in the same state, changes
  only the reported columns: ``repeat()`` gives the store one guarded statement for it.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Mapping

from pandasrv.taskbuffer import job_states
from pandasrv.taskbuffer.codes import KILL_COMMAND
from pandasrv.taskbuffer.heartbeat_plan import ActiveRow, ArchivedRow, HeartbeatReply, HeartbeatWrite, RepeatUpdate

FINAL_REPORTS = frozenset({"finished", "failed"})
# Reported states whose repeat in the same state is a plain column update (no status-log row, no report).
REPEATABLE = frozenset({"running", "starting", "transferring"})
_SERVER_SET = frozenset({"holding", "transferring"})


@dataclass(frozen=True)
class Heartbeat:
    """One pilot heartbeat: ``values`` are job columns (already turned from pilot strings into values)."""

    panda_id: int
    status: str
    values: Mapping[str, Any] = field(default_factory=dict)
    attempt_nr: int | None = None
    report: str | None = None
    metadata: str | None = None
    pilot_log: str | None = None
    stdout: str | None = None
    # The caller last saw the job in another state (a hint: ``dispatch.StatusHints``): a transition, whose
    # guarded one-statement update would only miss, so it goes to the locked row at once.
    changes_state: bool = False

    def __post_init__(self) -> None:
        if self.status not in job_states.PILOT_STATES:
            raise ValueError(f"a pilot may not report status {self.status!r}")

    @property
    def final_report(self) -> bool:
        return self.status in FINAL_REPORTS

    @property
    def target(self) -> str:
        """The status this heartbeat asks for (``holding`` for a final report)."""
        return "holding" if self.final_report else self.status

    def repeat(self, now: _dt.datetime) -> RepeatUpdate | None:
        """The one-statement update when the job is already in the reported state, or None when this
        heartbeat must always be decided on the locked row (final reports, pilot texts to store, a transition)."""
        if self.status not in REPEATABLE or self.changes_state or self.metadata or self.pilot_log or self.stdout:
            return None
        return RepeatUpdate(status=self.status, attempt_nr=self.attempt_nr,
                            sets={"modificationTime": now, **_diag(self.status, now)},
                            reply=HeartbeatReply("ok", self.status, None, False))

    def decide(self, job: ActiveRow, now: _dt.datetime) -> HeartbeatReply | HeartbeatWrite:
        """The reply alone, or what to write, for the job's locked row; IllegalTransition for a change the
        state machine forbids (nothing is written then)."""
        debug = "dm" in (job.special or "").split(",")
        old, new = job.status, self.target
        if self.attempt_nr is not None and self.attempt_nr != job.attempt:
            return reply("badattemptnr", old, KILL_COMMAND, debug)
        if (
            old in job_states.FINAL_STATES
            or (old == "transferring" and new == "holding" and not job.diag)
            or (old == "holding" and self.final_report)
        ):
            return reply("alreadydone", old, job.command, debug)
        if old == "merging" or (old in _SERVER_SET and new in ("running", "starting")):
            return reply("ok", old, job.command, debug)
        if old == "running" and new == "starting":
            new = "running"
        job_states.check(old, new)
        sets: dict[str, Any] = {"jobStatus": new, "modificationTime": now}
        if new != old or self.final_report:
            sets["stateChangeTime"] = now
        if self.final_report:
            sets["jobDispatcherErrorDiag"] = None
        else:
            sets.update(_diag(new, now))
        if job.end_time is None and "endTime" not in self.values and (
                new == "holding" or (old, new) == ("running", "transferring")):
            sets["endTime"] = now
        if new == "running" and old in ("sent", "starting") and "startTime" not in self.values:
            sets["startTime"] = now
        return HeartbeatWrite(sets=sets, reply=reply("ok", new, job.command, debug), log=new != old,
                              reason=self.final_reason(job.attempt),
                              report_status=self.status if self.final_report else None)

    def final_reason(self, attempt: int) -> str | None:
        """The status-log reason of the ``holding`` row a final update writes (how a repeat is recognised);
        None for other heartbeats."""
        return final_reason(self.status, attempt) if self.final_report else None

    def ended(self, job: ArchivedRow | None, applied: bool) -> HeartbeatReply:
        """The answer for a job no longer active (``applied``: its status log holds this final update)."""
        if job is not None and applied and (self.attempt_nr is None or self.attempt_nr == job.attempt):
            return reply("alreadydone", job.status, job.command, "dm" in (job.special or "").split(","))
        return reply("notfound", None, KILL_COMMAND, False)


def final_reason(status: str, attempt: int) -> str:
    """The status-log reason of the ``holding`` row a pilot's final update writes."""
    return f"pilot final update: {status}, attempt {attempt}"


def reply(result: str, status: str | None, command: str | None, debug: bool) -> HeartbeatReply:
    """A reply whose command is what the pilot is told: ``debug`` first when the job is in debug mode."""
    commands = (["debug"] if debug else []) + ([command] if command and command != "NULL" else [])
    return HeartbeatReply(result, status, ",".join(commands) or None, debug)


def _diag(status: str, now: _dt.datetime) -> dict[str, Any]:
    """The jobDispatcherErrorDiag a pilot's holding/transferring sets (what tells it from the server's)."""
    if status in _SERVER_SET:
        return {"jobDispatcherErrorDiag": f"set to {status} by the pilot at {now:%Y-%m-%d %H:%M:%S}"}
    return {}
