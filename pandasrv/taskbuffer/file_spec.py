"""FileSpec: one input, output or log file of a job, with PanDA's 22 attributes in PanDA's order.

panda-client's FileSpec has only the first 18 (spelling the first ``rowID``); states are decoded by
position, so shorter states simply leave the trailing attributes unset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from pandasrv.taskbuffer.wire import decode_state_value, from_wire_null, to_wire_null

FILE_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("row_ID", "int", 0), ("PandaID", "int", 0), ("GUID", "str", 64), ("lfn", "str", 256),
    ("type", "str", 20), ("dataset", "str", 255), ("status", "str", 64), ("prodDBlock", "str", 255),
    ("prodDBlockToken", "str", 250), ("dispatchDBlock", "str", 255), ("dispatchDBlockToken", "str", 250),
    ("destinationDBlock", "str", 255), ("destinationDBlockToken", "str", 250), ("destinationSE", "str", 250),
    ("fsize", "int", 0), ("md5sum", "str", 40), ("checksum", "str", 110), ("scope", "str", 30),
    ("jediTaskID", "int", 0), ("datasetID", "int", 0), ("fileID", "int", 0), ("attemptNr", "int", 0),
)
FILE_ATTRIBUTES: tuple[str, ...] = tuple(name for name, _, _ in FILE_COLUMNS)
FILE_KINDS: dict[str, str] = {name: kind for name, kind, _ in FILE_COLUMNS}
FILE_LENGTHS: dict[str, int] = {name: length for name, kind, length in FILE_COLUMNS if kind == "str"}
FILE_ZERO_ATTRIBUTES: frozenset[str] = frozenset(("fsize",))

assert len(FILE_ATTRIBUTES) == 22


class FileSpec:
    """A file of a job. Unset attributes are None here and "NULL" on the wire."""

    _attributes = FILE_ATTRIBUTES
    __slots__ = FILE_ATTRIBUTES

    if TYPE_CHECKING:
        # The attributes are the names of FILE_COLUMNS (the slots above), set for every instance; mypy sees
        # them as Any, the value of any column kind (a name outside the table fails at run time).
        def __getattr__(self, name: str) -> Any: ...
        def __setattr__(self, name: str, value: Any) -> None: ...

    def __init__(self, **values: Any) -> None:
        for name in FILE_ATTRIBUTES:
            object.__setattr__(self, name, None)
        for name, value in values.items():
            setattr(self, name, value)

    def __repr__(self) -> str:
        return f"FileSpec(lfn={self.lfn!r}, type={self.type!r}, status={self.status!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FileSpec) and self.values() == other.values()

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FILE_ATTRIBUTES}

    def normalise(self) -> "FileSpec":
        from pandasrv.taskbuffer.job_spec import coerce

        for name, kind, _ in FILE_COLUMNS:
            object.__setattr__(self, name, coerce(kind, from_wire_null(getattr(self, name))))
        return self

    def row(self, columns: Iterable[str] = FILE_ATTRIBUTES) -> dict[str, Any]:
        from pandasrv.taskbuffer.job_spec import coerce

        out: dict[str, Any] = {}
        for name in columns:
            value = coerce(FILE_KINDS[name], from_wire_null(getattr(self, name)))
            if value is None and name in FILE_ZERO_ATTRIBUTES:
                value = 0
            limit = FILE_LENGTHS.get(name)
            if limit and isinstance(value, str) and len(value) > limit:
                value = value[:limit]
            out[name] = value
        return out

    def to_state(self) -> list[Any]:
        """22 values ("NULL" for unset) followed by the owner slot (always null on the wire)."""
        return [to_wire_null(getattr(self, name)) for name in FILE_ATTRIBUTES] + [None]

    @classmethod
    def from_state(cls, state: list[Any]) -> "FileSpec":
        if not isinstance(state, list):
            raise ValueError("a file state must be a list")
        if len(state) > len(FILE_ATTRIBUTES) + 1:
            raise ValueError(f"a file state has at most {len(FILE_ATTRIBUTES) + 1} elements, got {len(state)}")
        from pandasrv.taskbuffer.job_spec import decode_value

        spec = cls.__new__(cls)
        # The element after the attributes is the owner slot; a short client state puts it earlier.
        values = state[: len(FILE_ATTRIBUTES)]
        if values and values[-1] is None and len(state) <= len(FILE_ATTRIBUTES):
            values = values[:-1]
        for (name, kind, _), value in zip(FILE_COLUMNS, values):
            object.__setattr__(spec, name, decode_value(kind, value))
        for name in FILE_ATTRIBUTES[len(values):]:
            object.__setattr__(spec, name, None)
        return spec

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FILE_ATTRIBUTES}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FileSpec":
        spec = cls()
        for name in FILE_ATTRIBUTES:
            key = "rowID" if name == "row_ID" and "rowID" in data else name
            if key in data:
                object.__setattr__(spec, name, from_wire_null(decode_state_value(data[key])))
        return spec.normalise()

    def __getstate__(self) -> list[Any]:
        return [to_wire_null(getattr(self, name)) for name in FILE_ATTRIBUTES] + [None]

    def __setstate__(self, state: list[Any]) -> None:
        for name in FILE_ATTRIBUTES:
            object.__setattr__(self, name, None)
        for name, value in zip(FILE_ATTRIBUTES, state[: len(FILE_ATTRIBUTES)]):
            object.__setattr__(self, name, from_wire_null(value))
