"""The walk-through's commands once ``auth`` is not ``none``: ``submit``, ``status``, ``jobs`` and ``pilot``
against a token server, with the token given as an option and in panda-client's variables; without it
the server's refusal is one line and exit 1. (Proxies over https: ``tests/deploy/test_tls.py``.)"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric import rsa

from pandasrv.cli import main
from tests.web.conftest import RunningServer
from tests.web.test_auth import token


def pandasrv(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


@pytest.fixture
def token_file(tmp_path: Path, signing_key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path / "id_token"
    path.write_text(token(signing_key) + "\n")  # as editors and `echo` leave it: the newline must not matter
    return path


def jobs_of(server: RunningServer) -> int:
    return sum(row[-1] for row in server.tb.monitor_job_counts(["computingSite"], {"queue": server.queue}))


def submitted(server: RunningServer, *credentials: str, env: dict[str, str] | None = None) -> list[int]:
    result = pandasrv("submit", "--url", server.url, "--site", server.queue, "--trf", "echo", "-n", "2",
                      *credentials, env=env)
    assert result.exit_code == 0, result.output + result.stderr
    return [int(i) for i in result.stdout.split()]


def test_submit_status_jobs_and_pilot_with_a_token_file(token_server: RunningServer, token_file: Path,
                                                        tmp_path: Path) -> None:
    user = ["--token-file", str(token_file), "--vo", "myvo"]
    ids = submitted(token_server, *user)
    caller = httpx.get(f"{token_server.url}/api/v1/system/get_attributes",
                       headers={"Authorization": f"Bearer {token_file.read_text().strip()}", "Origin": "myvo"}).json()
    owners = {job.prodUserName for job in token_server.tb.peek_jobs(ids) if job is not None}
    assert owners == {caller["data"]["user"]} != {"pandasrv"}

    status = pandasrv("status", "--url", token_server.url, *user, *map(str, ids))
    assert status.exit_code == 0 and len(status.stdout.splitlines()) == 2, status.stderr
    listed = pandasrv("jobs", "list", "--url", token_server.url, "--queue", token_server.queue, "--json", *user)
    assert listed.exit_code == 0 and set(ids) <= {j["PandaID"] for j in json.loads(listed.stdout)["jobs"]}

    pilot = pandasrv("pilot", "--url", token_server.url, "--site", token_server.queue, "--jobs", "2", "--wait", "30",
                     "--heartbeat", "1", "--workdir", str(tmp_path / "pilot"),
                     "--token-file", str(token_file), "--vo", "myvo:production")
    assert pilot.exit_code == 0, pilot.output + pilot.stderr
    assert sorted(int(i) for i in pilot.stdout.split(":")[1].split()) == sorted(ids)


def test_panda_client_variables_work_as_the_options(token_server: RunningServer, token_file: Path) -> None:
    env = {"PANDA_AUTH": "oidc", "OIDC_AUTH_TOKEN_FILE": str(token_file), "PANDA_AUTH_VO": "myvo"}
    ids = submitted(token_server, env=env)
    status = pandasrv("status", "--url", token_server.url, *map(str, ids), env=env)
    assert status.exit_code == 0 and all("\tnot found" not in line for line in status.stdout.splitlines())


@pytest.mark.parametrize("credentials", [[], ["--token-file", "<forged>", "--vo", "myvo"]])
def test_without_a_valid_token_the_refusal_is_one_line(token_server: RunningServer, tmp_path: Path,
                                                       credentials: list[str]) -> None:
    forged = tmp_path / "forged"
    forged.write_text("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
    args = [arg.replace("<forged>", str(forged)) for arg in credentials]
    before = jobs_of(token_server)
    result = pandasrv("submit", "--url", token_server.url, "--site", token_server.queue, "--trf", "echo", *args)
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert jobs_of(token_server) == before


@pytest.mark.parametrize("command", [["submit", "--site", "Q", "--trf", "echo"], ["status", "1"], ["jobs", "list"],
                                     ["pilot", "--site", "Q", "--wait", "0"]])
def test_an_unusable_credential_is_one_line_before_any_request(command: list[str], tmp_path: Path) -> None:
    url = "http://127.0.0.1:9"
    args = [*command[:2], "--url", url, *command[2:]] if command[0] == "jobs" else [command[0], "--url", url, *command[1:]]
    result = pandasrv(*args, "--token-file", str(tmp_path / "missing"), "--vo", "myvo")
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "token file" in result.stderr and "cannot reach" not in result.stderr
