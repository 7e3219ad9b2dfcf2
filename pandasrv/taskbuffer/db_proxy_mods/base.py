"""Connection handling and the one-transaction-per-method rule shared by every DBProxy mixin.

A DBProxy owns one connection. Each public method is wrapped by ``@transaction``: it begins, runs,
commits, and on any error rolls back. A lost connection is dropped so the next call reconnects.
Mixins reach the connection only through the helpers here, so per-backend details stay in one place.
"""

from __future__ import annotations

import datetime as _dt
import functools
import logging
import operator
import os
import random
import time
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar, overload

from pandasrv.taskbuffer import errors
from pandasrv.taskbuffer.file_spec import FILE_ATTRIBUTES, FileSpec
from pandasrv.taskbuffer.job_spec import JobSpec
from pandasrv.taskbuffer.wrapped_cursor import WrappedConnection, WrappedCursor
from pandasrv.taskbuffer.wrapped_cursor import connect as _connect

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
SpecT = TypeVar("SpecT", JobSpec, FileSpec)

# From this many rows on, PostgreSQL inserts go through COPY.
COPY_MIN_ROWS = 50

# A stage table that grows by this many rows, and by this fraction of its size (or was never analysed),
# gets its PostgreSQL statistics refreshed at once (see BaseProxy._refresh_statistics).
ANALYZE_MIN_ROWS = 500
ANALYZE_GROWTH = 0.2

# A deadlock victim's transaction is run this many times in all before the Deadlock reaches the caller.
DEADLOCK_ATTEMPTS = 4

# How often a PostgreSQL backend checks that its client is still there while a query runs, so a
# session whose ConBridge child was killed ends within about a second.
_PG_CLIENT_CHECK_MS = 1000


