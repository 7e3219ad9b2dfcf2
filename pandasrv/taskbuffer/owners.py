"""Names of lock holders: the ``owner`` that lease and output-report locks record in the database.

It lives with the database layer because both the daemon (leases) and the dataservice agents (report
locks) need it, and neither may import the other.
"""

from __future__ import annotations

import os
import secrets
import socket


def owner_token() -> str:
    """host-pid-random: unique per worker process even when two masters share one host."""
    host = socket.gethostname().split(".")[0][:20]
    return f"{host}-{os.getpid()}-{secrets.token_hex(4)}"
