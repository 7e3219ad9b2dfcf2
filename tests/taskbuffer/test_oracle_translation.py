"""Bind translation without a database: Oracle (no live server in CI) and the pyformat drivers."""

from __future__ import annotations

import pytest

from pandasrv.taskbuffer import errors
from pandasrv.taskbuffer.drivers import driver_for
from pandasrv.taskbuffer.drivers.sql_binds import to_oracle, to_pyformat


def test_oracle_keeps_plain_binds():
    statement = to_oracle("SELECT PandaID FROM jobs_active WHERE computingSite = :site AND jobStatus = :status")
    assert statement.sql == "SELECT PandaID FROM jobs_active WHERE computingSite = :site AND jobStatus = :status"
    assert statement.params({"site": "S", "status": "activated"}) == {"site": "S", "status": "activated"}


def test_oracle_renames_reserved_bind_names_consistently():
    statement = to_oracle("UPDATE files SET fsize = :size WHERE lfn = :file OR :size > :level")
    assert statement.sql == "UPDATE files SET fsize = :b_size WHERE lfn = :b_file OR :b_size > :b_level"
    assert statement.params({"size": 3, "file": "a", "level": 1}) == {"b_size": 3, "b_file": "a", "b_level": 1}


def test_oracle_passes_only_the_binds_the_statement_uses():
    statement = to_oracle("SELECT 1 FROM dual WHERE :a = 1")
    assert statement.params({"a": 1, "unused": 2}) == {"a": 1}


def test_oracle_leaves_literals_comments_and_quoted_identifiers_alone():
    sql = "SELECT '12:30', ':size', \"odd:name\" FROM t -- :comment\nWHERE x = :x /* :y */"
    statement = to_oracle(sql)
    assert statement.sql == sql
    assert statement.params({"x": 1, "y": 2, "comment": 3, "size": 4}) == {"x": 1}


def test_oracle_literal_with_doubled_quote():
    statement = to_oracle("SELECT 'it''s :not' FROM dual WHERE a = :a")
    assert statement.sql == "SELECT 'it''s :not' FROM dual WHERE a = :a"


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT PandaID FROM t ORDER BY PandaID LIMIT 10", "SELECT PandaID FROM t ORDER BY PandaID FETCH FIRST 10 ROWS ONLY"),
    ("SELECT PandaID FROM t ORDER BY PandaID limit :n", "SELECT PandaID FROM t ORDER BY PandaID FETCH FIRST :n ROWS ONLY"),
    ("SELECT x FROM t LIMIT :rows", "SELECT x FROM t FETCH FIRST :b_rows ROWS ONLY"),
    ("SELECT 'LIMIT 5' FROM dual", "SELECT 'LIMIT 5' FROM dual"),
    ("DELETE FROM t WHERE a = :a;  ", "DELETE FROM t WHERE a = :a"),
])
def test_oracle_limit_and_trailing_semicolon(sql, expected):
    assert to_oracle(sql).sql == expected


def test_translations_are_cached_per_sql_text():
    sql = "SELECT :a FROM dual"
    assert to_oracle(sql) is to_oracle(sql)
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


def test_oracle_driver_is_built_without_connecting():
    pytest.importorskip("oracledb")
    driver = driver_for("oracle://scott:tiger@db.example:1521/FREEPDB1", statement_timeout=5)
    assert driver.backend == "oracle"
    assert driver.translate("SELECT :size FROM dual LIMIT 1").sql == "SELECT :b_size FROM dual FETCH FIRST 1 ROWS ONLY"


@pytest.mark.parametrize(("code", "full_code", "integrity", "expected"), [
    (1, "ORA-00001", True, errors.IntegrityError),
    (54, "ORA-00054", False, errors.LockTimeout),
    (60, "ORA-00060", False, errors.LockTimeout),
    (1013, "ORA-01013", False, errors.StatementTimeout),
    (0, "DPY-4024", False, errors.StatementTimeout),
    (28, "ORA-00028", False, errors.ConnectionLost),
    (3113, "ORA-03113", False, errors.ConnectionLost),
    (0, "DPY-4011", False, errors.ConnectionLost),
    (942, "ORA-00942", False, errors.DBError),
])
def test_oracle_error_classification(code, full_code, integrity, expected):
    oracle = pytest.importorskip("pandasrv.taskbuffer.drivers.oracle")
    assert oracle.classify(code, full_code, integrity) is expected


def test_unsupported_scheme():
    with pytest.raises(errors.DBError):
        driver_for("mssql://sa@localhost/db")
