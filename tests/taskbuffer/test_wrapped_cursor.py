"""WrappedConnection/WrappedCursor against real databases: binds, datetimes, batches, errors, sequences."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from pandasrv.taskbuffer import errors
from pandasrv.taskbuffer.wrapped_cursor import WrappedConnection, connect

NOW = dt.datetime(2024, 5, 17, 12, 30, 45, 123456)


@pytest.fixture
def conn(db_url: str):
    connection = connect(db_url)
    yield connection
    connection.close()


def insert_queue(conn: WrappedConnection, name: str, site: str = "SITE", status: str = "online") -> None:
    conn.cursor().execute(
        "INSERT INTO queues (name, site, status, modificationTime) VALUES (:name, :site, :status, :now)",
        {"name": name, "site": site, "status": status, "now": NOW},
    )


def test_backend_name(conn, backend):
    assert conn.backend == backend


def test_binds_leave_literals_with_colons_and_percent_alone(conn):
    conn.begin()
    insert_queue(conn, "Q1", site="50%:off")
    cur = conn.cursor().execute(
        "SELECT name, site, '12:30', '100%' FROM queues"
        " WHERE site LIKE '50%' AND name = :name AND status <> ':status'",
        {"name": "Q1"},
    )
    assert cur.fetchall() == [("Q1", "50%:off", "12:30", "100%")]
    cur.execute("SELECT COUNT(*) FROM queues WHERE site LIKE :pattern", {"pattern": "%:off"})
    assert cur.fetchone() == (1,)
    # Without any bind the percent signs must survive too (modulo operator included).
    assert cur.execute("SELECT '100%', 7 % 3 FROM queues").fetchall() == [("100%", 1)]
    conn.commit()


def test_repeated_bind_and_unused_extra_params(conn):
    conn.begin()
    insert_queue(conn, "Q1")
    cur = conn.cursor().execute(
        "SELECT name FROM queues WHERE name = :name OR site = :name", {"name": "Q1", "unused": 7}
    )
    assert cur.fetchall() == [("Q1",)]
    conn.rollback()


@pytest.mark.parametrize("value", [
    NOW,
    dt.datetime(2024, 1, 1),
    dt.datetime(2024, 5, 17, 14, 30, 45, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2))),
])
def test_datetimes_are_naive_utc_in_and_out(conn, value):
    conn.begin()
    conn.cursor().execute(
        "INSERT INTO process_locks (component, lockedBy, lockedTime) VALUES ('c', 'me', :t)", {"t": value}
    )
    conn.commit()
    row = conn.cursor().execute("SELECT lockedTime FROM process_locks WHERE component = 'c'").fetchone()
    expected = value.astimezone(dt.timezone.utc).replace(tzinfo=None) if value.tzinfo else value
    assert row == (expected,)
    assert row[0].tzinfo is None
    # A datetime bind compares as a datetime, not as text, on every backend.
    cur = conn.cursor().execute(
        "SELECT COUNT(*) FROM process_locks WHERE lockedTime > :before AND lockedTime <= :at",
        {"before": expected - dt.timedelta(microseconds=1), "at": expected},
    )
    assert cur.fetchone() == (1,)


def test_executemany_rowcount_and_description(conn):
    conn.begin()
    cur = conn.cursor()
    rows = [{"name": f"Q{i:03d}", "site": f"S{i % 3}", "status": "online", "now": NOW} for i in range(250)]
    cur.executemany(
        "INSERT INTO queues (name, site, status, modificationTime) VALUES (:name, :site, :status, :now)", rows
    )
    assert cur.rowcount == 250
    cur.execute("UPDATE queues SET status = :status WHERE site = :site", {"status": "offline", "site": "S1"})
    assert cur.rowcount == 83
    # Rows that already hold the value still count: rowcount means matched rows everywhere.
    cur.execute("UPDATE queues SET status = :status WHERE site = :site", {"status": "offline", "site": "S1"})
    assert cur.rowcount == 83
    conn.commit()
    cur.execute("SELECT name, status FROM queues WHERE site = :site ORDER BY name", {"site": "S1"})
    assert [d[0].lower() for d in cur.description] == ["name", "status"]
    assert cur.fetchmany(2) == [("Q001", "offline"), ("Q004", "offline")]
    assert len(cur.fetchall()) == 81
    cur.executemany("DELETE FROM queues WHERE name = :name", [])
    assert conn.cursor().execute("SELECT COUNT(*) FROM queues").fetchone() == (250,)


@pytest.mark.backends("sqlite", "postgresql")
def test_update_returning(conn):
    conn.begin(immediate=True)
    insert_queue(conn, "Q1")
    insert_queue(conn, "Q2", site="OTHER")
    cur = conn.cursor().execute(
        "UPDATE queues SET status = :status WHERE site = :site RETURNING name, status",
        {"status": "test", "site": "SITE"},
    )
    assert cur.fetchall() == [("Q1", "test")]
    conn.commit()


def test_rollback_discards(conn):
    conn.begin()
    insert_queue(conn, "Q1")
    conn.rollback()
    assert conn.cursor().execute("SELECT COUNT(*) FROM queues").fetchone() == (0,)


def test_integrity_error(conn):
    conn.begin()
    insert_queue(conn, "Q1")
    with pytest.raises(errors.IntegrityError) as info:
        insert_queue(conn, "Q1")
    assert info.value.__cause__ is not None
    conn.rollback()


def test_other_errors_are_dberror(conn):
    with pytest.raises(errors.DBError) as info:
        conn.cursor().execute("SELECT no_such_column FROM queues")
    assert type(info.value) is errors.DBError
    conn.rollback()


def lock_row_in_other_session(db_url: str) -> WrappedConnection:
    holder = connect(db_url)
    holder.begin(immediate=True)
    holder.cursor().execute("UPDATE queues SET status = 'test' WHERE name = 'Q1'")
    return holder


def test_lock_timeout(db_url, backend):
    setup = connect(db_url)
    setup.begin()
    insert_queue(setup, "Q1")
    setup.commit()
    setup.close()
    holder = lock_row_in_other_session(db_url)
    waiter = connect(db_url + "?timeout=0.2" if backend == "sqlite" else db_url)
    try:
        cur = waiter.cursor()
        if backend == "postgresql":
            cur.execute("SET lock_timeout = '200ms'")
        elif backend == "mysql":
            cur.execute("SET innodb_lock_wait_timeout = 1")
        with pytest.raises(errors.LockTimeout):
            # SQLite locks the whole database at BEGIN IMMEDIATE; the servers lock the row.
            waiter.begin(immediate=True)
            cur.execute("UPDATE queues SET status = 'offline' WHERE name = 'Q1'")
        waiter.rollback()
    finally:
        holder.rollback()
        holder.close()
        waiter.close()


@pytest.mark.backends("postgresql", "mysql")
def test_statement_timeout(db_url, backend):
    sleep = "SELECT pg_sleep(3)" if backend == "postgresql" else "SELECT SLEEP(3)"
    with connect(db_url, statement_timeout=0.3) as conn:
        with pytest.raises(errors.StatementTimeout):
            conn.cursor().execute(sleep).fetchall()
        conn.rollback()
        assert conn.ping()


@pytest.mark.backends("postgresql", "mysql")
def test_connection_lost_when_session_killed(db_url, backend):
    session_sql = "SELECT pg_backend_pid()" if backend == "postgresql" else "SELECT CONNECTION_ID()"
    kill_sql = "SELECT pg_terminate_backend(:pid)" if backend == "postgresql" else None
    victim = connect(db_url)
    (pid,) = victim.cursor().execute(session_sql).fetchone()
    victim.rollback()
    with connect(db_url) as killer:
        if kill_sql:
            killer.cursor().execute(kill_sql, {"pid": pid}).fetchall()
        else:
            killer.cursor().execute(f"KILL {int(pid)}")
        killer.commit()
    assert not victim.ping()
    with pytest.raises(errors.ConnectionLost):
        victim.cursor().execute("SELECT COUNT(*) FROM queues").fetchall()
    with pytest.raises(errors.ConnectionLost):
        victim.rollback()
    victim.close()  # closing a dead connection is not an error


def test_closed_connection_is_lost(conn):
    conn.close()
    assert not conn.ping()
    with pytest.raises(errors.ConnectionLost):
        conn.cursor().execute("SELECT 1")


@pytest.mark.parametrize("url", ["postgresql://postgres@127.0.0.1:1/none", "mysql://root@127.0.0.1:1/none"])
def test_server_not_answering_is_connection_lost(url):
    with pytest.raises(errors.ConnectionLost):
        connect(url)


def test_unopenable_sqlite_file_is_dberror(tmp_path):
    with pytest.raises(errors.DBError):
        connect(f"sqlite:///{tmp_path}/no/such/dir/x.db")


def test_next_ids_bulk_and_unique(conn):
    conn.begin()
    first = conn.next_ids("pandaid_seq", 1)
    bulk = conn.next_ids("pandaid_seq", 500)
    conn.commit()
    assert first == [1]
    assert bulk == list(range(2, 502))
    assert conn.next_ids("file_row_id_seq", 3) == [1, 2, 3]
    conn.commit()


def test_next_ids_unique_across_connections(db_url):
    results: list[list[int]] = []
    failures: list[BaseException] = []

    def fetch() -> None:
        try:
            with connect(db_url) as own:
                for _ in range(10):
                    own.begin(immediate=True)
                    results.append(own.next_ids("pandaid_seq", 20))
                    own.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    ids = [i for batch in results for i in batch]
    assert len(ids) == len(set(ids)) == 800


def test_next_ids_rejects_unknown_sequence_and_bad_count(conn):
    with pytest.raises(errors.DBError):
        conn.next_ids("jobs; DROP TABLE files", 1)
    with pytest.raises(errors.DBError):
        conn.next_ids("pandaid_seq", 0)


@pytest.mark.backends("postgresql", "mysql")
def test_server_sessions_run_on_utc(conn, backend):
    sql = "SELECT current_setting('TimeZone')" if backend == "postgresql" else "SELECT @@session.time_zone"
    assert conn.cursor().execute(sql).fetchone()[0] in ("UTC", "+00:00")
    conn.rollback()


def test_four_byte_characters_round_trip(conn):
    conn.begin()
    insert_queue(conn, "Q\U0001F600", site="\u00e9\U0001F680")
    conn.commit()
    assert conn.cursor().execute("SELECT name, site FROM queues").fetchall() == [("Q\U0001F600", "\u00e9\U0001F680")]
