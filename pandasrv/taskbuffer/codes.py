"""What the server writes into a job's command and error columns: the pilot commands, PanDA's ErrorCode
numbers and the kill-code table, each defined once.

They live at the bottom layer because the SQL writes them (a kill flags ``commandToPilot`` inside its
transaction, the Watcher's sweeps filter on it); the logic layer, the agents and the web layer import them
from here (layers call only downwards, see docs/internals.md).
"""

from __future__ import annotations

# commandToPilot: the pilot stops the payload and reports the job as failed.
KILL_COMMAND = "tobekilled"

# taskBufferErrorCode (PanDA's taskbuffer ErrorCode).
EC_KILL = 100             # killed
EC_EXPIRE = 102           # expired before running
EC_ABORTED = 103          # aborted by an external interface
EC_REASSIGNED = 105       # reassigned by rebrokerage
EC_FAST_REBROKERAGE = 130
EC_WORKER_DONE = 300      # its Harvester worker ended while the job was still running

# jobDispatcherErrorCode (PanDA's jobdispatcher ErrorCode): the Watcher's timeouts.
EC_WATCHER = 100          # lost heartbeat
EC_RECOVERY = 101         # lost heartbeat after a pilot/payload error: recovery failed
EC_SEND_ERROR = 102       # sent, never picked up
EC_HOLDING = 103
EC_TRANSFERRING = 104

# ddmErrorCode: the Adder found a bad or missing file report.
EC_ADDER = 200

# Kill codes that end a job even while a pilot runs it (99 as well, but only for a production role, as in PanDA).
FORCE_KILL_CODES = frozenset({9, 52})
PRODUCTION_FORCE_KILL_CODE = 99


def kill_outcome(code: int | None, user: str, old_status: str) -> tuple[str, str | None, int, str]:
    """PanDA's kill-code table: (new status, jobSubStatus, taskBufferErrorCode, taskBufferErrorDiag).

    No code (the v1 ``job/kill`` default) is a plain kill: 100, "killed by <user>"."""
    if code in (2, 4):
        return "closed", "toreassign", EC_EXPIRE, f"expired in {old_status}. status unchanged"
    table: dict[int, tuple[str, str | None, int, str]] = {
        3: ("cancelled", None, EC_ABORTED, "aborted by ExtIF"),
        8: ("cancelled", None, EC_REASSIGNED, f"reassigned to another site by rebrokerage. new {user}"),
        50: ("cancelled", None, EC_KILL, user),
        52: ("cancelled", None, EC_KILL, user),
        51: ("closed", "toreassign", EC_KILL, "reassigned by JEDI"),
        55: ("closed", "taskdone", EC_KILL, "killed since task is (almost) done"),
        60: ("closed", None, EC_KILL, "closed by the pilot"),
        10: ("closed", None, EC_FAST_REBROKERAGE, "fast rebrokerage due to Nq/Nr overshoot"),
    }
    plain_kill = ("cancelled", None, EC_KILL, f"killed by {user}")
    return plain_kill if code is None else table.get(code, plain_kill)


def forces_kill(code: int | None, is_production: bool) -> bool:
    """Whether a kill with ``code`` ends a running job at once instead of flagging it for its pilot."""
    return code in FORCE_KILL_CODES or (code == PRODUCTION_FORCE_KILL_CODE and is_production)
