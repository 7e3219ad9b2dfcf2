"""Preparing and running a job's payload in its own process group.

The payload runs in a new session so that a server kill (``tobekilled``) can stop the whole tree the
transformation started, not just the shell that launched it.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from pathlib import Path
from typing import Any, Callable

PAYLOAD_STDOUT = "payload.stdout"
PAYLOAD_STDERR = "payload.stderr"


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def job_parameters(job: dict[str, Any]) -> str:
    value = job.get("jobPars")
    return "" if value in (None, "NULL") else str(value)


def prepare_command(job: dict[str, Any], workdir: Path, download: Callable[[str], bytes]) -> str:
    """A URL transformation is fetched into the work dir and run as ``./<name> <jobPars>``;
    anything else is taken as a command line, as the generic PanDA pilot does."""
    transformation = str(job.get("transformation") or "")
    arguments = job_parameters(job)
    if is_url(transformation):
        name = os.path.basename(transformation.split("?", 1)[0]) or "payload.sh"
        script = workdir / name
        script.write_bytes(download(transformation))
        script.chmod(0o755)
        return f"./{shlex.quote(name)} {arguments}".strip()
    return f"{transformation} {arguments}".strip()


def payload_environment(job: dict[str, Any], server_url: str, site: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PANDA_ID=str(job["PandaID"]), PANDA_SERVER_URL=server_url, PANDA_SITE=site,
               PANDA_JOB_NAME=str(job.get("jobName") or ""))
    return env


class Payload:
    """A running payload: poll it, or kill its process group."""

    def __init__(self, command: str, workdir: Path, env: dict[str, str]) -> None:
        self.stdout = open(workdir / PAYLOAD_STDOUT, "wb")
        self.stderr = open(workdir / PAYLOAD_STDERR, "wb")
        self.process = subprocess.Popen(
            ["/bin/sh", "-c", command], cwd=workdir, env=env,
            stdout=self.stdout, stderr=self.stderr, start_new_session=True,
        )

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if the payload is still running after ``timeout`` seconds."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self, grace: float = 5.0) -> int:
        """SIGTERM the process group, then SIGKILL whatever is left after ``grace`` seconds."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            code = self.wait(grace)
            if code is not None:
                self.reap_group()
                return code
        return self.process.wait()

    def reap_group(self) -> None:
        """Children that ignored SIGTERM may outlive the shell; the group is killed for good."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        self.stdout.close()
        self.stderr.close()
