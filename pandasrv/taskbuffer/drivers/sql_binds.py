"""Translate the project's one bind style (``:name``) into each driver's own.

All project SQL is written once with ``:name`` binds. psycopg and PyMySQL want ``%(name)s`` and treat
every other ``%`` as a format character; Oracle rejects bind names that are reserved words and has no
``LIMIT``. The scanner skips string literals, quoted identifiers, comments and PostgreSQL ``::`` casts,
so text such as ``'12:30'`` is never mistaken for a bind. Translations are cached per SQL text: the
same few hundred statements are executed over and over.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

_STANDARD_LITERAL = r"'(?:[^']|'')*'"
_BACKSLASH_LITERAL = r"'(?:[^'\\]|''|\\.)*'"  # MySQL/MariaDB: backslash escapes inside literals
# Alternatives are tried left to right at each position; the first ones swallow text to keep as is.
_SKIPPED = r"""
    "(?:[^"]|"")*"                                      # quoted identifier
  | --[^\n]*                                            # line comment
  | /\*.*?\*/                                           # block comment
  | ::                                                  # PostgreSQL cast
"""
_BIND = r":(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
_LIMIT = r"(?P<limit>\bLIMIT\s+(?::(?P<count_bind>[A-Za-z_][A-Za-z0-9_]*)|(?P<count>\d+)))"
_FLAGS = re.S | re.X | re.I

_PYFORMAT_SCANNERS = {
    escapes: re.compile(f"(?P<literal>{literal})|{_SKIPPED}|{_BIND}|%", _FLAGS)
    for escapes, literal in ((False, _STANDARD_LITERAL), (True, _BACKSLASH_LITERAL))
}
_ORACLE_SCANNER = re.compile(f"(?P<literal>{_STANDARD_LITERAL})|{_SKIPPED}|{_LIMIT}|{_BIND}|;\\s*\\Z", _FLAGS)

# Oracle reserved words that are natural bind names (``:size``, ``:level``...): ORA-01745 if used.
ORACLE_RESERVED = frozenset("""
    access add all alter and any as asc audit between by char check cluster column comment compress
    connect create current date decimal default delete desc distinct drop else exclusive exists file
    float for from grant group having identified immediate in increment index initial insert integer
    intersect into is level like lock long maxextents minus mlslabel mode modify noaudit nocompress not
    nowait null number of offline on online option or order pctfree prior public raw rename resource
    revoke row rowid rownum rows select session set share size smallint start successful synonym
    sysdate table then to trigger uid union unique update user validate values varchar varchar2 view
    whenever where with
""".split())


@dataclass(frozen=True)
class Translated:
    """A statement in a driver's bind style.

    ``renames`` is set for Oracle only: (project name, driver name) for every bind of the statement,
    because Oracle refuses both reserved-word names and values for binds the statement lacks.
    """

    sql: str
    renames: tuple[tuple[str, str], ...] | None = None

    def params(self, values: dict) -> dict:
        """The bind values to hand to the driver."""
        if self.renames is None:
            return values
        return {driver: values[name] for name, driver in self.renames if name in values}


@functools.lru_cache(maxsize=4096)
def to_pyformat(sql: str, backslash_escapes: bool = False) -> Translated:
    """``:name`` → ``%(name)s`` and every literal ``%`` → ``%%`` (psycopg, PyMySQL)."""

    def replace(match: re.Match[str]) -> str:
        if match.group("name"):
            return f"%({match.group('name')})s"
        return match.group(0).replace("%", "%%")

    return Translated(_PYFORMAT_SCANNERS[backslash_escapes].sub(replace, sql))


@functools.lru_cache(maxsize=4096)
def to_oracle(sql: str) -> Translated:
    """Keep ``:name`` but rename reserved-word binds (``:size`` → ``:b_size``), turn ``LIMIT n`` into
    ``FETCH FIRST n ROWS ONLY`` and drop a trailing semicolon."""
    renames: dict[str, str] = {}

    def bind(name: str) -> str:
        if name not in renames:
            renames[name] = f"b_{name}" if name.lower() in ORACLE_RESERVED else name
        return ":" + renames[name]

    def replace(match: re.Match[str]) -> str:
        if match.group("name"):
            return bind(match.group("name"))
        if match.group("limit"):
            count = bind(match.group("count_bind")) if match.group("count_bind") else match.group("count")
            return f"FETCH FIRST {count} ROWS ONLY"
        if match.group(0).startswith(";"):
            return ""
        return match.group(0)

    translated = _ORACLE_SCANNER.sub(replace, sql)
    return Translated(translated, tuple(renames.items()))
