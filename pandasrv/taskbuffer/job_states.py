"""The one job state machine: every status write in pandasrv is checked against this table.

A job lives in one of three stage tables; which one follows from its status, so moving a job between
tables is part of the same transition (see ``TABLE_OF``).
"""

from __future__ import annotations

from typing import Final

DEFINED_TABLE: Final = "jobs_defined"
ACTIVE_TABLE: Final = "jobs_active"
ARCHIVED_TABLE: Final = "jobs_archived"
STAGE_TABLES: Final = (DEFINED_TABLE, ACTIVE_TABLE, ARCHIVED_TABLE)

FINAL_STATES: Final = frozenset({"finished", "failed", "cancelled", "closed"})

TABLE_OF: Final[dict[str, str]] = {
    "pending": DEFINED_TABLE, "defined": DEFINED_TABLE, "assigned": DEFINED_TABLE, "waiting": DEFINED_TABLE,
    "activated": ACTIVE_TABLE, "sent": ACTIVE_TABLE, "starting": ACTIVE_TABLE, "running": ACTIVE_TABLE,
    "holding": ACTIVE_TABLE, "merging": ACTIVE_TABLE, "transferring": ACTIVE_TABLE,
    "finished": ARCHIVED_TABLE, "failed": ARCHIVED_TABLE, "cancelled": ARCHIVED_TABLE, "closed": ARCHIVED_TABLE,
}
ALL_STATES: Final = frozenset(TABLE_OF)

_ENDINGS: Final = frozenset({"failed", "cancelled", "closed"})

# old status -> statuses it may move to. Staying in the same non-final status (a heartbeat) is always allowed.
TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "pending": frozenset({"defined", "assigned", "activated", "waiting"}) | _ENDINGS,
    "defined": frozenset({"pending", "assigned", "activated", "waiting"}) | _ENDINGS,
    "waiting": frozenset({"defined", "assigned", "activated"}) | _ENDINGS,
    "assigned": frozenset({"defined", "activated", "waiting"}) | _ENDINGS,
    "activated": frozenset({"sent", "defined", "assigned"}) | _ENDINGS,
    "sent": frozenset({"starting", "running", "holding", "transferring", "activated", "defined"}) | _ENDINGS,
    "starting": frozenset({"running", "holding", "transferring"}) | _ENDINGS,
    "running": frozenset({"holding", "transferring"}) | _ENDINGS,
    "holding": frozenset({"finished", "transferring", "merging"}) | _ENDINGS,
    "transferring": frozenset({"holding", "finished"}) | _ENDINGS,
    "merging": frozenset({"finished"}) | _ENDINGS,
    "finished": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
    "closed": frozenset(),
}

# States a pilot may report through updateJob (anything else is acknowledged and ignored).
PILOT_STATES: Final = frozenset({"running", "failed", "finished", "holding", "starting", "transferring"})


class IllegalTransition(ValueError):
    """Raised when a status write would break the state machine."""

    def __init__(self, old: str, new: str) -> None:
        super().__init__(f"illegal job status transition {old} -> {new}")
        self.old = old
        self.new = new

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Rebuilt from (old, new), so it survives the ConBridge pipe as the same type.
        return (IllegalTransition, (self.old, self.new))


def is_allowed(old: str, new: str) -> bool:
    if old not in TRANSITIONS or new not in TABLE_OF:
        return False
    if old == new:
        return old not in FINAL_STATES
    return new in TRANSITIONS[old]


def check(old: str, new: str) -> None:
    """Refuse an illegal transition before anything is written."""
    if not is_allowed(old, new):
        raise IllegalTransition(old, new)


def sources_of(new: str) -> tuple[str, ...]:
    """Every status from which ``new`` may be reached, for set-based ``WHERE jobStatus IN (...)`` guards."""
    return tuple(sorted(old for old in TRANSITIONS if is_allowed(old, new)))


def table_of(status: str) -> str:
    try:
        return TABLE_OF[status]
    except KeyError:
        raise ValueError(f"unknown job status {status!r}") from None
