"""JobSpec: one PanDA job, with PanDA's 126 attributes in PanDA's order.

The order is part of the wire format: panda-client sends job states as positional lists and
legacy clients pickle them the same way, so the tuple below must never be reordered.
The column kinds declared here are also the source of the job tables' DDL (see ``schema.py``).
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import TYPE_CHECKING, Any, Iterable

from pandasrv.taskbuffer.file_spec import FileSpec
from pandasrv.taskbuffer.wire import NULL, decode_state_value, from_wire_null, to_wire_null

# (name, kind, length): kind is "int", "float", "str", "text" or "datetime"; length applies to "str".
JOB_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("PandaID", "int", 0), ("jobDefinitionID", "int", 0), ("schedulerID", "str", 128),
    ("pilotID", "str", 200), ("creationTime", "datetime", 0), ("creationHost", "str", 128),
    ("modificationTime", "datetime", 0), ("modificationHost", "str", 128), ("AtlasRelease", "str", 64),
    ("transformation", "str", 250), ("homepackage", "str", 80), ("prodSeriesLabel", "str", 20),
    ("prodSourceLabel", "str", 20), ("prodUserID", "str", 250), ("assignedPriority", "int", 0),
    ("currentPriority", "int", 0), ("attemptNr", "int", 0), ("maxAttempt", "int", 0),
    ("jobStatus", "str", 15), ("jobName", "str", 256), ("maxCpuCount", "int", 0),
    ("maxCpuUnit", "str", 32), ("maxDiskCount", "int", 0), ("maxDiskUnit", "str", 4),
    ("ipConnectivity", "str", 5), ("minRamCount", "int", 0), ("minRamUnit", "str", 2),
    ("startTime", "datetime", 0), ("endTime", "datetime", 0), ("cpuConsumptionTime", "int", 0),
    ("cpuConsumptionUnit", "str", 128), ("commandToPilot", "str", 250), ("transExitCode", "str", 128),
    ("pilotErrorCode", "int", 0), ("pilotErrorDiag", "str", 500), ("exeErrorCode", "int", 0),
    ("exeErrorDiag", "str", 500), ("supErrorCode", "int", 0), ("supErrorDiag", "str", 250),
    ("ddmErrorCode", "int", 0), ("ddmErrorDiag", "str", 500), ("brokerageErrorCode", "int", 0),
    ("brokerageErrorDiag", "str", 250), ("jobDispatcherErrorCode", "int", 0),
    ("jobDispatcherErrorDiag", "str", 250), ("taskBufferErrorCode", "int", 0),
    ("taskBufferErrorDiag", "str", 300), ("computingSite", "str", 128), ("computingElement", "str", 128),
    ("jobParameters", "text", 0), ("metadata", "text", 0), ("prodDBlock", "str", 255),
    ("dispatchDBlock", "str", 255), ("destinationDBlock", "str", 255), ("destinationSE", "str", 250),
    ("nEvents", "int", 0), ("grid", "str", 50), ("cloud", "str", 50), ("cpuConversion", "float", 0),
    ("sourceSite", "str", 36), ("destinationSite", "str", 36), ("transferType", "str", 10),
    ("taskID", "int", 0), ("cmtConfig", "str", 250), ("stateChangeTime", "datetime", 0),
    ("prodDBUpdateTime", "datetime", 0), ("lockedby", "str", 128), ("relocationFlag", "int", 0),
    ("jobExecutionID", "int", 0), ("VO", "str", 16), ("pilotTiming", "str", 100),
    ("workingGroup", "str", 20), ("processingType", "str", 64), ("prodUserName", "str", 60),
    ("nInputFiles", "int", 0), ("countryGroup", "str", 20), ("batchID", "str", 80),
    ("parentID", "int", 0), ("specialHandling", "str", 80), ("jobsetID", "int", 0),
    ("coreCount", "int", 0), ("nInputDataFiles", "int", 0), ("inputFileType", "str", 32),
    ("inputFileProject", "str", 64), ("inputFileBytes", "int", 0), ("nOutputDataFiles", "int", 0),
    ("outputFileBytes", "int", 0), ("jobMetrics", "str", 500), ("workQueue_ID", "int", 0),
    ("jediTaskID", "int", 0), ("jobSubStatus", "str", 80), ("actualCoreCount", "int", 0),
    ("reqID", "int", 0), ("maxRSS", "int", 0), ("maxVMEM", "int", 0), ("maxSWAP", "int", 0),
    ("maxPSS", "int", 0), ("avgRSS", "int", 0), ("avgVMEM", "int", 0), ("avgSWAP", "int", 0),
    ("avgPSS", "int", 0), ("maxWalltime", "int", 0), ("nucleus", "str", 52), ("eventService", "int", 0),
    ("failedAttempt", "int", 0), ("hs06sec", "int", 0), ("gshare", "str", 32), ("hs06", "int", 0),
    ("totRCHAR", "int", 0), ("totWCHAR", "int", 0), ("totRBYTES", "int", 0), ("totWBYTES", "int", 0),
    ("rateRCHAR", "int", 0), ("rateWCHAR", "int", 0), ("rateRBYTES", "int", 0), ("rateWBYTES", "int", 0),
    ("resource_type", "str", 56), ("diskIO", "int", 0), ("memory_leak", "float", 0),
    ("memory_leak_x2", "float", 0), ("container_name", "str", 200), ("job_label", "str", 20),
    ("gco2_regional", "float", 0), ("gco2_global", "float", 0), ("cpu_architecture_level", "str", 20),
    ("outputFileType", "str", 32),
)

ATTRIBUTES: tuple[str, ...] = tuple(name for name, _, _ in JOB_COLUMNS)
KINDS: dict[str, str] = {name: kind for name, kind, _ in JOB_COLUMNS}
LENGTHS: dict[str, int] = {name: length for name, kind, length in JOB_COLUMNS if kind == "str"}

# Attributes whose unset value is stored as 0 rather than NULL (PanDA's _zeroAttrs).
ZERO_ATTRIBUTES: frozenset[str] = frozenset((
    "assignedPriority", "currentPriority", "attemptNr", "maxAttempt", "maxCpuCount", "maxDiskCount",
    "minRamCount", "cpuConsumptionTime", "pilotErrorCode", "exeErrorCode", "supErrorCode", "ddmErrorCode",
    "brokerageErrorCode", "jobDispatcherErrorCode", "taskBufferErrorCode", "nEvents", "relocationFlag",
    "jobExecutionID", "nOutputDataFiles", "outputFileBytes",
))

# jobParameters and metadata live in their own tables, never in the job tables.
TABLE_ATTRIBUTES: tuple[str, ...] = tuple(a for a in ATTRIBUTES if a not in ("jobParameters", "metadata"))

assert len(ATTRIBUTES) == 126


_INT64 = (-(2**63), 2**63 - 1)


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
        if not _INT64[0] <= number <= _INT64[1]:
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


class JobSpec:
    """A job as clients see it. Unset attributes are None here and "NULL" on the wire."""

    _attributes = ATTRIBUTES
    __slots__ = ATTRIBUTES + ("Files",)

    if TYPE_CHECKING:
        # The attributes are the names of JOB_COLUMNS (the slots above), set for every instance; mypy sees
        # them as Any, the value of any column kind (a name outside the table fails at run time).
        def __getattr__(self, name: str) -> Any: ...
        def __setattr__(self, name: str, value: Any) -> None: ...

    def __init__(self, **values: Any) -> None:
        for name in ATTRIBUTES:
            object.__setattr__(self, name, None)
        self.Files: list[FileSpec] = []
        for name, value in values.items():
            setattr(self, name, value)

    def __repr__(self) -> str:
        return f"JobSpec(PandaID={self.PandaID!r}, jobStatus={self.jobStatus!r}, jobName={self.jobName!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobSpec) and self.values() == other.values() and self.Files == other.Files

    def add_file(self, file: FileSpec) -> None:
        file.PandaID = self.PandaID
        self.Files.append(file)

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ATTRIBUTES}

    def normalise(self) -> "JobSpec":
        """Coerce every attribute to its column type (wire states carry strings and "NULL")."""
        for name, kind, _ in JOB_COLUMNS:
            object.__setattr__(self, name, coerce(kind, from_wire_null(getattr(self, name))))
        for file in self.Files:
            if not isinstance(file, FileSpec):
                raise ValueError(f"Files must hold FileSpecs, not {type(file).__name__}")
            file.normalise()
        return self

    def row(self, columns: Iterable[str] = TABLE_ATTRIBUTES) -> dict[str, Any]:
        """The values to write into a job table: unset zero-attributes become 0, strings are cut to size."""
        out: dict[str, Any] = {}
        for name in columns:
            value = coerce(KINDS[name], from_wire_null(getattr(self, name)))
            if value is None and name in ZERO_ATTRIBUTES:
                value = 0
            limit = LENGTHS.get(name)
            if limit and isinstance(value, str) and len(value) > limit:
                value = value[:limit]
            out[name] = value
        return out

    # --- wire forms -------------------------------------------------------------------------
    def to_state(self) -> list[Any]:
        """Positional state: 126 values ("NULL" for unset) followed by the list of file states."""
        return [to_wire_null(getattr(self, name)) for name in ATTRIBUTES] + [[f.to_state() for f in self.Files]]

    @classmethod
    def from_state(cls, state: list[Any]) -> "JobSpec":
        """Decode a positional state; shorter states leave trailing attributes unset."""
        if not isinstance(state, list):
            raise ValueError("a job state must be a list")
        if len(state) > len(ATTRIBUTES) + 1:
            raise ValueError(f"a job state has at most {len(ATTRIBUTES) + 1} elements, got {len(state)}")
        job = cls.__new__(cls)
        values = state[: len(ATTRIBUTES)]
        for (name, kind, _), value in zip(JOB_COLUMNS, values):
            object.__setattr__(job, name, decode_value(kind, value))
        for name in ATTRIBUTES[len(values):]:
            object.__setattr__(job, name, None)
        files = state[len(ATTRIBUTES)] if len(state) > len(ATTRIBUTES) else []
        if files in (None, "NULL"):
            files = []
        if not isinstance(files, list):
            raise ValueError("the last element of a job state must be the list of file states")
        job.Files = [FileSpec.from_state(f) for f in files]
        return job

    def to_dict(self) -> dict[str, Any]:
        """The v1 dict form: attribute names to values (None for unset) plus "Files"."""
        out: dict[str, Any] = {name: getattr(self, name) for name in ATTRIBUTES}
        out["Files"] = [f.to_dict() for f in self.Files]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JobSpec":
        job = cls()
        for name in ATTRIBUTES:
            if name in data:
                object.__setattr__(job, name, from_wire_null(decode_state_value(data[name])))
        job.Files = [FileSpec.from_dict(f) for f in data.get("Files") or []]
        return job.normalise()

    # --- pickle (legacy clients; only ever loaded through the allow-list unpickler) -------------
    def __getstate__(self) -> list[Any]:
        return [to_wire_null(getattr(self, name)) for name in ATTRIBUTES] + [self.Files]

    def __setstate__(self, state: list[Any]) -> None:
        for name in ATTRIBUTES:
            object.__setattr__(self, name, None)
        for name, value in zip(ATTRIBUTES, state[: len(ATTRIBUTES)]):
            object.__setattr__(self, name, from_wire_null(value))
        files = state[len(ATTRIBUTES)] if len(state) > len(ATTRIBUTES) else []
        self.Files = list(files) if isinstance(files, list) else []


__all__ = ["JobSpec", "JOB_COLUMNS", "ATTRIBUTES", "TABLE_ATTRIBUTES", "ZERO_ATTRIBUTES", "NULL", "coerce",
           "decode_value"]
