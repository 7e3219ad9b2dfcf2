"""FileSpec: one input, output or log file of a job, with PanDA's 22 attributes in PanDA's order.

panda-client's FileSpec has only the first 18 (spelling the first ``rowID``); states are decoded by
position, so shorter states simply leave the trailing attributes unset.
"""

from __future__ import annotations

from typing import Any, Self

from pandasrv.taskbuffer.spec import Column, Spec

FILE_COLUMNS: tuple[Column, ...] = (
    ("row_ID", "int", 0), ("PandaID", "int", 0), ("GUID", "str", 64), ("lfn", "str", 256),
    ("type", "str", 20), ("dataset", "str", 255), ("status", "str", 64), ("prodDBlock", "str", 255),
    ("prodDBlockToken", "str", 250), ("dispatchDBlock", "str", 255), ("dispatchDBlockToken", "str", 250),
    ("destinationDBlock", "str", 255), ("destinationDBlockToken", "str", 250), ("destinationSE", "str", 250),
    ("fsize", "int", 0), ("md5sum", "str", 40), ("checksum", "str", 110), ("scope", "str", 30),
    ("jediTaskID", "int", 0), ("datasetID", "int", 0), ("fileID", "int", 0), ("attemptNr", "int", 0),
)
FILE_ATTRIBUTES: tuple[str, ...] = tuple(name for name, _, _ in FILE_COLUMNS)
FILE_ZERO_ATTRIBUTES: frozenset[str] = frozenset(("fsize",))

assert len(FILE_ATTRIBUTES) == 22


class FileSpec(Spec, columns=FILE_COLUMNS, zero_when_unset=FILE_ZERO_ATTRIBUTES, aliases={"row_ID": "rowID"},
               noun="file", shown=("lfn", "type", "status")):
    """A file of a job. Unset attributes are None here and "NULL" on the wire."""

    __slots__ = FILE_ATTRIBUTES

    def to_state(self) -> list[Any]:
        """22 values ("NULL" for unset) followed by the owner slot (always null on the wire)."""
        return self._wire_values() + [None]

    @classmethod
    def from_state(cls, state: list[Any]) -> Self:
        cls._check_state(state)
        # The element after the attributes is the owner slot; a short client state puts it earlier.
        values = state[: len(FILE_ATTRIBUTES)]
        if values and values[-1] is None and len(state) <= len(FILE_ATTRIBUTES):
            values = values[:-1]
        return cls._decoded(values)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls._from_mapping(data).normalise()

    def __getstate__(self) -> list[Any]:
        return self._wire_values() + [None]
