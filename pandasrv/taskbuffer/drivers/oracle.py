"""Oracle through python-oracledb in thin mode (the optional ``oracle`` extra).

Binds are Oracle's own ``:name`` style, with reserved-word names renamed (see ``sql_binds``). The
session clock is UTC, LOBs come back as plain strings, and a statement timeout is the driver's
``call_timeout``. Error classification is a pure function of the error codes, so it is tested without
a server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import oracledb

from pandasrv.taskbuffer import errors
from pandasrv.taskbuffer.drivers import Driver, check_next_ids_request
from pandasrv.taskbuffer.drivers.sql_binds import Translated, to_oracle

if TYPE_CHECKING:
    from pandasrv.taskbuffer.wrapped_cursor import WrappedCursor

oracledb.defaults.fetch_lobs = False

CONNECTION_LOST = frozenset((28, 1012, 1092, 3113, 3114, 3135, 12170, 12514, 12537, 12541, 12543, 12571))
CONNECTION_LOST_DRIVER = frozenset(("DPY-1001", "DPY-4011", "DPI-1010", "DPI-1080"))
LOCK_TIMEOUT = frozenset((54, 60, 30006))  # NOWAIT busy, deadlock, WAIT timeout
STATEMENT_TIMEOUT = frozenset((1013,))  # call cancelled
STATEMENT_TIMEOUT_DRIVER = frozenset(("DPY-4024", "DPI-1067"))  # call_timeout expired


def classify(code: int, full_code: str, integrity: bool) -> type[errors.DBError]:
    """Our exception class for an Oracle error code (``ORA-<code>``) or driver code (``DPY-4011``)."""
    if code in STATEMENT_TIMEOUT or full_code in STATEMENT_TIMEOUT_DRIVER:
        return errors.StatementTimeout
    if code in LOCK_TIMEOUT:
        return errors.LockTimeout
    if integrity:
        return errors.IntegrityError
    if code in CONNECTION_LOST or full_code in CONNECTION_LOST_DRIVER:
        return errors.ConnectionLost
    return errors.DBError


class OracleDriver(Driver):
    backend = "oracle"
    errors = (oracledb.Error,)

    def connect(self) -> oracledb.Connection:
        url = self.url
        service = url.query.get("service_name") or url.database
        raw = oracledb.connect(
            user=url.username,
            password=url.password,
            host=url.host or "localhost",
            port=url.port or 1521,
            service_name=service,
        )
        if self.statement_timeout:
            raw.call_timeout = int(self.statement_timeout * 1000)
        with raw.cursor() as cursor:
            cursor.execute("ALTER SESSION SET TIME_ZONE = 'UTC'")
        return raw

    def ping(self, raw: oracledb.Connection) -> None:
        raw.ping()

    def translate(self, sql: str) -> Translated:
        return to_oracle(sql)

    def error_class(self, exc: BaseException, raw: Any) -> type[errors.DBError]:
        error = exc.args[0] if exc.args else None
        return classify(
            getattr(error, "code", 0) or 0,
            getattr(error, "full_code", "") or "",
            isinstance(exc, oracledb.IntegrityError),
        )

    def next_ids(self, cursor: "WrappedCursor", sequence: str, n: int) -> list[int]:
        check_next_ids_request(sequence, n)
        cursor.execute(f"SELECT {sequence}.NEXTVAL FROM dual CONNECT BY LEVEL <= :n", {"n": n})
        return sorted(row[0] for row in cursor.fetchall())


DRIVER = OracleDriver
