"""A fresh, initialised database per benchmark run, on any backend, dropped afterwards."""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pandasrv.taskbuffer.db_admin import init_db  # noqa: E402
from pandasrv.taskbuffer.wrapped_cursor import connect  # noqa: E402

SERVERS = {
    "postgresql": os.environ.get("PANDASRV_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432"),
    "mysql": os.environ.get("PANDASRV_TEST_MYSQL", "mysql://root@127.0.0.1:3306"),
}
ADMIN_DATABASE = {"postgresql": "postgres", "mysql": ""}


@contextmanager
def fresh_database(backend: str, prefix: str = "bench") -> Iterator[str]:
    """A new, initialised database whose URL is yielded; dropped afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="pandasrv-bench-") as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            init_db(url)
            yield url
        return
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin(backend, f"CREATE DATABASE {name}")
    try:
        url = f"{SERVERS[backend]}/{name}"
        init_db(url)
        yield url
    finally:
        admin(backend, f"DROP DATABASE {name}")


def admin(backend: str, statement: str) -> None:
    """CREATE/DROP DATABASE outside a transaction (PostgreSQL refuses them inside one)."""
    conn = connect(f"{SERVERS[backend]}/{ADMIN_DATABASE[backend]}")
    try:
        conn.raw.autocommit = True
        conn.cursor().execute(statement)
    finally:
        conn.close()
