"""Shared fixtures: a fresh database per test on every backend.

``db_url`` (initialised: tables, indexes, sequences, stamped at the head revision) and ``empty_db_url``
(nothing in it) are parametrised over the ``backend`` fixture: ``sqlite``, ``postgresql``, ``mysql``.

- Restrict a test or module with ``@pytest.mark.backends("postgresql", "mysql")``, or a whole run with
  ``PANDASRV_TEST_BACKENDS=sqlite,postgresql``.
- Servers: ``PANDASRV_TEST_POSTGRESQL`` (default ``postgresql://postgres@127.0.0.1:5432``) and
  ``PANDASRV_TEST_MYSQL`` (default ``mysql://root@127.0.0.1:3306``). A server that does not answer
  skips its tests, except with ``CI=true``, where that is a failure.

Fresh databases are cheap: SQLite copies a template file, PostgreSQL clones a template database
(``CREATE DATABASE ... TEMPLATE``); MariaDB replays the DDL captured from a database made by ``init_db``.
Each template is built once per session. On the servers, one thread per backend does all the
administration (``Provisioner``): the next test's database is made and the last one dropped while a test
runs, so a test waits for neither (about 1.5 s per test on MariaDB, 0.6 s on PostgreSQL on a loaded
machine).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import shutil
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy.engine import make_url

from pandasrv.taskbuffer.db_admin import init_db
from pandasrv.web.app import INTERNAL_ERROR

BACKENDS = ("sqlite", "postgresql", "mysql")
SERVER_URLS = {
    "postgresql": os.environ.get("PANDASRV_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432"),
    "mysql": os.environ.get("PANDASRV_TEST_MYSQL", "mysql://root@127.0.0.1:3306"),
}


def selected_backends() -> tuple[str, ...]:
    wanted = os.environ.get("PANDASRV_TEST_BACKENDS")
    if not wanted:
        return BACKENDS
    names = tuple(name.strip() for name in wanted.split(",") if name.strip())
    unknown = set(names) - set(BACKENDS)
    if unknown:
        raise pytest.UsageError(f"PANDASRV_TEST_BACKENDS: unknown backend(s) {', '.join(sorted(unknown))}")
    return names


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "backends(*names): run the test only on these database backends")
    workerinput = getattr(config, "workerinput", None)  # set in pytest-xdist's workers only
    if workerinput is not None:
        config.stash[MACHINE] = MachineShare(Path(tempfile.gettempdir()) / f"pandasrv-tests-{workerinput['testrunuid']}")


def pytest_unconfigure(config: pytest.Config) -> None:
    if MACHINE in config.stash:
        config.stash[MACHINE].close()


# --- the machine, shared by pytest-xdist's workers ---------------------------------------------------------
class MachineShare:
    """A readers-writer lock over the test run, held around each test's setup, call and teardown: ordinary tests
    share the machine, a test marked ``solo`` (a deadline or a latency bound that another test's load would
    break) waits for the running ones and holds the others off. flock on two files: the turnstile, taken by
    everyone on the way in and held by a solo test until it has the machine, keeps a stream of ordinary tests
    from starving it."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(exist_ok=True)
        self.directory = directory
        self.turnstile = open(directory / "turnstile", "a+")
        self.machine = open(directory / "machine", "a+")

    @contextlib.contextmanager
    def held(self, solo: bool) -> Iterator[None]:
        fcntl.flock(self.turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(self.machine, fcntl.LOCK_EX if solo else fcntl.LOCK_SH)
        finally:
            fcntl.flock(self.turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(self.machine, fcntl.LOCK_UN)

    def close(self) -> None:
        self.turnstile.close()
        self.machine.close()
        shutil.rmtree(self.directory, ignore_errors=True)  # the other worker keeps its open files


MACHINE = pytest.StashKey[MachineShare]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    share = item.config.stash.get(MACHINE, None)
    if share is None:
        return (yield)
    with share.held(item.get_closest_marker("solo") is not None):
        return (yield)


# --- no test may cause a 500 ----------------------------------------------------------------------------
# Logs of the server processes tests started (tests/web/conftest.py's start_server adds each one).
SERVER_LOGS: list[Path] = []


class _InternalErrors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if INTERNAL_ERROR in record.getMessage():
            self.messages.append(record.getMessage())


@pytest.fixture(autouse=True)
def no_internal_errors() -> Iterator[None]:
    """Fail any test whose requests were answered 500, in-process or by a server it talked to: a 500 is
    always a bug (bad input gets a 4xx), and the server logs each one with INTERNAL_ERROR."""
    handler = _InternalErrors()
    logger = logging.getLogger("pandasrv.web")
    logger.addHandler(handler)
    offsets = {path: path.stat().st_size for path in SERVER_LOGS if path.exists()}
    try:
        yield
    finally:
        logger.removeHandler(handler)
    found = list(handler.messages)
    for path in list(SERVER_LOGS):
        if path.exists():
            with open(path, "rb") as log_file:
                log_file.seek(offsets.get(path, 0))
                found += [line for line in log_file.read().decode(errors="replace").splitlines()
                          if INTERNAL_ERROR in line]
    if found:
        pytest.fail("the server answered 500:\n" + "\n".join(found[:20]), pytrace=False)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    if any("backend" in str(marker.args[0]) for marker in metafunc.definition.iter_markers("parametrize")):
        return
    marker = metafunc.definition.get_closest_marker("backends")
    names = [name for name in selected_backends() if marker is None or name in marker.args]
    metafunc.parametrize("backend", names, indirect=True, ids=names)


def unavailable(backend: str, reason: str) -> None:
    """Skip locally; in CI a missing database server is a broken environment, not a skipped test."""
    message = f"{backend} server at {SERVER_URLS[backend]} not available: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


class PostgreSQLServer:
    """Creates databases on the test PostgreSQL server, cloning an initialised template."""

    def __init__(self, server_url: str) -> None:
        import psycopg

        url = make_url(server_url)
        self.base = url
        self.admin = psycopg.connect(
            host=url.host, port=url.port, user=url.username, password=url.password,
            dbname="postgres", autocommit=True, connect_timeout=5,
        )
        self.template: str | None = None

    def url(self, name: str) -> str:
        return self.base.set(database=name).render_as_string(hide_password=False)

    def create(self, name: str, initialised: bool) -> str:
        if not initialised:
            self.admin.execute(f"CREATE DATABASE {name} TEMPLATE template0")
            return self.url(name)
        if self.template is None:
            template = f"pandasrv_tpl_{secrets.token_hex(4)}"
            self.admin.execute(f"CREATE DATABASE {template} TEMPLATE template0")
            self.template = template
            init_db(self.url(template))
        self.admin.execute(f"CREATE DATABASE {name} TEMPLATE {self.template}")
        return self.url(name)

    def drop(self, name: str) -> None:
        # FORCE terminates sessions a test left open (a leaked connection must not block cleanup).
        self.admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        if self.template:
            self.drop(self.template)
        self.admin.close()


class MariaDBServer:
    """Creates databases on the test MariaDB server. MariaDB cannot clone a database, so the DDL of
    one initialised with ``init_db`` is captured once per session and replayed (3x faster)."""

    def __init__(self, server_url: str) -> None:
        import pymysql

        url = make_url(server_url)
        self.base = url
        self.admin = pymysql.connect(
            host=url.host, port=url.port or 3306, user=url.username or "root", password=url.password or "",
            autocommit=True, connect_timeout=5,
        )
        self.ddl: list[str] | None = None

    def url(self, name: str) -> str:
        return self.base.set(database=name).render_as_string(hide_password=False)

    def capture_ddl(self) -> list[str]:
        template = f"pandasrv_tpl_{secrets.token_hex(4)}"
        statements = []
        with self.admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {template} CHARACTER SET utf8mb4")
            try:
                init_db(self.url(template))
                cursor.execute(
                    "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = %s",
                    (template,),
                )
                for table, kind in cursor.fetchall():
                    cursor.execute(f"SHOW CREATE {'SEQUENCE' if kind == 'SEQUENCE' else 'TABLE'} {template}.{table}")
                    statements.append(cursor.fetchone()[1])
                cursor.execute(f"SELECT version_num FROM {template}.alembic_version")
                statements += [f"INSERT INTO alembic_version VALUES ('{version}')" for (version,) in cursor.fetchall()]
                cursor.execute(f"SELECT * FROM {template}.resource_types")  # the rows init_db seeds
                statements += [f"INSERT INTO resource_types VALUES ({', '.join(self.admin.escape(v) for v in row)})"
                               for row in cursor.fetchall()]
            finally:
                cursor.execute(f"DROP DATABASE {template}")
        return statements

    def create(self, name: str, initialised: bool) -> str:
        if initialised and self.ddl is None:
            self.ddl = self.capture_ddl()
        with self.admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
            if initialised:
                cursor.execute(f"USE {name}")
                for statement in self.ddl or ():
                    cursor.execute(statement)
        return self.url(name)

    def drop(self, name: str) -> None:
        with self.admin.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()", (name,)
            )
            for (session,) in cursor.fetchall():
                try:
                    cursor.execute(f"KILL {int(session)}")
                except Exception:  # noqa: BLE001 - the session may have ended on its own meanwhile
                    pass
            cursor.execute(f"DROP DATABASE IF EXISTS {name}")

    def close(self) -> None:
        self.admin.close()


DEFAULT_PREFIX = "pandasrv_t"


class Provisioner:
    """Every administrative statement for one database server, on one thread with the server's connection.

    The database of the next ``db_url`` test (the default prefix, initialised) is made ahead, while the
    current test runs, and used databases are dropped in the background; other requests wait for their turn
    on the thread. A background drop that failed fails the session's teardown (``close``).
    """

    def __init__(self, server_class: Any, server_url: str) -> None:
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"provision-{server_class.__name__}")
        try:
            self.server = self.executor.submit(server_class, server_url).result()
        except BaseException:
            self.executor.shutdown()
            raise
        self.spare: Future[tuple[str, str]] | None = None
        self.drops: list[Future[None]] = []

    def create(self, prefix: str, initialised: bool) -> tuple[str, str]:
        """A new database: (name, URL)."""
        if not (initialised and prefix == DEFAULT_PREFIX):
            name = f"{prefix}_{secrets.token_hex(6)}"
            return name, self.executor.submit(self.server.create, name, initialised).result()
        taken, self.spare = self.spare or self._make_spare(), None
        made = taken.result()
        self.spare = self._make_spare()
        return made

    def _make_spare(self) -> Future[tuple[str, str]]:
        name = f"{DEFAULT_PREFIX}_{secrets.token_hex(6)}"
        return self.executor.submit(lambda: (name, self.server.create(name, True)))

    def drop(self, name: str) -> None:
        self.drops.append(self.executor.submit(self.server.drop, name))

    def close(self) -> None:
        if self.spare is not None:
            with contextlib.suppress(Exception):  # a spare that could not be made needs no drop
                self.drop(self.spare.result()[0])
        closing = self.executor.submit(self.server.close)
        self.executor.shutdown(wait=True)
        for done in self.drops:
            done.result()
        closing.result()


