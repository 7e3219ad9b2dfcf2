"""A tiny user client: build JobSpecs and submit them the way panda-client 2.2.0 does.

``job/submit`` takes ``{"jobs": "<JSON string of positional job states>"}`` (double-encoded on
purpose: that is panda-client's wire format), so a server that accepts these accepts the real client.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import httpx

from pandasrv.client_identity import ClientIdentity
from pandasrv.taskbuffer.file_spec import FileSpec
from pandasrv.taskbuffer.job_spec import JobSpec

SUBMIT_BATCH = 1000
T = TypeVar("T")
ERROR_FIELDS = ("transExitCode", "pilotErrorCode", "pilotErrorDiag", "exeErrorCode", "ddmErrorCode", "ddmErrorDiag",
                "jobDispatcherErrorCode", "jobDispatcherErrorDiag", "taskBufferErrorCode", "taskBufferErrorDiag")


class SubmitError(Exception):
    """The server refused an upload or a submission, or could not be reached; the message is one line."""


API_SUFFIXES = ("/server/panda", "/api/v1")


def base_url(url: str) -> str:
    """The server's base URL from what a user may type: ``http://host:port`` with or without the API path
    (``docs/clients.md`` gives panda-client ``…/server/panda``). A URL without http(s) is a SubmitError."""
    text = url.strip().rstrip("/")
    if not text.startswith(("http://", "https://")):
        raise SubmitError(f"{url!r} is not a server URL: it must start with http:// or https://")
    for suffix in API_SUFFIXES:
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    return text


def network_error(url: str, exc: Exception) -> SubmitError:
    """One line for a server that cannot be reached or does not speak HTTP as expected."""
    reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return SubmitError(f"cannot reach {url}: {reason}")


@dataclass
class JobRequest:
    site: str
    transformation: str
    arguments: str = ""
    outputs: list[str] = field(default_factory=list)
    label: str = "user"
    name_prefix: str = "pandasrv"
    priority: int = 1000
    user: str = "pandasrv"


def build_job(request: JobRequest, index: int, tag: str) -> JobSpec:
    """One job with its outputs and a log file, named uniquely so that LFNs never collide."""
    name = f"{request.name_prefix}.{tag}.{index}"
    dataset = f"user.{request.user}.{request.name_prefix}.{tag}"
    job = JobSpec(
        jobDefinitionID=1, jobName=name, transformation=request.transformation,
        jobParameters=request.arguments, prodSourceLabel=request.label, computingSite=request.site,
        destinationSE=request.site, assignedPriority=request.priority, currentPriority=request.priority,
        attemptNr=0, maxAttempt=1, VO="atlas", coreCount=1, creationHost=os.uname().nodename,
        destinationDBlock=dataset,
    )
    for lfn in request.outputs:
        job.add_file(FileSpec(lfn=lfn, type="output", dataset=dataset, destinationDBlock=dataset,
                              destinationSE=request.site, scope=f"user.{request.user}"))
    job.add_file(FileSpec(lfn=f"{name}.log.tgz", type="log", dataset=f"{dataset}.log",
                          destinationDBlock=f"{dataset}.log", destinationSE=request.site,
                          scope=f"user.{request.user}"))
    return job


def build_jobs(request: JobRequest, count: int) -> list[JobSpec]:
    tag = uuid.uuid4().hex[:10]
    return [build_job(request, i, tag) for i in range(count)]


def encode_jobs(jobs: list[JobSpec]) -> dict[str, str]:
    return {"jobs": json.dumps([job.to_state() for job in jobs])}


def envelope(response: httpx.Response) -> Any:
    """The ``data`` of a v1 reply; anything but ``success`` becomes a SubmitError."""
    try:
        body = response.json()
    except ValueError as exc:
        raise SubmitError(f"HTTP {response.status_code}: {response.text[:200]}") from exc
    if response.status_code != 200 or not isinstance(body, dict) or not body.get("success"):
        message = body.get("message") if isinstance(body, dict) else body
        # a refusal in the reply's body (HTTP 200) is the server's answer, not a transport problem
        raise SubmitError(str(message) if response.status_code == 200 else f"HTTP {response.status_code}: {message}")
    return body.get("data")


class UserClient:
    def __init__(self, url: str, *, timeout: float = 600.0, client: httpx.Client | None = None,
                 identity: ClientIdentity | None = None) -> None:
        self.base = base_url(url)
        self.http = client or (identity or ClientIdentity()).http_client(self.base, timeout=timeout)

    def upload(self, path: str) -> str:
        """Put a script into the server cache and return the URL a pilot downloads it from.

        The cache never overwrites a file, so the name carries a digest of the content: uploading the
        same script again reuses the cached copy, and a changed script gets a new name.
        """
        content = Path(path).read_bytes()
        stem, suffix = os.path.splitext(os.path.basename(path))
        name = f"{stem}.{hashlib.sha256(content).hexdigest()[:12]}{suffix}"
        url = f"{self.base}/cache/{name}"
        response = self.http.post(f"{self.base}/api/v1/file_server/upload_cache_file",
                                  files={"file": (name, content, "application/octet-stream")},
                                  headers={"Accept": "application/json"})
        try:
            envelope(response)
        except SubmitError:
            cached = self.http.get(url)
            if cached.status_code != 200 or cached.content != content:
                raise
        return url

    def submit(self, jobs: list[JobSpec], progress: Callable[[int], None] | None = None) -> list[int]:
        """Submit in batches of SUBMIT_BATCH; return the PandaIDs in submission order.

        ``progress`` is told the number of jobs of each batch the server has stored."""
        ids: list[int] = []
        for start in range(0, len(jobs), SUBMIT_BATCH):
            response = self.http.post(f"{self.base}/api/v1/job/submit",
                                      json=encode_jobs(jobs[start:start + SUBMIT_BATCH]),
                                      headers={"Accept": "application/json"})
            for entry in envelope(response):
                if entry[0] in (None, "NULL"):
                    raise SubmitError(f"the server did not store a job: {entry}")
                ids.append(int(entry[0]))
            if progress:
                progress(len(jobs[start:start + SUBMIT_BATCH]))
        return ids

    def describe(self, panda_ids: list[int]) -> list[dict[str, Any] | None]:
        """The jobs as panda-client's getFullJobStatus sees them (live or archived), None if unknown."""
        response = self.http.post(f"{self.base}/api/v1/job/get_description_incl_archive",
                                  json={"job_ids": panda_ids}, headers={"Accept": "application/json"})
        jobs: list[dict[str, Any] | None] = envelope(response)
        return jobs

    def close(self) -> None:
        self.http.close()