@overload
def transaction(fn: F) -> F: ...
@overload
def transaction(*, readonly: bool = False, single_statement: bool = False) -> Callable[[F], F]: ...
def transaction(fn: F | None = None, *, readonly: bool = False, single_statement: bool = False) -> F | Callable[[F], F]:
    """Make a public DBProxy method one transaction.

    A method called from inside another transactional method joins the outer transaction, so
    methods can be composed (``update_job`` writes the output report in its own transaction).
    A connection lost before COMMIT was sent means the server rolled everything back, so the call is
    retried once on a new connection; lost during COMMIT, the outcome is unknown and ConnectionLost is
    raised. A transaction the server chose as a deadlock victim was rolled back whole, so it is run
    again, a few times with a short random pause that lets the winner commit. ``readonly`` methods
    take a deferred (shared) SQLite transaction instead of an immediate one. A ``single_statement`` method
    runs one statement that commits itself where the backend allows (PostgreSQL autocommit, SQLite without
    BEGIN; MariaDB still needs the COMMIT): one round trip, no lock held across round trips. Called inside
    another transaction it joins it like any method. Its statement must be idempotent, since a connection
    lost while it runs is retried like one lost before COMMIT.
    """

    mode = "single" if single_statement else "readonly" if readonly else "write"

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: "BaseProxy", *args: Any, **kwargs: Any) -> Any:
            if self._in_transaction:
                return method(self, *args, **kwargs)
            try:
                return self._run_retrying_deadlocks(method, mode, args, kwargs)
            except errors.ConnectionLost as exc:
                if getattr(exc, "during_commit", False):
                    raise
                log.warning("%s: connection lost before commit, retrying once on a new connection", method.__name__)
            return self._run_retrying_deadlocks(method, mode, args, kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate(fn) if fn is not None else decorate


class BaseProxy:
    """One database session and the small SQL helpers every mixin uses."""

    def __init__(self, db_url: str, statement_timeout: float | None = None) -> None:
        self.db_url = db_url
        self.statement_timeout = statement_timeout
        self._conn: Any = None
        self._in_transaction = False

    # --- connection ---------------------------------------------------------------------------
    def connect(self) -> None:
        """(Re)open the session; called lazily by the first transaction."""
        self.close()
        conn = _connect(self.db_url, statement_timeout=self.statement_timeout)
        if conn.backend == "postgresql":
            conn.begin()
            conn.cursor().execute(f"SET client_connection_check_interval = {_PG_CLIENT_CHECK_MS}", {})
            conn.commit()
        self._conn = conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except errors.DBError:
                pass

    def ping(self) -> bool:
        """True if the database answers, reconnecting once if the session is gone; never raises DBError."""
        for _ in range(2):
            try:
                if self._conn is None:
                    self.connect()
                if self._conn.ping():
                    return True
            except errors.DBError as exc:
                log.info("ping failed: %s", exc)
            self.close()
        return False

    @property
    def backend(self) -> str:
        return self._connection().backend

    def _connection(self) -> WrappedConnection:
        if self._conn is None:
            self.connect()
        conn: WrappedConnection = self._conn
        return conn

    def _run_retrying_deadlocks(self, method: Callable[..., Any], mode: str, args: tuple[Any, ...],
                                kwargs: dict[str, Any]) -> Any:
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                return self._run_transaction(method, mode, args, kwargs)
            except errors.Deadlock:
                if attempt == DEADLOCK_ATTEMPTS:
                    raise
                log.info("%s: deadlock victim, running it again (attempt %d)", method.__name__, attempt + 1)
                time.sleep(random.uniform(0.005, 0.05) * attempt)
        raise AssertionError("unreachable")

    def _run_transaction(self, method: Callable[..., Any], mode: str, args: tuple[Any, ...],
                         kwargs: dict[str, Any]) -> Any:
        """``mode``: "write" (SQLite's immediate transaction), "readonly" (deferred) or "single" (one
        statement that commits itself where the backend can)."""
        conn = self._connection()
        self._in_transaction = True
        try:
            if mode == "single":
                conn.single_statement(True)
            else:
                conn.begin(immediate=mode == "write")
            result = method(self, *args, **kwargs)
            try:
                conn.commit()
            except errors.ConnectionLost as exc:
                exc.during_commit = True  # type: ignore[attr-defined]
                raise
            return result
        except BaseException as exc:
            self._abort(exc)
            raise
        finally:
            self._in_transaction = False
            if mode == "single" and self._conn is not None:
                try:
                    self._conn.single_statement(False)
                except errors.DBError:  # a session in an unknown state is not reused
                    self.close()

    def _abort(self, exc: BaseException) -> None:
        lost = isinstance(exc, errors.ConnectionLost)
        if not lost and self._conn is not None:
            try:
                self._conn.rollback()
            except errors.ConnectionLost:
                lost = True
            except errors.DBError as rollback_error:
                log.warning("rollback failed: %s", rollback_error)
                lost = True
        if lost:
            self.close()

    # --- SQL helpers (used inside a transaction) -------------------------------------------------
    def _execute(self, sql: str, params: dict[str, Any] | None = None) -> WrappedCursor:
        cur: WrappedCursor = self._conn.cursor()
        cur.execute(sql, params or {})
        return cur

    def _fetchall(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return list(self._execute(sql, params).fetchall())

    def _executemany(self, sql: str, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self._conn.cursor().executemany(sql, list(rows))

    @property
    def _for_update(self) -> str:
        """Row-lock suffix for a SELECT; SQLite has none (its write transaction locks the database)."""
        return "" if self._conn.backend == "sqlite" else " FOR UPDATE"

    def _insert_ignoring_duplicates(self, table: str, columns: Sequence[str], key: str,
                                    params: dict[str, Any]) -> WrappedCursor:
        """INSERT one row unless a row with the same ``key`` exists: race-safe without catching errors,
        so the transaction stays usable (a failed INSERT would abort it on PostgreSQL)."""
        values = ", ".join(f":{c}" for c in columns)
        names = ", ".join(columns)
        sql = {
            "postgresql": f"INSERT INTO {table} ({names}) VALUES ({values}) ON CONFLICT ({key}) DO NOTHING",
            "mysql": f"INSERT IGNORE INTO {table} ({names}) VALUES ({values})",
            "sqlite": f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({values})",
        }[self._conn.backend]
        return self._execute(sql, params)

    def _update_else_insert(self, update_sql: str, table: str, columns: Sequence[str], key: str,
                            params: dict[str, Any]) -> None:
        """Run ``update_sql`` on an existing row, else insert the row: race-safe for updates that cannot
        be written as a plain upsert (a SET that reads the old value). An insert that loses a race
        is ignored and the update runs again on the winner's row. The update comes first for the
        reason given in ``locks.py`` (MariaDB lock upgrades deadlock)."""
        if self._execute(update_sql, params).rowcount:
            return
        if not self._insert_ignoring_duplicates(table, columns, key, params).rowcount:
            self._execute(update_sql, params)

    def _upsert(self, table: str, columns: Sequence[str], keys: Sequence[str], params: dict[str, Any]) -> WrappedCursor:
        """INSERT one row, or set its non-key ``columns`` to the new values if a row with the same ``keys``
        exists: one statement, so two identical concurrent calls both succeed (a DELETE-then-INSERT
        gives the loser a duplicate key)."""
        values = ", ".join(f":{c}" for c in columns)
        names = ", ".join(columns)
        changed = [c for c in columns if c not in keys]
        if self._conn.backend == "mysql":
            sets = ", ".join(f"{c} = VALUES({c})" for c in changed)
            sql = f"INSERT INTO {table} ({names}) VALUES ({values}) ON DUPLICATE KEY UPDATE {sets}"
        else:
            sets = ", ".join(f"{c} = excluded.{c}" for c in changed)
            sql = f"INSERT INTO {table} ({names}) VALUES ({values}) ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
        return self._execute(sql, params)

    @staticmethod
    def _in(prefix: str, values: Iterable[Any]) -> tuple[str, dict[str, Any]]:
        """``(:p0,:p1,...)`` and its binds, for ``WHERE col IN ...`` over a bounded list."""
        binds = {f"{prefix}{i}": value for i, value in enumerate(values)}
        return "(" + ",".join(f":{name}" for name in binds) + ")", binds

    @staticmethod
    def _set_clause(sets: Mapping[str, Any], prefix: str = "v_") -> tuple[str, dict[str, Any]]:
        """``a = :v_a, b = :v_b`` and its binds, for ``UPDATE ... SET`` of caller-checked column names."""
        return (", ".join(f"{name} = :{prefix}{name}" for name in sets),
                {f"{prefix}{name}": value for name, value in sets.items()})

    def _insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
        """Bulk INSERT. Many rows on PostgreSQL: COPY (several times faster than any INSERT for wide
        job rows, but three round trips); otherwise executemany, which psycopg pipelines, PyMySQL turns
        into multi-row inserts and SQLite runs on one prepared statement."""
        if not rows:
            return
        column_list = ",".join(columns)
        if self._conn.backend == "postgresql" and len(rows) >= COPY_MIN_ROWS:
            values_of = operator.itemgetter(*columns) if len(columns) > 1 else lambda row: (row[columns[0]],)
            self._copy_rows(table, column_list, [values_of(row) for row in rows])
        else:
            values = ",".join(f":{name}" for name in columns)
            self._executemany(f"INSERT INTO {table} ({column_list}) VALUES ({values})", rows)

    def _copy_rows(self, table: str, column_list: str, rows: list[tuple[Any, ...]]) -> None:
        """psycopg COPY FROM STDIN on the driver connection, with errors translated like any statement's."""
        import psycopg

        try:
            with self._conn.raw.cursor() as cur, cur.copy(f"COPY {table} ({column_list}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.Error as exc:
            raise self._conn.translate_error(exc) from exc

    def _refresh_statistics(self, table: str, added: int) -> None:
        """Re-analyse a table after a burst of rows, on PostgreSQL.

        jobs_active is a queue: a burst of activated jobs on a table without current statistics makes
        the planner prefer another index and sort the whole queue for every claim (15 ms per claim at
        30,000 jobs instead of 1 ms). Autovacuum would fix the statistics only up to a minute later.
        ANALYZE counts this transaction's own new rows and is cheap at the sizes where it triggers.
        """
        if self._conn.backend != "postgresql" or added < ANALYZE_MIN_ROWS:
            return
        rows = self._fetchall("SELECT reltuples FROM pg_class WHERE oid = CAST(:t AS regclass)", {"t": table})
        if rows and (rows[0][0] < 0 or added > ANALYZE_GROWTH * rows[0][0]):
            self._execute(f"ANALYZE {table}")

    # --- row mapping -----------------------------------------------------------------------------
    @staticmethod
    def _spec_from_row(kind: type[SpecT], columns: Sequence[str], row: Sequence[Any]) -> SpecT:
        """A JobSpec or FileSpec from a row of ``columns``' values, in that order."""
        spec = kind()
        for name, value in zip(columns, row):
            setattr(spec, name, value)
        return spec

    def _attach_details(self, jobs: dict[int, JobSpec], *, files: bool = True, params: bool = True,
                        metadata: bool = False) -> None:
        """Fill Files, jobParameters and metadata as asked, with one query each, not one per job."""
        if not jobs:
            return
        in_ids, binds = self._in("id", jobs)
        if files:
            cols = ",".join(FILE_ATTRIBUTES)
            sql = f"SELECT {cols} FROM files WHERE PandaID IN {in_ids} ORDER BY PandaID, row_ID"
            for row in self._fetchall(sql, binds):
                spec = self._spec_from_row(FileSpec, FILE_ATTRIBUTES, row)
                jobs[spec.PandaID].Files.append(spec)
        if params:
            sql = f"SELECT PandaID, jobParameters FROM job_params WHERE PandaID IN {in_ids}"
            for panda_id, text in self._fetchall(sql, binds):
                jobs[panda_id].jobParameters = text
        if metadata:
            for panda_id, text in self._fetchall(f"SELECT PandaID, metaData FROM job_metadata WHERE PandaID IN {in_ids}", binds):
                jobs[panda_id].metadata = text

    def _log_status(self, rows: Iterable[dict[str, Any]], now: _dt.datetime) -> None:
        """One job_status_log row per status change (PanDA's jobs_StatusLog)."""
        entries = [
            {
                "PandaID": r["PandaID"], "modificationTime": now, "jobStatus": r["jobStatus"],
                "prodSourceLabel": r.get("prodSourceLabel"), "cloud": r.get("cloud"),
                "computingSite": r.get("computingSite"), "modificationHost": r.get("modificationHost"),
                "reason": r.get("reason"),
            }
            for r in rows
        ]
        if entries:
            self._insert_rows("job_status_log", list(entries[0]), entries)

    # --- diagnostics ---------------------------------------------------------------------------
    @transaction(readonly=True)
    def sleep(self, seconds: float) -> None:
        """Hold the session busy on the server for ``seconds`` (tests and diagnoses db_timeout)."""
        backend = self._conn.backend
        if backend == "postgresql":
            self._execute("SELECT pg_sleep(:s)", {"s": seconds}).fetchall()
        elif backend == "mysql":
            self._execute("SELECT SLEEP(:s)", {"s": seconds}).fetchall()
        else:
            time.sleep(seconds)

    @transaction(readonly=True)
    def session_id(self) -> int:
        """The server's id of this session (PostgreSQL backend pid, MariaDB connection id, SQLite: our pid)."""
        backend = self._conn.backend
        if backend == "postgresql":
            return int(self._fetchall("SELECT pg_backend_pid()")[0][0])
        if backend == "mysql":
            return int(self._fetchall("SELECT CONNECTION_ID()")[0][0])
        return os.getpid()

    def terminate_session(self, session_id: int) -> bool:
        """End another session on the server (a killed ConBridge child's); SQLite sessions die with their process."""
        backend = self._connection().backend
        try:
            self._conn.begin()
            if backend == "postgresql":
                done = bool(self._fetchall("SELECT pg_terminate_backend(:pid)", {"pid": session_id})[0][0])
            elif backend == "mysql":
                self._execute("KILL :pid", {"pid": session_id})
                done = True
            else:
                done = False
            self._conn.commit()
            return done
        except errors.DBError as exc:
            self._abort(exc)
            return False
