"""Value conventions shared by every wire form of jobs and files.

PanDA writes an unset value as the string "NULL" inside positional states, and a datetime as
``{"_datetime_object": "..."}`` inside states but ``{"__datetime__": iso}`` in v1 replies.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

NULL = "NULL"
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
