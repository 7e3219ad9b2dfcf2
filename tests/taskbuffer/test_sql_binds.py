"""Bind translation without a database: the pyformat drivers (psycopg, PyMySQL)."""

from __future__ import annotations

import pytest

from pandasrv.taskbuffer import errors
from pandasrv.taskbuffer.drivers import driver_for
from pandasrv.taskbuffer.drivers.sql_binds import to_pyformat


def test_translations_are_cached_per_sql_text():
    sql = "SELECT :a FROM t"
    assert to_pyformat(sql) is to_pyformat(sql)


def test_pyformat_binds_and_percent_escaping():
    sql = "SELECT '50%', '12:30', x::text FROM t WHERE a LIKE :pattern AND b = :b -- 100% :c\n"
    assert to_pyformat(sql).sql == (
        "SELECT '50%%', '12:30', x::text FROM t WHERE a LIKE %(pattern)s AND b = %(b)s -- 100%% :c\n"
    )
    assert to_pyformat("SELECT a % 2 FROM t").sql == "SELECT a %% 2 FROM t"


def test_pyformat_backslash_escapes_only_for_mariadb():
    sql = r"SELECT 'a\':b' , :c"
    assert to_pyformat(sql, backslash_escapes=True).sql == r"SELECT 'a\':b' , %(c)s"
    # Standard SQL: the backslash is an ordinary character, so the literal ends after it.
    assert to_pyformat(r"SELECT 'C:\' , :c").sql == r"SELECT 'C:\' , %(c)s"


@pytest.mark.parametrize("url", ["mssql://sa@localhost/db", "oracle://scott:tiger@db.example:1521/FREEPDB1"])
def test_unsupported_scheme(url):
    with pytest.raises(errors.DBError, match="unsupported database URL scheme"):
        driver_for(url)
