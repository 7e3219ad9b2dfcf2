"""Spec: a record built from a column table, the model that JobSpec and FileSpec share.

A column table lists ``(name, kind, length)`` in wire order (see ``wire.coerce`` for the kinds; the
length bounds "str" columns). A subclass names its table, and the attributes whose unset value is stored
as 0, in its class statement::

    class FileSpec(Spec, columns=FILE_COLUMNS, zero_when_unset=frozenset(("fsize",)), noun="file"):
        __slots__ = FILE_ATTRIBUTES

and gets from here everything that only depends on the table: construction, equality, coercion to the
column types, the row written to the database, the positional state and dict wire forms of the
attributes, and the pickle state. What is not in the table (a job's Files, a file's owner slot) the
subclass adds around these. The ``__slots__`` must be spelt in the subclass body, because Python reads
them before any hook of this class can run.
"""

from __future__ import annotations

import operator
from collections import deque
from itertools import repeat
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Mapping, Self

from pandasrv.taskbuffer.wire import (
    INT64,
    NULL,
    TEXT_KINDS,
    coerce,
    decode_state_value,
    decode_value,
    from_wire_null,
    to_wire_null,
)

Column = tuple[str, str, int]
# How row() writes one column: (name, kind, holds text, the stored form of unset, the size a string is cut to).
RowStep = tuple[str, str, bool, Any, int]


def set_slots(spec: Any, names: Iterable[str], values: Iterable[Any]) -> None:
    """Set the slots ``names`` of ``spec`` to ``values``, bypassing any ``__setattr__``: one C loop, about
    twice as fast as a Python loop of ``object.__setattr__`` (126 per job, per decode and per pipe crossing)."""
    deque(map(object.__setattr__, repeat(spec), names, values), maxlen=0)


