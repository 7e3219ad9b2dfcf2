"""PostgreSQL through psycopg 3.

Session settings travel in the startup packet (``options``), so no ``SET`` opens a transaction:
``timezone=UTC`` (naive UTC datetimes in and out) and the optional ``statement_timeout``.
psycopg's ``executemany`` is pipelined, which makes bulk inserts one round trip per batch.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import errors as pg_errors

from pandasrv.taskbuffer import errors
from pandasrv.taskbuffer.drivers import Cursor, Driver, check_next_ids_request
from pandasrv.taskbuffer.drivers.sql_binds import Translated, to_pyformat
from pandasrv.taskbuffer.errors import DBError


class PostgreSQLDriver(Driver):
    backend = "postgresql"
    errors = (psycopg.Error,)

    def connect(self) -> psycopg.Connection:
        options = "-c timezone=UTC"
        if self.statement_timeout:
            options += f" -c statement_timeout={int(self.statement_timeout * 1000)}"
        url = self.url
        extra: dict[str, Any] = {key: value for key, value in url.query.items() if isinstance(value, str)}
        return psycopg.connect(
            host=url.host,
            port=url.port,
            user=url.username,
            password=url.password,
            dbname=url.database,
            options=options,
            application_name="pandasrv",
            autocommit=False,
            **extra,
        )

    def single_statement(self, raw: psycopg.Connection, on: bool) -> None:
        """psycopg's autocommit: the statement is one round trip, with no BEGIN and COMMIT around it
        (a client-side switch, allowed between transactions)."""
        raw.autocommit = on

    def ping(self, raw: psycopg.Connection) -> None:
        idle = raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        raw.execute("SELECT 1").fetchall()
        if idle:
            raw.rollback()

    def translate(self, sql: str) -> Translated:
        return to_pyformat(sql)

    def error_class(self, exc: BaseException, raw: Any) -> type[DBError]:
        if isinstance(exc, pg_errors.QueryCanceled):
            return errors.StatementTimeout
        if isinstance(exc, pg_errors.DeadlockDetected):
            return errors.Deadlock
        if isinstance(exc, pg_errors.LockNotAvailable):
            return errors.LockTimeout
        if isinstance(exc, psycopg.IntegrityError):
            return errors.IntegrityError
        if isinstance(exc, pg_errors.AdminShutdown) or raw is None or raw.closed or raw.broken:
            return errors.ConnectionLost
        if isinstance(exc, psycopg.OperationalError) and raw.info.status != psycopg.pq.ConnStatus.OK:
            return errors.ConnectionLost
        return errors.DBError

    def next_ids(self, cursor: Cursor, sequence: str, n: int) -> list[int]:
        check_next_ids_request(sequence, n)
        cursor.execute(f"SELECT nextval('{sequence}') FROM generate_series(1, :n)", {"n": n})
        return sorted(row[0] for row in cursor.fetchall())


DRIVER = PostgreSQLDriver
