"""A database outage, made with each backend's own means, is answered 503 with Retry-After in the
protocol's form (legacy ``ERROR : ...`` text, v1 envelope); each request logs one line without a
traceback, and the outage is summarised once when it starts and once when it ends."""

from __future__ import annotations

import contextlib
import logging
import secrets
import sqlite3
from typing import Iterator
from urllib.parse import urlsplit

import psycopg
import pymysql

from pandasrv.web import outage
from tests.web.inproc import InProcess, in_process_app


@contextlib.contextmanager
def _postgresql_outage(db_url: str) -> Iterator[None]:
    """The database refuses new sessions and its sessions are terminated (pg_terminate_backend)."""
    parts = urlsplit(db_url)
    name = parts.path.lstrip("/")
    with psycopg.connect(host=parts.hostname, port=parts.port or 5432, user=parts.username or "postgres",
                         dbname="postgres", autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            killed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                   "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchone()[0]
            assert killed >= 1
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def _mysql_admin(db_url: str) -> pymysql.connections.Connection:
    parts = urlsplit(db_url)
    return pymysql.connect(host=parts.hostname, port=parts.port or 3306, user="root", autocommit=True)


@contextlib.contextmanager
def _mysql_user(db_url: str) -> Iterator[str]:
    """The app's own account on the test database, so that the outage can lock it without locking root."""
    parts = urlsplit(db_url)
    name, user = parts.path.lstrip("/"), f"shed_{secrets.token_hex(4)}"
    with _mysql_admin(db_url) as admin, admin.cursor() as cursor:
        cursor.execute(f"CREATE USER '{user}'@'%'")
        cursor.execute(f"GRANT ALL ON {name}.* TO '{user}'@'%'")
        try:
            yield f"mysql://{user}@{parts.hostname}:{parts.port or 3306}/{name}"
        finally:
            cursor.execute(f"DROP USER '{user}'@'%'")


@contextlib.contextmanager
def _mysql_outage(db_url: str) -> Iterator[None]:
    """The app's account is locked and its sessions killed (MariaDB KILL)."""
    user = urlsplit(db_url).username
    with _mysql_admin(db_url) as admin, admin.cursor() as cursor:
        cursor.execute(f"ALTER USER '{user}'@'%' ACCOUNT LOCK")
        try:
            cursor.execute("SELECT id FROM information_schema.processlist WHERE user = %s", (user,))
            sessions = [row[0] for row in cursor.fetchall()]
            assert sessions
            for session in sessions:
                cursor.execute(f"KILL {int(session)}")
            yield
        finally:
            cursor.execute(f"ALTER USER '{user}'@'%' ACCOUNT UNLOCK")


@contextlib.contextmanager
def _sqlite_outage(db_url: str) -> Iterator[None]:
    """Another process holds the file's write lock for the whole outage (an exclusive transaction)."""
    holder = sqlite3.connect(db_url.removeprefix("sqlite:///").split("?")[0], isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        holder.rollback()
        holder.close()


OUTAGES = {"postgresql": _postgresql_outage, "mysql": _mysql_outage, "sqlite": _sqlite_outage}


@contextlib.contextmanager
def _short_busy_timeout(db_url: str) -> Iterator[str]:
    """SQLite reports the lock after half a second, not the default 30."""
    yield f"{db_url}?timeout=0.5"


CONNECT_AS = {"mysql": _mysql_user, "sqlite": _short_busy_timeout, "postgresql": contextlib.nullcontext}


def _get_job(running: InProcess, v1: bool):
    if v1:
        return running.request("POST", "/api/v1/pilot/acquire_jobs", json={"site_name": running.queue})
    return running.request("POST", "/server/panda/getJob", body=f"siteName={running.queue}",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})


def test_outage_is_a_503_with_retry_after(test_databases, backend, tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(outage, "QUIET_SECONDS", 0.0)
    with in_process_app(test_databases, backend, tmp_path, connect_as=CONNECT_AS[backend]) as running:
        for v1 in (False, True):
            assert _get_job(running, v1).status_code == 200
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="pandasrv"), OUTAGES[backend](running.db_url):
            replies = [_get_job(running, v1) for v1 in (False, True, False, True)]
        for reply, v1 in zip(replies, (False, True, False, True)):
            assert reply.status_code == 503, reply.text
            assert int(reply.headers["Retry-After"]) == running.app.services.settings.retry_after_seconds
            if v1:
                assert reply.json["success"] is False and reply.json["data"] is None
                assert "retry later" in reply.json["message"]
            else:
                assert reply.headers["Content-Type"].startswith("text/plain")
                assert reply.text.startswith("ERROR : ") and "retry later" in reply.text
        records = [r for r in caplog.records if r.levelno >= logging.INFO]
        assert all(r.exc_info is None for r in records), "a traceback was logged above debug level"
        per_request = [r for r in records if ": 503 " in r.getMessage()]
        assert len(per_request) == len(replies)
        assert [r.getMessage() for r in records if "outage started" in r.getMessage()] != []
        assert len([r for r in records if "outage started" in r.getMessage()]) == 1
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="pandasrv"):
            assert _get_job(running, False).status_code == 200
        ended = [r.getMessage() for r in caplog.records if "outage ended" in r.getMessage()]
        assert len(ended) == 1 and f"{len(replies)} requests answered 503" in ended[0], ended