class TestDatabases:
    """Session-wide factory of fresh test databases for every backend."""

    __test__ = False

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.servers: dict[str, Any] = {}
        self.failures: dict[str, str] = {}
        self.sqlite_template: Path | None = None

    def server(self, backend: str) -> Any:
        if backend in self.failures:
            unavailable(backend, self.failures[backend])
        if backend not in self.servers:
            server_class = PostgreSQLServer if backend == "postgresql" else MariaDBServer
            try:
                self.servers[backend] = Provisioner(server_class, SERVER_URLS[backend])
            except Exception as exc:  # noqa: BLE001 - any connection failure means "no server"
                self.failures[backend] = f"{type(exc).__name__}: {exc}".splitlines()[0]
                unavailable(backend, self.failures[backend])
        return self.servers[backend]

    def sqlite(self, path: Path, initialised: bool) -> str:
        if initialised:
            if self.sqlite_template is None:
                template = self.workdir / "template.db"
                init_db(f"sqlite:///{template}")
                self.sqlite_template = template
            shutil.copyfile(self.sqlite_template, path)
        return f"sqlite:///{path}"

    def close(self) -> None:
        for server in self.servers.values():
            server.close()


@pytest.fixture(scope="session")
def test_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestDatabases]:
    databases = TestDatabases(tmp_path_factory.mktemp("db_templates"))
    yield databases
    databases.close()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend of this test: "sqlite", "postgresql" or "mysql"."""
    return request.param


@contextlib.contextmanager
def fresh_database(databases: TestDatabases, backend: str, workdir: Path, initialised: bool = True,
                   prefix: str = DEFAULT_PREFIX) -> Iterator[str]:
    """A new database (initialised at head, or empty) that lives as long as the block."""
    if backend == "sqlite":
        yield databases.sqlite(workdir / ("pandasrv.db" if initialised else "empty.db"), initialised)
        return
    server = databases.server(backend)
    name, url = server.create(prefix, initialised)
    try:
        yield url
    finally:
        server.drop(name)


@pytest.fixture
def db_url(backend: str, test_databases: TestDatabases, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh database initialised at the head revision, dropped after the test."""
    with fresh_database(test_databases, backend, tmp_path) as url:
        yield url


@pytest.fixture
def empty_db_url(backend: str, test_databases: TestDatabases, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh, empty database (no tables), dropped after the test."""
    with fresh_database(test_databases, backend, tmp_path, initialised=False) as url:
        yield url
