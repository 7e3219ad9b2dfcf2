"""WrappedConnection / WrappedCursor: one PEP 249-style interface over every supported driver.

Project SQL is written once, with ``:name`` binds and unquoted identifiers; the driver module of the
URL's backend (``drivers/``) translates binds, adapts values and classifies errors. What callers can
rely on everywhere:

- datetimes are naive UTC, in and out;
- every driver exception surfaces as a subclass of ``errors.DBError`` (the original is ``__cause__``);
- ``begin()`` starts a transaction explicitly (needed on SQLite, harmless elsewhere), ``commit()`` /
  ``rollback()`` end it;
- ``rowcount`` counts matched rows on every backend;
- ``next_ids()`` fetches many sequence values in one statement.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from pandasrv.taskbuffer import errors
from pandasrv.taskbuffer.drivers import Driver, driver_for

__all__ = ["connect", "WrappedConnection", "WrappedCursor"]


def connect(db_url: str, statement_timeout: float | None = None) -> "WrappedConnection":
    """Open a connection. ``statement_timeout`` (seconds) is enforced by the server where it can be:
    PostgreSQL ``statement_timeout``, MariaDB ``max_statement_time``; SQLite has none."""
    return WrappedConnection(driver_for(db_url, statement_timeout))


class WrappedConnection:
    """A driver connection in manual-commit mode."""

    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self.backend: str = driver.backend
        self.raw: Any = None  # set first: classifying a failed connect looks at it
        self.raw = self._call(driver.connect)

    def __enter__(self) -> "WrappedConnection":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<WrappedConnection {self.backend} {self._driver.url.render_as_string(hide_password=True)}>"

    def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        try:
            return function(*args)
        except self._driver.errors as exc:
            raise self.translate_error(exc) from exc

    def translate_error(self, exc: BaseException) -> errors.DBError:
        """The ``errors.DBError`` subclass instance standing for a driver exception."""
        error_class = self._driver.error_class(exc, self.raw)
        return error_class(f"{self.backend}: {exc}".strip())

    def cursor(self) -> "WrappedCursor":
        return WrappedCursor(self)

    def begin(self, immediate: bool = False) -> None:
        """Start a transaction; ``immediate`` takes SQLite's write lock at once (no-op elsewhere)."""
        self._call(self._driver.begin, self.raw, immediate)

    def single_statement(self, on: bool) -> None:
        """Between transactions: make the next statement commit itself where the backend can (then
        ``commit()`` has nothing left to do), or go back to manual commit (``on=False``)."""
        self._call(self._driver.single_statement, self.raw, on)

    def commit(self) -> None:
        self._call(self.raw.commit)

    def rollback(self) -> None:
        """Roll back; raises ``ConnectionLost`` if the session is gone (the server has then rolled
        back already, and the caller knows to reconnect)."""
        self._call(self.raw.rollback)

    def close(self) -> None:
        """Close; closing a dead connection is not an error."""
        try:
            self.raw.close()
        except self._driver.errors:
            pass

    def ping(self) -> bool:
        """True if the session answers a trivial query. Never raises; does not end an open transaction."""
        try:
            self._call(self._driver.ping, self.raw)
            return True
        except errors.DBError:
            return False

    def next_ids(self, sequence: str, n: int) -> list[int]:
        """``n`` fresh values of ``sequence`` ("pandaid_seq", "file_row_id_seq"), ascending, in one
        statement. On SQLite the counter row is updated inside the current transaction."""
        cursor = self.cursor()
        try:
            return self._driver.next_ids(cursor, sequence, n)
        finally:
            cursor.close()


class WrappedCursor:
    """A cursor taking ``:name`` binds and raising only ``errors.DBError`` subclasses."""

    def __init__(self, connection: WrappedConnection) -> None:
        self.connection = connection
        self._driver = connection._driver
        self._raw = connection._call(connection.raw.cursor)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())

    def _params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        if not params:
            return {}
        adapt, types = self._driver.adapt, self._driver.adapted_types
        return {name: adapt(value) if isinstance(value, types) else value for name, value in params.items()}

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> "WrappedCursor":
        statement = self._driver.translate(sql)
        self.connection._call(self._raw.execute, statement.sql, self._params(params))
        return self

    def executemany(self, sql: str, seq_of_params: Iterable[Mapping[str, Any]]) -> "WrappedCursor":
        """Run a statement once per parameter set, batched by the driver (pipelined on PostgreSQL,
        multi-row ``INSERT`` on MariaDB)."""
        statement = self._driver.translate(sql)
        rows = [self._params(params) for params in seq_of_params]
        if rows:
            self.connection._call(self._raw.executemany, statement.sql, rows)
        return self

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self.connection._call(self._raw.fetchone)
        return None if row is None else tuple(row)

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        rows = self.connection._call(self._raw.fetchmany, size or self._raw.arraysize)
        return [tuple(row) for row in rows]

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.connection._call(self._raw.fetchall)]

    @property
    def rowcount(self) -> int:
        return int(self._raw.rowcount)

    @property
    def description(self) -> Sequence[Sequence[Any]] | None:
        description: Sequence[Sequence[Any]] | None = self._raw.description
        return description

    def close(self) -> None:
        try:
            self._raw.close()
        except self._driver.errors:
            pass
