"""Names in the lock tables: the ``owner`` that lease and output-report locks record, and the lease names
of the daemon's scripts.

They live with the database layer because the daemon (leases), the dataservice agents (report locks) and
the monitor pages (which show the leases) need them, and none of these may import another.
"""

from __future__ import annotations

import os
import secrets
import socket

# The ``process_locks`` component of daemon script <name> is LEASE_PREFIX + name.
LEASE_PREFIX = "pandaD."


def owner_prefix(pid: int | None = None) -> str:
    """host-pid-: what every owner token of this process (or of process ``pid`` on this host) starts with, to
    release them all at once."""
    return f"{socket.gethostname().split('.')[0][:20]}-{os.getpid() if pid is None else pid}-"


def owner_token() -> str:
    """host-pid-random: unique per worker process even when two masters share one host."""
    return owner_prefix() + secrets.token_hex(4)
