"""JobSpec: one PanDA job, with PanDA's 126 attributes in PanDA's order.

The order is part of the wire format: panda-client sends job states as positional lists and
legacy clients pickle them the same way, so the tuple below must never be reordered.
The column kinds declared here are also the source of the job tables' DDL (see ``schema.py``).
"""

from __future__ import annotations

from typing import Any, Self

from pandasrv.taskbuffer.file_spec import FileSpec
from pandasrv.taskbuffer.spec import Column, Spec
from pandasrv.taskbuffer.wire import NULL

# (name, kind, length): kind is "int", "float", "str", "text" or "datetime"; length applies to "str".
JOB_COLUMNS: tuple[Column, ...] = (
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


class JobSpec(Spec, columns=JOB_COLUMNS, zero_when_unset=ZERO_ATTRIBUTES, stored=TABLE_ATTRIBUTES, noun="job",
              shown=("PandaID", "jobStatus", "jobName")):
    """A job as clients see it, with its files. Unset attributes are None here and "NULL" on the wire."""

    __slots__ = ATTRIBUTES + ("Files",)

    def __init__(self, **values: Any) -> None:
        self.Files: list[FileSpec] = []
        super().__init__(**values)

    def __eq__(self, other: object) -> bool:
        return super().__eq__(other) and isinstance(other, JobSpec) and self.Files == other.Files

    def add_file(self, file: FileSpec) -> None:
        file.PandaID = self.PandaID
        self.Files.append(file)

    def normalise(self) -> Self:
        """Coerce every attribute, and every file's, to its column type."""
        super().normalise()
        for file in self.Files:
            if not isinstance(file, FileSpec):
                raise ValueError(f"Files must hold FileSpecs, not {type(file).__name__}")
            file.normalise()
        return self

    # --- wire forms: the attributes, then the files -------------------------------------------
    def to_state(self) -> list[Any]:
        """Positional state: 126 values ("NULL" for unset) followed by the list of file states."""
        return self._wire_values() + [[f.to_state() for f in self.Files]]

    @classmethod
    def from_state(cls, state: list[Any]) -> Self:
        """Decode a positional state; shorter states leave trailing attributes unset."""
        cls._check_state(state)
        job = cls._decoded(state[: len(ATTRIBUTES)])
        files = state[len(ATTRIBUTES)] if len(state) > len(ATTRIBUTES) else []
        if files in (None, NULL):
            files = []
        if not isinstance(files, list):
            raise ValueError("the last element of a job state must be the list of file states")
        job.Files = [FileSpec.from_state(f) for f in files]
        return job

    def to_dict(self) -> dict[str, Any]:
        """The v1 dict form: attribute names to values (None for unset) plus "Files"."""
        return {**super().to_dict(), "Files": [f.to_dict() for f in self.Files]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        job = cls._from_mapping(data)
        job.Files = [FileSpec.from_dict(f) for f in data.get("Files") or []]
        return job.normalise()

    def __getstate__(self) -> list[Any]:
        return self._wire_values() + [self.Files]

    def __setstate__(self, state: list[Any]) -> None:
        super().__setstate__(state)
        files = state[len(ATTRIBUTES)] if len(state) > len(ATTRIBUTES) else []
        self.Files = list(files) if isinstance(files, list) else []


__all__ = ["JobSpec", "JOB_COLUMNS", "ATTRIBUTES", "TABLE_ATTRIBUTES", "ZERO_ATTRIBUTES"]
