"""Value conventions shared by every wire form of jobs and files, and the coercion of wire values.

PanDA writes an unset value as the string "NULL" inside positional states, and a datetime as
``{"_datetime_object": "..."}`` inside states but ``{"__datetime__": iso}`` in v1 replies. Clients send
numbers and datetimes as strings; ``coerce`` turns them into the Python type of their column kind
("int", "float", "str", "text" or "datetime", as the column tables of ``job_spec``/``file_spec`` declare).
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

NULL = "NULL"
TEXT_KINDS = frozenset(("str", "text"))  # the column kinds whose Python type is str
STATE_DATETIME_KEY = "_datetime_object"
REPLY_DATETIME_KEY = "__datetime__"


def to_wire_null(value: Any) -> Any:
    return NULL if value is None else value


def from_wire_null(value: Any) -> Any:
    return None if value == NULL else value


def decode_state_value(value: Any) -> Any:
    """Turn a ``{"_datetime_object": ...}`` or ``{"__datetime__": ...}`` marker into a datetime."""
    if isinstance(value, dict) and len(value) == 1:
        (key, text), = value.items()
        if key in (STATE_DATETIME_KEY, REPLY_DATETIME_KEY) and isinstance(text, str):
            return _dt.datetime.fromisoformat(text)
    return value


def encode_state_value(value: Any) -> Any:
    """The inverse of decode_state_value for datetimes inside positional states."""
    if isinstance(value, _dt.datetime):
        return {STATE_DATETIME_KEY: value.strftime("%Y-%m-%d %H:%M:%S.%f")}
    return value


def json_default(value: Any) -> Any:
    """``json.dumps`` hook for v1 replies: datetimes as ``{"__datetime__": iso}``, Decimals as numbers."""
    if isinstance(value, _dt.datetime):
        return {REPLY_DATETIME_KEY: value.isoformat()}
    if isinstance(value, _dt.date):
        return {REPLY_DATETIME_KEY: _dt.datetime(value.year, value.month, value.day).isoformat()}
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_object_hook(obj: dict[str, Any]) -> Any:
    """``json.loads`` hook that turns either datetime marker back into a datetime."""
    return decode_state_value(obj) if len(obj) == 1 else obj


INT64 = (-(2**63), 2**63 - 1)


def coerce(kind: str, value: Any) -> Any:
    """Convert a wire value (often a string) to the Python type of its column; None stays None.

    A value no column can hold (beyond 64 bits, not finite) is a ValueError, like any other bad value."""
    if value is None:
        return None
    if kind == "int":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            number = value
        else:
            text = str(value).strip()
            if text == "":
                return None
            real = float(text)
            if not math.isfinite(real):
                raise ValueError(f"{text[:40]!r} is not a finite number")
            number = int(real)
        if not INT64[0] <= number <= INT64[1]:
            raise ValueError(f"{number} does not fit a 64-bit column")
        return number
    if kind == "float":
        try:
            real = float(value)
        except OverflowError:
            raise ValueError("number too large") from None
        if not math.isfinite(real):
            raise ValueError(f"{value!r} is not a finite number")
        return real
    if kind == "datetime":
        if isinstance(value, _dt.datetime):
            return value.replace(tzinfo=None) if value.tzinfo is None else value.astimezone(_dt.UTC).replace(tzinfo=None)
        return _dt.datetime.fromisoformat(str(value).replace("/", "-")).replace(tzinfo=None)
    if kind == "str":
        return str(value)
    return value if isinstance(value, str) else str(value)


def decode_value(kind: str, value: Any) -> Any:
    """One value of a wire state to its column type: "NULL" is None, datetime markers are decoded.

    Submissions decode 126 of these per job, so the common cases (unset, already a string) return early.
    """
    if value is None or value == NULL:
        return None
    if type(value) is dict:
        value = decode_state_value(value)
    if kind == "str" and type(value) is str:
        return value
    return coerce(kind, value)
