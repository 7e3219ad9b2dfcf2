"""Stage-out and the file report sent with the final ``updateJob``.

The report (the ``xml`` field, JSON despite its name) maps each LFN to ``guid``, ``fsize``,
``adler32``, ``surl`` and ``endpoint``: what the Adder needs to register a job's outputs. Outputs are
moved to a local storage directory (``<stage_dir>/<PandaID>/<lfn>``, like the real pilot's ``mv``
copytool); the log tarball goes into the server's upload cache when the server accepts it, so a
user can fetch it from the server, and to the storage directory otherwise.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pandasrv.pilot.protocol import Dispatcher

LOCAL_ENDPOINT = "LOCAL_DISK"
CACHE_ENDPOINT = "PANDA_CACHE"


class MissingOutput(Exception):
    """The payload did not produce an output file the job declares."""


def adler32(path: Path) -> str:
    value = 1
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            value = zlib.adler32(chunk, value)
    return f"{value & 0xFFFFFFFF:08x}"


def file_entry(path: Path, surl: str, endpoint: str, guid: str | None = None) -> dict[str, Any]:
    return {
        "guid": guid or str(uuid.uuid4()),
        "fsize": path.stat().st_size,
        "adler32": adler32(path),
        "surl": surl,
        "endpoint": endpoint,
    }


def make_log_tarball(workdir: Path, log_lfn: str, dest_dir: Path) -> Path:
    """Tar the whole work directory under a top folder named after the log file, as PanDA pilots do."""
    tarball = dest_dir / log_lfn
    top = log_lfn.removesuffix(".tgz").removesuffix(".tar.gz")
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(workdir, arcname=top)
    return tarball


@dataclass
class Storage:
    """Where outputs end up: a local directory, plus the server cache for logs when possible."""

    stage_dir: Path
    dispatcher: Dispatcher | None = None
    report: dict[str, dict[str, Any]] = field(default_factory=dict)

    def local_target(self, panda_id: int, lfn: str) -> Path:
        target = self.stage_dir / str(panda_id) / lfn
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def put_output(self, panda_id: int, source: Path, lfn: str, endpoint: str | None) -> None:
        target = self.local_target(panda_id, lfn)
        shutil.move(str(source), target)
        surl = f"file://localhost{target.resolve()}"
        self.report[lfn] = file_entry(target, surl, endpoint or LOCAL_ENDPOINT)

    def put_log(self, panda_id: int, tarball: Path, lfn: str, guid: str | None, endpoint: str | None) -> None:
        entry_base = file_entry(tarball, "", CACHE_ENDPOINT, guid)
        if self.dispatcher is not None and self.dispatcher.upload_cache_file(str(tarball), lfn):
            entry_base["surl"] = self.dispatcher.cache_url(lfn)
            self.report[lfn] = entry_base
            return
        target = self.local_target(panda_id, lfn)
        shutil.move(str(tarball), target)
        entry_base.update(surl=f"file://localhost{target.resolve()}", endpoint=endpoint or LOCAL_ENDPOINT)
        self.report[lfn] = entry_base


def split_field(job: dict[str, Any], key: str) -> list[str]:
    """Per-file job fields are comma-joined strings; ``NULL`` or empty means none."""
    value = str(job.get(key) or "")
    if value in ("", "NULL"):
        return []
    return value.split(",")


def output_lfns(job: dict[str, Any]) -> list[str]:
    log_lfn = job.get("logFile")
    return [lfn for lfn in split_field(job, "outFiles") if lfn and lfn != log_lfn]


def endpoint_for(job: dict[str, Any], lfn: str) -> str | None:
    """``ddmEndPointOut`` is aligned with ``outFiles``; fall back to the first one."""
    lfns = split_field(job, "outFiles")
    endpoints = split_field(job, "ddmEndPointOut")
    if lfn in lfns and lfns.index(lfn) < len(endpoints):
        return endpoints[lfns.index(lfn)] or None
    return endpoints[0] if endpoints else None


def stage_out(job: dict[str, Any], workdir: Path, storage: Storage, *, outputs: bool) -> None:
    """Move the declared outputs (only after a successful payload) and always the log tarball."""
    panda_id = int(job["PandaID"])
    if outputs:
        for lfn in output_lfns(job):
            source = workdir / lfn
            if not source.is_file():
                raise MissingOutput(f"expected output file {lfn} is missing")
            storage.put_output(panda_id, source, lfn, endpoint_for(job, lfn))
    log_lfn = job.get("logFile")
    if log_lfn and log_lfn != "NULL":
        scratch = Path(os.path.dirname(workdir)) / f".{panda_id}.logtmp"
        scratch.mkdir(exist_ok=True)
        try:
            tarball = make_log_tarball(workdir, log_lfn, scratch)
            log_guid = job.get("logGUID")
            storage.put_log(panda_id, tarball, log_lfn, None if log_guid in (None, "", "NULL") else log_guid,
                            endpoint_for(job, log_lfn))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
