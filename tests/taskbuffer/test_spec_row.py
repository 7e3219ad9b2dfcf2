"""row() and from_state() take shortcuts for unset and text values; they must agree with ``coerce`` and
``decode_value`` applied one value at a time (the plain definition) for any value a client may send."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pandasrv.taskbuffer.file_spec import FileSpec
from pandasrv.taskbuffer.job_spec import JobSpec
from pandasrv.taskbuffer.spec import Spec
from pandasrv.taskbuffer.wire import NULL, coerce, decode_value, encode_state_value, from_wire_null

VALUES = st.one_of(
    st.none(), st.just(NULL), st.just(""), st.just(" 7 "), st.text(max_size=40), st.text(min_size=240, max_size=260),
    st.text(alphabet="0123456789.-e", max_size=8),
    st.integers(min_value=-(2**64), max_value=2**64), st.booleans(), st.floats(allow_nan=True, allow_infinity=True),
    st.datetimes(), st.datetimes(timezones=st.just(_dt.UTC)),
)


def plain_row(spec: Spec, columns: tuple[str, ...]) -> dict[str, Any]:
    """The row by definition: coerce every value, 0 for unset zero-attributes, strings cut."""
    out: dict[str, Any] = {}
    for name in columns:
        value = coerce(spec._kinds[name], from_wire_null(getattr(spec, name)))
        if value is None and name in spec._zero_when_unset:
            value = 0
        limit = spec._lengths.get(name)
        if limit and isinstance(value, str) and len(value) > limit:
            value = value[:limit]
        out[name] = value
    return out


def outcome(compute: Any) -> Any:
    try:
        return compute()
    except (ValueError, TypeError, OverflowError) as exc:
        return type(exc)


@pytest.mark.parametrize("cls", [JobSpec, FileSpec])
@settings(max_examples=60, deadline=None)
@given(values=st.lists(VALUES, min_size=len(JobSpec._names), max_size=len(JobSpec._names)))
def test_row_is_coerce_of_every_column(cls: type[Spec], values: list[Any]) -> None:
    spec = cls()
    for name, value in zip(cls._names, values):
        object.__setattr__(spec, name, value)
    assert outcome(spec.row) == outcome(lambda: plain_row(spec, spec._stored))
    some = cls._stored[::7]
    assert outcome(lambda: spec.row(some)) == outcome(lambda: plain_row(spec, some))


@pytest.mark.parametrize("cls", [JobSpec, FileSpec])
@settings(max_examples=60, deadline=None)
@given(drawn=st.lists(VALUES, max_size=len(JobSpec._names)))
def test_decoded_is_decode_value_of_every_value(cls: type[Spec], drawn: list[Any]) -> None:
    values = [encode_state_value(value) for value in drawn[:len(cls._names)]]
    n = len(values)

    def plain() -> dict[str, Any]:
        decoded = [decode_value(kind, value) for (_, kind, _), value in zip(cls._columns, values)]
        return dict(zip(cls._names, decoded + [None] * (len(cls._names) - n)))

    assert outcome(lambda: cls._decoded(values).values()) == outcome(plain)