class Spec:
    """A record whose attributes are the names of a column table. Unset is None here, "NULL" on the wire."""

    __slots__ = ()

    _columns: ClassVar[tuple[Column, ...]]
    _names: ClassVar[tuple[str, ...]]
    _kinds: ClassVar[dict[str, str]]
    _lengths: ClassVar[dict[str, int]]
    _zero_when_unset: ClassVar[frozenset[str]]
    _stored: ClassVar[tuple[str, ...]]
    _row_plan: ClassVar[tuple[RowStep, ...]]
    _row_values: ClassVar[operator.attrgetter[Any]]
    _text: ClassVar[tuple[bool, ...]]
    _kind_list: ClassVar[tuple[str, ...]]
    _aliases: ClassVar[Mapping[str, str]]
    _shown: ClassVar[tuple[str, ...]]
    _noun: ClassVar[str]

    if TYPE_CHECKING:
        # The attributes are the names of the column table (the slots of the subclass), set for every
        # instance; mypy sees them as Any, the value of any column kind (a name outside the table fails at
        # run time).
        def __getattr__(self, name: str) -> Any: ...
        def __setattr__(self, name: str, value: Any) -> None: ...

    def __init_subclass__(cls, *, columns: tuple[Column, ...], noun: str, shown: tuple[str, ...],
                          zero_when_unset: frozenset[str] = frozenset(), stored: tuple[str, ...] | None = None,
                          aliases: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        """``stored``: the attributes a database row holds (all by default); ``aliases``: another spelling
        of an attribute that dict forms may use (panda-client's ``rowID``); ``shown``: what repr shows."""
        super().__init_subclass__(**kwargs)
        cls._columns = columns
        cls._names = tuple(name for name, _, _ in columns)
        cls._kinds = {name: kind for name, kind, _ in columns}
        cls._lengths = {name: length for name, kind, length in columns if kind == "str"}
        cls._zero_when_unset = zero_when_unset
        cls._stored = cls._names if stored is None else stored
        cls._row_plan = cls._plan(cls._stored)
        cls._row_values = operator.attrgetter(*cls._stored)
        cls._text = tuple(kind in TEXT_KINDS for _, kind, _ in columns)
        cls._kind_list = tuple(kind for _, kind, _ in columns)
        cls._aliases = aliases or {}
        cls._shown = shown
        cls._noun = noun

    def __init__(self, **values: Any) -> None:
        self._clear()
        for name, value in values.items():
            setattr(self, name, value)

    def _clear(self, names: Iterable[str] | None = None) -> None:
        set_slots(self, self._names if names is None else names, repeat(None))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._shown)
        return f"{type(self).__name__}({shown})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, type(self)) and self.values() == other.values()

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._names}

    def normalise(self) -> Self:
        """Coerce every attribute to its column type (wire states carry strings and "NULL")."""
        for name, kind, _ in self._columns:
            object.__setattr__(self, name, coerce(kind, from_wire_null(getattr(self, name))))
        return self

    @classmethod
    def _plan(cls, columns: Iterable[str]) -> tuple[RowStep, ...]:
        return tuple((name, cls._kinds[name], cls._kinds[name] in TEXT_KINDS, 0 if name in cls._zero_when_unset else None,
                      cls._lengths.get(name, 0)) for name in columns)

    def row(self, columns: Iterable[str] | None = None) -> dict[str, Any]:
        """The values to write into the table (the stored attributes by default): unset zero-attributes
        become 0, strings are cut to their column's size.

        Submissions write ~125 values per job, nearly all unset or already text (decoded by from_state), so
        those two cases (and in-range ints) are handled inline; every other value goes through ``coerce`` (tests/taskbuffer/
        test_spec_row.py checks the shortcut against coerce for generated values)."""
        plan = self._row_plan if columns is None else self._plan(columns)
        values = self._row_values(self) if columns is None else [getattr(self, step[0]) for step in plan]
        out: dict[str, Any] = {}
        for (name, kind, text, unset, limit), value in zip(plan, values):
            if value is None or (text and value == NULL):
                value = unset
            elif not ((text and type(value) is str) or (kind == "int" and type(value) is int
                                                        and INT64[0] <= value <= INT64[1])):
                value = coerce(kind, from_wire_null(value))
                if value is None:
                    value = unset
            if limit and type(value) is str and len(value) > limit:
                value = value[:limit]
            out[name] = value
        return out

    # --- wire forms of the attributes -----------------------------------------------------------
    def _wire_values(self) -> list[Any]:
        """The attributes in table order, "NULL" for unset: the head of the state and pickle forms."""
        return [to_wire_null(getattr(self, name)) for name in self._names]

    @classmethod
    def _check_state(cls, state: Any) -> None:
        """A state is the attribute list plus one element after it (what that is, the subclass says)."""
        if not isinstance(state, list):
            raise ValueError(f"a {cls._noun} state must be a list")
        if len(state) > len(cls._names) + 1:
            raise ValueError(f"a {cls._noun} state has at most {len(cls._names) + 1} elements, got {len(state)}")

    @classmethod
    def _decoded(cls, values: list[Any]) -> Self:
        """A spec from the leading attribute values of a state; missing trailing attributes stay unset.

        Unset and text values (most of a state) are decoded inline, anything else by ``decode_value``."""
        spec = cls.__new__(cls)
        set_slots(spec, cls._names, [None if value == NULL or value is None else value if text and type(value) is str
                                     else decode_value(kind, value)
                                     for kind, text, value in zip(cls._kind_list, cls._text, values)])
        spec._clear(cls._names[len(values):])
        return spec

    def to_dict(self) -> dict[str, Any]:
        """The v1 dict form of the attributes (None for unset)."""
        return self.values()

    @classmethod
    def _from_mapping(cls, data: Mapping[str, Any]) -> Self:
        """The attributes a dict form names, datetime markers decoded, not yet coerced."""
        spec = cls()
        for name in cls._names:
            alias = cls._aliases.get(name)
            key = alias if alias is not None and alias in data else name
            if key in data:
                object.__setattr__(spec, name, from_wire_null(decode_state_value(data[key])))
        return spec

    # --- pickle (legacy clients; only ever loaded through the allow-list unpickler) -------------
    def __setstate__(self, state: list[Any]) -> None:
        self._clear()
        for name, value in zip(self._names, state[: len(self._names)]):
            object.__setattr__(self, name, from_wire_null(value))
