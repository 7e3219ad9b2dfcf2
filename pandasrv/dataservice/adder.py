"""The Adder: turns a job output report (the pilot's final heartbeat, or the Finisher's) into a final state.

Reports are locked with an owner and a lock time before they are read, so several workers on several
machines never process one report twice. For a finished job the pilot's file report (``xml``: JSON keyed by
LFN) must give a GUID, a size and a checksum for every output and log file; otherwise the job fails with a
ddm error. The reported metadata is recorded in the files table together with the job's transition.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from pandasrv.config import Settings
from pandasrv.dataservice.closer import run_closer
from pandasrv.dataservice.plugins import Plugins
from pandasrv.taskbuffer.codes import EC_ADDER, KILL_COMMAND
from pandasrv.taskbuffer.job_spec import JobSpec
from pandasrv.taskbuffer.owners import owner_token
from pandasrv.taskbuffer.store import Store

log = logging.getLogger("pandasrv.dataservice.adder")

FINALISABLE = ("holding", "transferring")
FILE_STATUS = {"finished": "ready", "transferring": "transferring", "failed": "failed", "cancelled": "failed"}


class FileReportError(ValueError):
    """The pilot's file report does not describe every output and log file properly."""


def parse_file_report(data: str | None, job: JobSpec) -> dict[str, dict[str, Any]]:
    """The per-LFN entries for the job's output and log files, validated (raises FileReportError)."""
    try:
        report = json.loads(data) if data else None
    except ValueError:
        raise FileReportError("the file report is not JSON") from None
    if not isinstance(report, dict):
        raise FileReportError("no file report")
    entries = {}
    for spec in job.Files:
        if spec.type not in ("output", "log"):
            continue
        entry = report.get(spec.lfn)
        if not isinstance(entry, dict):
            raise FileReportError(f"{spec.lfn} is missing")
        entries[spec.lfn] = _checked_entry(spec.lfn, entry)
    return entries


def _checked_entry(lfn: str, entry: dict[str, Any]) -> dict[str, Any]:
    guid = entry.get("guid")
    try:
        guid = str(uuid.UUID(str(guid)))
    except ValueError:
        raise FileReportError(f"{lfn} has a bad or missing GUID ({guid!r})") from None
    try:
        fsize = int(entry.get("fsize"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise FileReportError(f"{lfn} has a bad or missing fsize") from None
    adler32, md5 = entry.get("adler32"), entry.get("md5sum")
    if not adler32 and not md5:
        raise FileReportError(f"{lfn} has no checksum")
    return {"GUID": guid, "fsize": fsize, "checksum": f"ad:{adler32}" if adler32 else f"md5:{md5}",
            "md5sum": md5 or None}


class Adder:
    """Processes locked job output reports; one instance per worker process."""

    def __init__(self, task_buffer: Store, settings: Settings, lock_seconds: int = 600) -> None:
        self.task_buffer = task_buffer
        self.settings = settings
        self.lock_seconds = lock_seconds
        self.owner = owner_token()
        self.plugins = Plugins("adder", task_buffer, settings)

    def run_round(self, n: int = 100) -> int:
        """Lock up to ``n`` reports, finalise their jobs, close their datasets; returns the reports taken."""
        reports = self.task_buffer.lock_output_reports(self.owner, n, self.lock_seconds)
        if not reports:
            return 0
        jobs = self.task_buffer.peek_jobs([r["PandaID"] for r in reports], with_files=True, archived=False)
        outcomes: list[dict[str, Any]] = []
        by_id: dict[int, tuple[JobSpec, str]] = {}
        for report, job in zip(reports, jobs):
            try:
                outcomes.append(self.outcome(report, job))
            except Exception:
                log.exception("adder: report of job %s failed; it is retried after its lock expires",
                              report["PandaID"])
                continue
            if job is not None and outcomes[-1]["status"] is not None:  # a job is None only for a stale report
                by_id[report["PandaID"]] = (job, outcomes[-1]["status"])
        datasets: dict[str, str | None] = {}
        for panda_id in self.task_buffer.finalise_jobs(outcomes, FINALISABLE):
            job, status = by_id[panda_id]
            log.info("adder: job %s %s", panda_id, status)
            if status != "transferring":
                datasets.update({f.destinationDBlock: job.VO for f in job.Files
                                 if f.type in ("output", "log") and f.destinationDBlock})
        run_closer(self.task_buffer, self.settings, datasets)
        return len(reports)

    def outcome(self, report: dict[str, Any], job: JobSpec | None) -> dict[str, Any]:
        """What to store for one report (``status`` None: the report is stale and only dropped)."""
        key = {"PandaID": report["PandaID"], "attemptNr": report["attemptNr"]}
        if job is None or job.jobStatus not in FINALISABLE or (job.attemptNr or 0) != (report["attemptNr"] or 0):
            log.info("adder: dropping stale report of job %s attempt %s", report["PandaID"], report["attemptNr"])
            return {**key, "status": None}
        status, values, files = self.decide(job, report)
        if job.commandToPilot == KILL_COMMAND and status == "failed":
            status = "cancelled"
        return {**key, "status": status, "values": values, "files": files}

    def decide(self, job: JobSpec, report: dict[str, Any]) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
        """(final status, job column values, file rows) for one report."""
        reported = "failed" if report["jobStatus"] in ("failed", "cancelled", "closed") else report["jobStatus"]
        if job.jobStatus == "transferring":
            return reported, {}, self._file_rows(job, {}, reported)
        entries: dict[str, dict[str, Any]] = {}
        if reported == "finished":
            try:
                entries = parse_file_report(report.get("data"), job)
            except FileReportError as exc:
                diag = f"Could not get GUID/LFN/MD5/FSIZE/SURL from pilot JSON: {exc}"
                return "failed", {"ddmErrorCode": EC_ADDER, "ddmErrorDiag": diag}, self._file_rows(job, {}, "failed")
            reported, diag = self.plugins.for_vo(job.VO).process(job, entries)
            values = {"ddmErrorCode": EC_ADDER, "ddmErrorDiag": diag} if reported == "failed" and diag else {}
            return reported, values, self._file_rows(job, entries, reported)
        return reported, {}, self._file_rows(job, self._lenient_entries(report.get("data"), job), reported)

    @staticmethod
    def _lenient_entries(data: str | None, job: JobSpec) -> dict[str, dict[str, Any]]:
        """Whatever valid entries a failed job's report has (usually its log file)."""
        entries = {}
        try:
            report = json.loads(data) if data else {}
        except ValueError:
            return {}
        for spec in job.Files:
            entry = report.get(spec.lfn) if isinstance(report, dict) else None
            if spec.type in ("output", "log") and isinstance(entry, dict):
                try:
                    entries[spec.lfn] = _checked_entry(spec.lfn, entry)
                except FileReportError:
                    continue
        return entries

    @staticmethod
    def _file_rows(job: JobSpec, entries: dict[str, dict[str, Any]], status: str) -> list[dict[str, Any]]:
        file_status = FILE_STATUS.get(status, "failed")
        rows = []
        for spec in job.Files:
            if spec.type not in ("output", "log"):
                continue
            entry = entries.get(spec.lfn, {})
            reached = "ready" if spec.type == "log" and entry and file_status == "failed" else file_status
            rows.append({"row_ID": spec.row_ID, "GUID": entry.get("GUID"), "fsize": entry.get("fsize"),
                         "checksum": entry.get("checksum"), "md5sum": entry.get("md5sum"), "status": reached})
        return rows
