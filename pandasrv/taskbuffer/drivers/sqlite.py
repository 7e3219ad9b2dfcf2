"""SQLite through the standard ``sqlite3`` module.

Transactions are ours: the connection runs with ``isolation_level=None`` and ``begin()`` issues an
explicit ``BEGIN`` (``BEGIN IMMEDIATE`` to take the write lock up front, as the job claim needs).
Datetimes are stored as ISO text and converted back for columns declared DATETIME/TIMESTAMP by our own
converters, not the default adapters deprecated in Python 3.12. Sequences are rows of ``id_sequences``.
The URL may set the busy timeout: ``sqlite:///path.db?timeout=5`` (seconds, default 30).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from typing import Any

from pandasrv.taskbuffer import errors
from pandasrv.taskbuffer.drivers import Cursor, Driver, check_next_ids_request
from pandasrv.taskbuffer.errors import DBError

DEFAULT_BUSY_TIMEOUT = 30.0


def _parse_datetime(raw: bytes) -> dt.datetime:
    return dt.datetime.fromisoformat(raw.decode())


for _declared in ("DATETIME", "TIMESTAMP"):
    sqlite3.register_converter(_declared, _parse_datetime)


def _use_wal(raw: sqlite3.Connection, busy_timeout: float) -> None:
    """Switch the file to WAL (a no-op once it is). The switch needs the database to itself and SQLite
    answers "locked" at once, without its busy handler, when another process connects at the same time
    (ConBridge children of one pool start together): retry until the busy timeout."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            raw.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower() or time.monotonic() > deadline:
                raise
        if raw.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
            return
        time.sleep(0.01)


class SQLiteDriver(Driver):
    backend = "sqlite"
    errors = (sqlite3.Error,)
    adapted_types = (dt.datetime, dt.date)

    def connect(self) -> sqlite3.Connection:
        path = self.url.database or ":memory:"
        timeout = self.url.query.get("timeout", DEFAULT_BUSY_TIMEOUT)
        busy_timeout = float(timeout if isinstance(timeout, (str, float)) else timeout[-1])
        raw = sqlite3.connect(
            path,
            timeout=busy_timeout,
            isolation_level=None,
            detect_types=sqlite3.PARSE_DECLTYPES,
            check_same_thread=False,
        )
        if path != ":memory:":
            _use_wal(raw, busy_timeout)
        raw.execute("PRAGMA synchronous=NORMAL")
        return raw

    def adapt(self, value: Any) -> Any:
        value = super().adapt(value)
        if isinstance(value, dt.datetime):
            return value.isoformat(" ", "microseconds")
        if isinstance(value, dt.date):
            return value.isoformat()
        return value

    def begin(self, raw: sqlite3.Connection, immediate: bool) -> None:
        raw.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

    def error_class(self, exc: BaseException, raw: Any) -> type[DBError]:
        message = str(exc).lower()
        if isinstance(exc, sqlite3.IntegrityError):
            return errors.IntegrityError
        if isinstance(exc, sqlite3.ProgrammingError) and "closed" in message:
            return errors.ConnectionLost
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in message or "busy" in message):
            return errors.LockTimeout
        if isinstance(exc, sqlite3.OperationalError) and "unable to open" in message:
            return errors.ConnectionLost  # the file is gone or unreadable: the database is unavailable
        return errors.DBError

    def next_ids(self, cursor: Cursor, sequence: str, n: int) -> list[int]:
        check_next_ids_request(sequence, n)
        cursor.execute(
            "UPDATE id_sequences SET value = value + :n WHERE name = :name RETURNING value",
            {"n": n, "name": sequence},
        )
        row = cursor.fetchone()
        if row is None:
            raise errors.DBError(f"sequence {sequence} is missing from id_sequences (run 'pandasrv db init')")
        return list(range(row[0] - n + 1, row[0] + 1))


DRIVER = SQLiteDriver
