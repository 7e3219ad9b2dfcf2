"""MariaDB (and MySQL) through PyMySQL.

Sessions run in manual-commit mode, utf8mb4, ``time_zone='+00:00'`` and READ COMMITTED (the isolation
PostgreSQL uses, and the one that keeps ``SKIP LOCKED`` claims free of gap locks). ``FOUND_ROWS`` makes
``rowcount`` count matched rows, as on the other backends, rather than rows whose values changed.
PyMySQL's ``executemany`` rewrites ``INSERT ... VALUES`` into multi-row inserts. Sequences are native
MariaDB sequences (10.3+), fetched in bulk through the SEQUENCE engine's ``seq_1_to_N`` tables.
"""

from __future__ import annotations

from typing import Any

import pymysql
from pymysql.constants import CLIENT

from pandasrv.taskbuffer import errors
from pandasrv.taskbuffer.drivers import Cursor, Driver, check_next_ids_request
from pandasrv.taskbuffer.drivers.sql_binds import Translated, to_pyformat
from pandasrv.taskbuffer.errors import DBError

CONNECTION_LOST = frozenset((
    1053,  # server shutdown in progress
    1927,  # ER_CONNECTION_KILLED
    2002, 2003,  # cannot connect
    2006,  # server has gone away
    2013, 2055,  # lost connection during query
    4031,  # disconnected for inactivity
))
DEADLOCK = 1213
LOCK_TIMEOUT = frozenset((1205, 3572))  # lock wait timeout, NOWAIT lock refused
STATEMENT_TIMEOUT = frozenset((1969, 3024))  # MariaDB max_statement_time, MySQL max_execution_time


class MySQLDriver(Driver):
    backend = "mysql"
    errors = (pymysql.Error,)

    def connect(self) -> pymysql.connections.Connection:
        url = self.url
        raw = pymysql.connect(
            host=url.host or "127.0.0.1",
            port=url.port or 3306,
            user=url.username or "root",
            password=url.password or "",
            database=url.database,
            charset="utf8mb4",
            autocommit=False,
            client_flag=CLIENT.FOUND_ROWS,
            connect_timeout=10,
        )
        settings = ["time_zone = '+00:00'", "SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"]
        if self.statement_timeout:
            if "MariaDB" in raw.get_server_info():  # type: ignore[no-untyped-call]
                settings.append(f"max_statement_time = {float(self.statement_timeout)}")
            else:
                settings.append(f"max_execution_time = {int(self.statement_timeout * 1000)}")
        with raw.cursor() as cursor:
            for setting in settings:
                cursor.execute(f"SET {setting}")
        raw.commit()
        return raw

    def ping(self, raw: pymysql.connections.Connection) -> None:
        raw.ping(reconnect=False)

    def translate(self, sql: str) -> Translated:
        return to_pyformat(sql, backslash_escapes=True)

    def error_class(self, exc: BaseException, raw: Any) -> type[DBError]:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        if code in STATEMENT_TIMEOUT:
            return errors.StatementTimeout
        if code == DEADLOCK:
            return errors.Deadlock
        if code in LOCK_TIMEOUT:
            return errors.LockTimeout
        if isinstance(exc, pymysql.IntegrityError):
            return errors.IntegrityError
        if code in CONNECTION_LOST or isinstance(exc, pymysql.InterfaceError) or raw is None or not raw.open:
            return errors.ConnectionLost
        return errors.DBError

    def next_ids(self, cursor: Cursor, sequence: str, n: int) -> list[int]:
        check_next_ids_request(sequence, n)
        cursor.execute(f"SELECT NEXTVAL({sequence}) FROM seq_1_to_{n}")
        return sorted(row[0] for row in cursor.fetchall())


DRIVER = MySQLDriver
