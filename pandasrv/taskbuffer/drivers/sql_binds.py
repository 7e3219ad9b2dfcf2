"""Translate the project's one bind style (``:name``) into each driver's own.

All project SQL is written once with ``:name`` binds. psycopg and PyMySQL want ``%(name)s`` and treat
every other ``%`` as a format character. The scanner skips string literals, quoted identifiers, comments
and PostgreSQL ``::`` casts, so text such as ``'12:30'`` is never mistaken for a bind. Translations are cached per SQL text: the
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
_FLAGS = re.S | re.X | re.I

_PYFORMAT_SCANNERS = {
    escapes: re.compile(f"(?P<literal>{literal})|{_SKIPPED}|{_BIND}|%", _FLAGS)
    for escapes, literal in ((False, _STANDARD_LITERAL), (True, _BACKSLASH_LITERAL))
}


@dataclass(frozen=True)
class Translated:
    """A statement in a driver's bind style."""

    sql: str


@functools.lru_cache(maxsize=4096)
def to_pyformat(sql: str, backslash_escapes: bool = False) -> Translated:
    """``:name`` → ``%(name)s`` and every literal ``%`` → ``%%`` (psycopg, PyMySQL)."""

    def replace(match: re.Match[str]) -> str:
        if match.group("name"):
            return f"%({match.group('name')})s"
        return match.group(0).replace("%", "%%")

    return Translated(_PYFORMAT_SCANNERS[backslash_escapes].sub(replace, sql))
