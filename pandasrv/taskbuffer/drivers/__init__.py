"""One module per database driver: what differs between backends, and nothing else.

``WrappedConnection`` (``wrapped_cursor.py``) holds the common behaviour and asks its ``Driver`` how to
connect, translate binds, adapt values, start a transaction, classify an error and fetch sequence
values. Driver modules are imported only when a URL needs them, so the server drivers are never loaded by
an SQLite-only process.
"""

from __future__ import annotations

import abc
import datetime as dt
import importlib
from typing import Any, Mapping, Protocol

from sqlalchemy.engine import URL, make_url

from pandasrv.taskbuffer import errors
from pandasrv.taskbuffer.drivers.sql_binds import Translated
from pandasrv.taskbuffer.errors import DBError

SEQUENCES: tuple[str, ...] = ("pandaid_seq", "file_row_id_seq", "harvester_command_id_seq")

_MODULES = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
}


class Cursor(Protocol):
    """What a driver asks of the cursor it is handed: project SQL with ``:name`` binds in, rows out.

    ``WrappedCursor`` is the one implementation; the drivers name this protocol rather than that class,
    which is built on them (the driver package must not import ``wrapped_cursor``)."""

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> object: ...

    def fetchone(self) -> tuple[Any, ...] | None: ...

    def fetchall(self) -> list[tuple[Any, ...]]: ...


class Driver(abc.ABC):
    """Backend specifics. Subclasses set ``backend`` and ``errors`` (the driver's exception roots)."""

    backend: str = ""
    errors: tuple[type[BaseException], ...] = ()
    adapted_types: tuple[type, ...] = (dt.datetime,)  # bind values that go through adapt()

    def __init__(self, url: URL, statement_timeout: float | None) -> None:
        self.url = url
        self.statement_timeout = statement_timeout

    @abc.abstractmethod
    def connect(self) -> Any:
        """Open a new driver connection, in manual-commit mode, session clock set to UTC."""

    def translate(self, sql: str) -> Translated:
        return Translated(sql)

    def adapt(self, value: Any) -> Any:
        """A bind value as the driver should get it: aware datetimes become naive UTC."""
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value

    def ping(self, raw: Any) -> None:
        """Raise a driver error if the session does not answer; must not leave a transaction open."""
        cursor = raw.cursor()
        try:
            cursor.execute("SELECT 1")
            cursor.fetchall()
        finally:
            cursor.close()

    def begin(self, raw: Any, immediate: bool) -> None:  # noqa: B027 - a default, not an abstract step
        """Start a transaction. Server backends open one implicitly at the first statement."""

    def single_statement(self, raw: Any, on: bool) -> None:  # noqa: B027 - a default, not an abstract step
        """Run the next statement as its own transaction (``on``), or go back to manual commit.

        By default the statement opens a transaction that ``commit()`` ends (SQLite without ``begin()``
        runs it in autocommit already); a backend that can commit it with the statement itself overrides this.
        """

    def error_class(self, exc: BaseException, raw: Any) -> type[DBError]:
        return errors.DBError

    @abc.abstractmethod
    def next_ids(self, cursor: Cursor, sequence: str, n: int) -> list[int]:
        """``n`` new values of ``sequence``, ascending."""


def driver_for(db_url: str, statement_timeout: float | None = None) -> Driver:
    """The driver of a database URL (``sqlite:///path``, ``postgresql://``, ``mysql://``)."""
    url = make_url(db_url)
    name = _MODULES.get(url.get_backend_name())
    if name is None:
        raise errors.DBError(f"unsupported database URL scheme {url.drivername!r}")
    module = importlib.import_module(f"pandasrv.taskbuffer.drivers.{name}")
    driver: Driver = module.DRIVER(url, statement_timeout)
    return driver


def check_next_ids_request(sequence: str, n: int) -> None:
    """Sequence names and counts end up in SQL text on some backends: accept only known values."""
    if sequence not in SEQUENCES:
        raise errors.DBError(f"unknown sequence {sequence!r}; known: {', '.join(SEQUENCES)}")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise errors.DBError(f"next_ids needs a positive count, got {n!r}")