def job_statuses(url: str, panda_ids: list[int], identity: ClientIdentity | None = None) -> list[tuple[str, bool]]:
    """One line per job for ``pandasrv status`` (id, status, queue and any error the job carries) and
    whether the job was found."""
    client = UserClient(url, identity=identity)
    try:
        jobs = _network(url, lambda: client.describe(panda_ids))
    finally:
        client.close()
    lines = []
    for panda_id, job in zip(panda_ids, jobs):
        if job is None:
            lines.append((f"{panda_id}\tnot found", False))
            continue
        errors = [f"{key}={job[key]}" for key in ERROR_FIELDS if job.get(key) not in (None, 0, "0", "", "NULL")]
        lines.append(("\t".join([str(panda_id), job["jobStatus"], str(job["computingSite"]), *errors]), True))
    return lines


def _network(url: str, action: Callable[[], T]) -> T:
    """Run a client call; a network or protocol failure becomes a one-line SubmitError naming the URL."""
    try:
        return action()
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise network_error(url, exc) from None


def submit_jobs(url: str, request: JobRequest, count: int = 1, upload: str | None = None,
                progress: Callable[[int], None] | None = None, identity: ClientIdentity | None = None) -> list[int]:
    """The ``pandasrv submit`` command: optional upload of the script, then the jobs."""
    client = UserClient(url, identity=identity)
    try:
        if upload:
            request.transformation = _network(url, lambda: client.upload(upload))
        if not request.transformation.strip():
            raise SubmitError("a transformation (--trf) or a script to upload (--upload) is required")
        return _network(url, lambda: client.submit(build_jobs(request, count), progress))
    finally:
        client.close()


def monitor_page(url: str, path: str, params: dict[str, Any] | None = None,
                 identity: ClientIdentity | None = None) -> dict[str, Any]:
    """The ``?format=json`` form of a monitor page (``pandasrv jobs``); the page's error becomes a SubmitError."""
    base = base_url(url)
    with (identity or ClientIdentity()).http_client(base, timeout=60) as http:
        response = _network(base, lambda: http.get(f"{base}/monitor/{path}",
                                                   params={**(params or {}), "format": "json"}))
    try:
        data: dict[str, Any] = response.json()
    except ValueError:
        raise SubmitError(f"HTTP {response.status_code} from {base}/monitor/{path}: not the monitor's JSON") from None
    if response.status_code != 200 or "error" in data:
        raise SubmitError(f"HTTP {response.status_code}: {data.get('error')}")
    return data
