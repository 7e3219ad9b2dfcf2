"""Names of lock holders: the ``owner`` that lease and output-report locks record in the database.

It lives with the database layer because both the daemon (leases) and the dataservice agents (report
locks) need it, and neither may import the other.
"""

from __future__ import annotations

import os
import secrets
import socket


def owner_prefix(pid: int | None = None) -> str:
    """host-pid-: what every owner token of this process (or of process ``pid`` on this host) starts with, to
    release them all at once."""
    return f"{socket.gethostname().split('.')[0][:20]}-{os.getpid() if pid is None else pid}-"


def owner_token() -> str:
    """host-pid-random: unique per worker process even when two masters share one host."""
    return owner_prefix() + secrets.token_hex(4)
