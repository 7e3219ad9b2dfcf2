"""The small pilot's job lifecycle: getJob, starting, running + heartbeats, final update.

It follows the real pilot's sequence and error codes (1144 killed by the server, 1149 transformation
download failed, 1165 missing output, 1137 stage-out failed) so that a server tested with it sees
what production pilots send.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pandasrv.client_identity import ClientIdentity
from pandasrv.pilot.payload import Payload, payload_environment, prepare_command
from pandasrv.pilot.protocol import Dispatcher, status_code
from pandasrv.pilot.stageout import MissingOutput, Storage, stage_out

log = logging.getLogger("pandasrv.pilot")

PILOT_VERSION = "pandasrv-pilot|PR|1.0"
ERR_STAGEOUT = (1137, "Failed to stage-out file")
ERR_KILLED = (1144, "This job was killed by panda server")
ERR_TRF_DOWNLOAD = (1149, "Transform could not be downloaded")
ERR_MISSING_OUTPUT = (1165, "Local output file is missing")
FINAL_UPDATE_RETRIES = (2.0, 10.0, 30.0)


@dataclass
class PilotOptions:
    url: str
    site: str
    jobs: int = 1
    workdir: Path = field(default_factory=lambda: Path.cwd() / "pilot-work")
    stage_dir: Path | None = None
    heartbeat: float = 60.0
    label: str = "user"
    node: str = field(default_factory=socket.gethostname)
    keep_workdir: bool = False
    wait: float = 0.0
    poll: float = 2.0
    harvester_id: str | None = None  # set when playing a pilot that Harvester started for a worker
    worker_id: int | None = None
    identity: ClientIdentity = field(default_factory=ClientIdentity)


@dataclass
class Outcome:
    """The final state of one job as reported to the server."""

    state: str
    trans_exit_code: int | None = None
    pilot_error: tuple[int, str] | None = None
    exe_error_diag: str = ""


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


class Pilot:
    def __init__(self, options: PilotOptions, dispatcher: Dispatcher | None = None) -> None:
        self.options = options
        self.dispatcher = dispatcher or Dispatcher(options.url, identity=options.identity)
        self.stage_dir = options.stage_dir or options.workdir / "storage"
        self.reached = False
        self.last_error = ""
        options.workdir.mkdir(parents=True, exist_ok=True)

    def run(self) -> list[int]:
        """Run up to ``jobs`` jobs one after another; stop when no job came within ``wait`` seconds.

        Submission is asynchronous (the Setupper activates jobs just after the reply), so a pilot
        started right after ``pandasrv submit`` may need to ask again a moment later.
        """
        done: list[int] = []
        self.report_worker("started")
        for _ in range(self.options.jobs):
            job = self.wait_for_job()
            if job is None:
                break
            self.run_job(job)
            done.append(int(job["PandaID"]))
        self.report_worker("finished")
        return done

    def report_worker(self, status: str) -> None:
        """Tell the server what the pilot of a Harvester worker is doing, as pilot3 does."""
        if self.options.harvester_id is None or self.options.worker_id is None:
            return
        try:
            self.dispatcher.call("updateWorkerPilotStatus", {
                "workerID": self.options.worker_id, "harvesterID": self.options.harvester_id, "status": status,
                "site": self.options.site, "node_id": self.options.node})
        except httpx.HTTPError as exc:
            log.warning("updateWorkerPilotStatus failed: %s", exc)

    def wait_for_job(self) -> dict[str, Any] | None:
        deadline = time.monotonic() + self.options.wait
        job = self.get_job()
        while job is None and time.monotonic() + self.options.poll <= deadline:
            time.sleep(self.options.poll)
            job = self.get_job()
        return job

    def get_job(self) -> dict[str, Any] | None:
        try:
            reply = self.dispatcher.call("getJob", self.job_request())
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            log.warning("getJob from %s failed: %s", self.options.url, exc)
            self.last_error = f"{exc.__class__.__name__}: {exc}"
            return None
        self.reached = True
        if status_code(reply) != 0 or not reply.get("PandaID"):
            log.info("no job from %s (StatusCode=%s)", self.options.url, reply.get("StatusCode"))
            return None
        log.info("received job: %s", reply["PandaID"])
        return reply

    def job_request(self) -> dict[str, Any]:
        return {
            "siteName": self.options.site,
            "computingElement": self.options.site,
            "prodSourceLabel": self.options.label,
            "node": self.options.node,
            "diskSpace": shutil.disk_usage(self.options.workdir).free // 2**20,
            "mem": 2000.0,
            "cpu": 1000.0,
            "allowOtherCountry": False,
            **({"harvester_id": self.options.harvester_id, "worker_id": self.options.worker_id}
               if self.options.harvester_id is not None and self.options.worker_id is not None else {}),
        }

    def update(self, job: dict[str, Any], state: str, **extra: Any) -> list[str] | None:
        """Send one updateJob; return the back-channel commands in the answer (None if it did not arrive)."""
        data = {
            "jobId": str(job["PandaID"]), "state": state, "timestamp": now_iso(),
            "siteName": self.options.site, "node": self.options.node,
            "attemptNr": job.get("attemptNr", 0), "schedulerID": "pandasrv", "pilotID": PILOT_VERSION,
            "coreCount": job.get("coreCount", 1),
        }
        data.update(extra)
        try:
            reply = self.dispatcher.call("updateJob", data)
        except httpx.HTTPError as exc:
            log.warning("updateJob %s for %s failed: %s", state, job["PandaID"], exc)
            return None
        command = str(reply.get("command") or "NULL")
        return [] if command == "NULL" else command.split(",")

    def run_job(self, job: dict[str, Any]) -> Outcome:
        workdir = self.options.workdir / f"PandaJob_{job['PandaID']}"
        workdir.mkdir(parents=True, exist_ok=True)
        start = time.time()
        commands = self.update(job, "starting", startTime=start)
        outcome = self.execute(job, workdir, killed="tobekilled" in (commands or []))
        outcome, report = self.finish(job, workdir, outcome)
        self.send_final(job, outcome.state, final_fields(outcome, report, start))
        log.info("job %s %s (transExitCode=%s, pilot error=%s, files=%s)", job["PandaID"], outcome.state,
                 outcome.trans_exit_code, outcome.pilot_error, ",".join(report))
        if not self.options.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        return outcome

    def send_final(self, job: dict[str, Any], state: str, fields: dict[str, Any]) -> None:
        """The final heartbeat carries the file report: without it the job is lost, so it is retried."""
        for delay in FINAL_UPDATE_RETRIES:
            if self.update(job, state, **fields) is not None:
                return
            time.sleep(delay)
        log.error("the final update of job %s never reached the server", job["PandaID"])

    def execute(self, job: dict[str, Any], workdir: Path, *, killed: bool) -> Outcome:
        if killed:
            return Outcome("failed", pilot_error=ERR_KILLED)
        try:
            command = prepare_command(job, workdir, self.dispatcher.download)
        except (httpx.HTTPError, OSError) as exc:
            log.warning("cannot fetch the transformation of %s: %s", job["PandaID"], exc)
            return Outcome("failed", pilot_error=(ERR_TRF_DOWNLOAD[0], f"{ERR_TRF_DOWNLOAD[1]}: {exc}"))
        env = payload_environment(job, self.options.url, self.options.site)
        payload = Payload(command, workdir, env)
        try:
            return self.monitor(job, payload)
        finally:
            payload.close()

    def monitor(self, job: dict[str, Any], payload: Payload) -> Outcome:
        """Heartbeat while the payload runs; a ``tobekilled`` answer stops it."""
        next_beat = 0.0
        while True:
            if time.monotonic() >= next_beat:
                if "tobekilled" in (self.update(job, "running") or []):
                    payload.kill()
                    log.info("job %s killed on the server's request", job["PandaID"])
                    return Outcome("failed", pilot_error=ERR_KILLED)
                next_beat = time.monotonic() + self.options.heartbeat
            code = payload.wait(min(1.0, max(0.05, next_beat - time.monotonic())))
            if code is not None:
                if code == 0:
                    return Outcome("finished", trans_exit_code=0)
                return Outcome("failed", trans_exit_code=code, exe_error_diag=f"payload exited with code {code}")

    def finish(self, job: dict[str, Any], workdir: Path, outcome: Outcome) -> tuple[Outcome, dict[str, Any]]:
        """Stage out (outputs only when the payload succeeded, the log always)."""
        storage = Storage(self.stage_dir, self.dispatcher)
        try:
            stage_out(job, workdir, storage, outputs=outcome.state == "finished")
        except MissingOutput as exc:
            outcome = Outcome("failed", outcome.trans_exit_code, (ERR_MISSING_OUTPUT[0], str(exc)))
            stage_out(job, workdir, storage, outputs=False)
        except OSError as exc:
            outcome = Outcome("failed", outcome.trans_exit_code, (ERR_STAGEOUT[0], f"{ERR_STAGEOUT[1]}: {exc}"))
        return outcome, storage.report


def final_fields(outcome: Outcome, report: dict[str, Any], start: float) -> dict[str, Any]:
    code, diag = outcome.pilot_error or (0, "")
    trans = outcome.trans_exit_code
    return {
        "xml": json.dumps(report),
        "pilotErrorCode": code, "pilotErrorDiag": diag,
        "transExitCode": trans if trans is not None else code,
        "exeErrorCode": trans or 0, "exeErrorDiag": outcome.exe_error_diag,
        "startTime": start, "endTime": time.time(),
        "pilotTiming": f"0|0|{int(time.time() - start)}|0|0",
    }


class Unreachable(Exception):
    """The pilot never got an answer from the server (so 'no job' would be a lie)."""


def run_pilot(options: PilotOptions) -> list[int]:
    """The PandaIDs run; Unreachable if no getJob was ever answered."""
    pilot = Pilot(options)
    try:
        done = pilot.run()
    finally:
        pilot.dispatcher.close()
    if not pilot.reached:
        raise Unreachable(f"cannot reach {options.url}: {pilot.last_error}")
    return done
