"""Create, migrate and check the database schema (``pandasrv db init | upgrade | check``).

Alembic is configured in code (script location inside the package), so an installed pandasrv needs
no ``alembic.ini``. A fresh database is built from ``schema.metadata`` and stamped at the head
revision; an existing one is brought there by the migrations, which must yield the same schema.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from pandasrv.taskbuffer.errors import DBError
from pandasrv.taskbuffer.schema import create_sequences, metadata, seed_resource_types

MIGRATIONS = Path(__file__).with_name("migrations")

# Our URLs name the backend; SQLAlchemy also wants the driver we use for it.
_SQLALCHEMY_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}


def sqlalchemy_url(db_url: str) -> sa.URL:
    """The SQLAlchemy URL of a pandasrv database URL (``postgresql://`` → ``postgresql+psycopg://``)."""
    url = make_url(db_url)
    if url.drivername in _SQLALCHEMY_DRIVERS:
        url = url.set(drivername=_SQLALCHEMY_DRIVERS[url.drivername])
    if url.get_backend_name() in ("mysql", "mariadb") and "charset" not in url.query:
        url = url.update_query_dict({"charset": "utf8mb4"})
    return url


def create_engine(db_url: str) -> sa.Engine:
    """An engine for administrative work (no pooling); creates an SQLite file's directory."""
    url = sqlalchemy_url(db_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(url, poolclass=NullPool)


def alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None, "the migrations directory has no revision"
    return head


def current_revision(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def init_db(db_url: str, if_missing: bool = False) -> bool:
    """Create every table, index and sequence and stamp the head revision. Returns False when the
    database was already initialised and ``if_missing`` is set; raises DBError if it is not set."""
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            revision = current_revision(connection)
            if revision is not None:
                if if_missing:
                    return False
                raise DBError(f"database already initialised (revision {revision}); use 'pandasrv db upgrade'")
            metadata.create_all(connection)
            create_sequences(connection)
            seed_resource_types(connection)
            command.stamp(alembic_config(connection), "head")
        return True
    finally:
        engine.dispose()


def upgrade_db(db_url: str) -> str:
    """Apply the pending migrations (all of them on an empty database); returns the new revision."""
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
            return current_revision(connection) or ""
    finally:
        engine.dispose()


def check_db(db_url: str) -> tuple[bool, str]:
    """Whether the database is at the head revision, and a one-line message saying where it is."""
    head = head_revision()
    url = sqlalchemy_url(db_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        return False, f"database file {url.database} does not exist (head is {head}); run 'pandasrv db init'"
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            revision = current_revision(connection)
    except sa.exc.SQLAlchemyError as exc:
        return False, f"database not reachable: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"
    finally:
        engine.dispose()
    if revision is None:
        return False, f"database not initialised (head is {head}); run 'pandasrv db init'"
    if revision != head:
        return False, f"database at revision {revision}, head is {head}; run 'pandasrv db upgrade'"
    return True, f"database at revision {revision} (head {head}): up to date"
