"""Schema and migrations: a migrated database equals a fresh one, on every backend."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic import command
from click.testing import CliRunner

from pandasrv.cli import main
from pandasrv.taskbuffer import db_admin, errors, schema
from pandasrv.taskbuffer.job_spec import JOB_COLUMNS, TABLE_ATTRIBUTES
from pandasrv.taskbuffer.wrapped_cursor import connect


def snapshot(db_url: str) -> dict:
    """Everything the inspector sees: tables, columns and types, primary keys, indexes, sequences."""
    engine = db_admin.create_engine(db_url)
    try:
        with engine.connect() as connection:
            inspector = sa.inspect(connection)
            tables = {}
            for name in sorted(inspector.get_table_names()):
                columns = [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(name)]
                primary_key = inspector.get_pk_constraint(name)["constrained_columns"]
                indexes = sorted(
                    (i["name"], tuple(i["column_names"]), bool(i["unique"]), str(i.get("column_sorting")))
                    for i in inspector.get_indexes(name)
                )
                tables[name] = {"columns": columns, "primary_key": primary_key, "indexes": indexes}
            sequences = sorted(inspector.get_sequence_names()) if connection.dialect.supports_sequences else []
        return {"tables": tables, "sequences": sequences}
    finally:
        engine.dispose()


def test_init_db_then_check_db_is_ok(db_url):
    ok, message = db_admin.check_db(db_url)
    assert ok
    assert db_admin.head_revision() in message


def test_upgrade_on_empty_database_equals_fresh_init(db_url, empty_db_url):
    assert db_admin.upgrade_db(empty_db_url) == db_admin.head_revision()
    migrated, fresh = snapshot(empty_db_url), snapshot(db_url)
    assert migrated["tables"].keys() == fresh["tables"].keys()
    for name in fresh["tables"]:
        assert migrated["tables"][name] == fresh["tables"][name], name
    assert migrated["sequences"] == fresh["sequences"]
    assert db_admin.check_db(empty_db_url)[0]


def test_every_declared_table_exists(db_url, backend):
    tables = {name.lower() for name in snapshot(db_url)["tables"]}
    expected = set(schema.metadata.tables) | {"alembic_version"}
    if backend == "sqlite":
        expected.add("id_sequences")
    assert tables == expected


def test_job_tables_have_the_table_attributes(db_url):
    tables = snapshot(db_url)["tables"]
    for name in ("jobs_defined", "jobs_active", "jobs_archived"):
        columns = [column[0].lower() for column in tables[name]["columns"]]
        assert columns == [attribute.lower() for attribute in TABLE_ATTRIBUTES]
        assert [c.lower() for c in tables[name]["primary_key"]] == ["pandaid"]


def test_claim_index_matches_the_claim_order(db_url, backend):
    indexes = {i[0]: i for i in snapshot(db_url)["tables"]["jobs_active"]["indexes"]}
    _, columns, unique, _ = indexes["ix_jobs_active_claim"]
    assert [c.lower() for c in columns] == ["computingsite", "jobstatus", "currentpriority", "pandaid"]
    assert not unique
    descending_sql = {
        "sqlite": "SELECT name FROM pragma_index_xinfo('ix_jobs_active_claim') WHERE desc = 1 AND key = 1",
        "postgresql": "SELECT pg_get_indexdef(c.oid, n, true) FROM pg_class c, generate_series(1, 4) AS n"
                      " WHERE c.relname = 'ix_jobs_active_claim' AND pg_index_column_has_property(c.oid, n, 'desc')",
        "mysql": "SELECT column_name FROM information_schema.statistics WHERE table_schema = DATABASE()"
                 " AND index_name = 'ix_jobs_active_claim' AND collation = 'D'",
    }[backend]
    with connect(db_url) as conn:
        rows = conn.cursor().execute(descending_sql).fetchall()
    assert [row[0].lower() for row in rows] == ["currentpriority"]


def test_a_job_row_at_full_width_fits(db_url):
    """Every string column at its declared length, in 4-byte characters (MariaDB row-size limit)."""
    row = {}
    for name, kind, length in JOB_COLUMNS:
        if name not in TABLE_ATTRIBUTES:
            continue
        row[name] = {"int": 2**62, "float": 1.25, "str": "\U0001F600" * length,
                     "datetime": dt.datetime(2024, 1, 1, 0, 0, 0, 1)}[kind]
    columns = ", ".join(row)
    binds = ", ".join(f":{name}" for name in row)
    with connect(db_url) as conn:
        conn.begin()
        conn.cursor().execute(f"INSERT INTO jobs_active ({columns}) VALUES ({binds})", row)
        conn.commit()
        stored = conn.cursor().execute(f"SELECT {columns} FROM jobs_active").fetchone()
    assert dict(zip(row, stored)) == row


def test_init_db_refuses_an_initialised_database_unless_if_missing(db_url):
    assert db_admin.init_db(db_url, if_missing=True) is False
    with pytest.raises(errors.DBError, match="already initialised"):
        db_admin.init_db(db_url)


def upgrade_to(db_url: str, revision: str) -> None:
    engine = db_admin.create_engine(db_url)
    try:
        with engine.begin() as connection:
            command.upgrade(db_admin.alembic_config(connection), revision)
    finally:
        engine.dispose()


def test_check_reports_a_database_behind_head(empty_db_url):
    upgrade_to(empty_db_url, "0001")
    ok, message = db_admin.check_db(empty_db_url)
    assert not ok
    assert "0001" in message and db_admin.head_revision() in message

    runner = CliRunner()
    result = runner.invoke(main, ["db", "check", "--db", empty_db_url])
    assert result.exit_code == 1
    assert "run 'pandasrv db upgrade'" in result.output

    result = runner.invoke(main, ["db", "upgrade", "--db", empty_db_url])
    assert result.exit_code == 0, result.output
    assert runner.invoke(main, ["db", "check", "--db", empty_db_url]).exit_code == 0


def test_cli_init_if_missing(empty_db_url):
    runner = CliRunner()
    assert runner.invoke(main, ["db", "check", "--db", empty_db_url]).exit_code == 1
    first = runner.invoke(main, ["db", "init", "--if-missing", "--db", empty_db_url])
    assert first.exit_code == 0, first.output
    assert "initialised" in first.output
    again = runner.invoke(main, ["db", "init", "--if-missing", "--db", empty_db_url])
    assert again.exit_code == 0 and "already initialised" in again.output
    assert runner.invoke(main, ["db", "init", "--db", empty_db_url]).exit_code == 1
    assert runner.invoke(main, ["db", "check", "--db", empty_db_url]).exit_code == 0


def test_sqlalchemy_urls():
    assert db_admin.sqlalchemy_url("postgresql://u@h/d").drivername == "postgresql+psycopg"
    assert db_admin.sqlalchemy_url("mysql://u@h/d").drivername == "mysql+pymysql"
    assert db_admin.sqlalchemy_url("mysql://u@h/d").query["charset"] == "utf8mb4"
    assert db_admin.sqlalchemy_url("sqlite:///var/x.db").drivername == "sqlite"


def test_declared_table_reads_its_column_line():
    """declared_table's DDL-like line: kinds, lengths, keys (never auto-incremented), NOT NULL; a typo is
    an error at import time, naming the table and the column."""
    table = schema.declared_table("t_declared", "id int key, n int32 required, name str(12), body text, at datetime")
    try:
        assert [c.name for c in table.columns] == ["id", "n", "name", "body", "at"]
        assert table.c.id.primary_key and table.c.id.autoincrement is False
        assert isinstance(table.c.n.type, sa.Integer) and not isinstance(table.c.n.type, sa.BigInteger)
        assert table.c.n.nullable is False and table.c.name.nullable is True
        assert table.c.name.type.length == 12
        with pytest.raises(ValueError, match="t_bad: cannot read column 'name str\\(12'"):
            schema.declared_table("t_bad", "id int key, name str(12")
        with pytest.raises(ValueError, match="unknown flag 'nullable' of column id"):
            schema.declared_table("t_bad2", "id int nullable")
        with pytest.raises(ValueError, match="unknown column kind 'varchar'"):
            schema.declared_table("t_bad3", "id varchar(3)")
    finally:
        for name in ("t_declared", "t_bad", "t_bad2", "t_bad3"):
            if name in schema.metadata.tables:
                schema.metadata.remove(schema.metadata.tables[name])
