"""The walk-through's commands once ``auth`` is not ``none``: ``submit``, ``status``, ``jobs`` and ``pilot``
against a token server, with the token given as an option and in panda-client's variables; without it
the server's refusal is one line and exit 1. (Proxies over https: ``tests/deploy/test_tls.py``.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric import rsa

from pandasrv.cli import main
from tests.conftest import selected_backends
from tests.web.conftest import RunningServer, fresh_database, start_server
from tests.web.helpers import write_jwks
from tests.web.test_auth import AUDIENCE, ISSUER, token


def pandasrv(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module", params=selected_backends())
def server(request: pytest.FixtureRequest, test_databases: Any, tmp_path_factory: pytest.TempPathFactory,
           key: rsa.RSAPrivateKey) -> Iterator[RunningServer]:
    workdir = tmp_path_factory.mktemp("cli-token")
    jwks = write_jwks(workdir / "jwks.json", key, "k1")
    with fresh_database(test_databases, request.param, workdir) as db_url, \
            start_server(db_url, request.param, workdir, auth="token", token_issuer=ISSUER, token_audience=AUDIENCE,
                         token_jwks_file=str(jwks), production_vos=["myvo"]) as running:
        running.add_queue(running.queue)
        yield running


@pytest.fixture
def token_file(tmp_path: Path, key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path / "id_token"
    path.write_text(token(key) + "\n")  # as editors and `echo` leave it: the newline must not matter
    return path


def jobs_of(server: RunningServer) -> int:
    return sum(row[-1] for row in server.tb.monitor_job_counts(["computingSite"], {"queue": server.queue}))


def submitted(server: RunningServer, *credentials: str, env: dict[str, str] | None = None) -> list[int]:
    result = pandasrv("submit", "--url", server.url, "--site", server.queue, "--trf", "echo", "-n", "2",
                      *credentials, env=env)
    assert result.exit_code == 0, result.output + result.stderr
    return [int(i) for i in result.stdout.split()]


def test_submit_status_jobs_and_pilot_with_a_token_file(server: RunningServer, token_file: Path,
                                                        tmp_path: Path) -> None:
    user = ["--token-file", str(token_file), "--vo", "myvo"]
    ids = submitted(server, *user)
    caller = httpx.get(f"{server.url}/api/v1/system/get_attributes",
                       headers={"Authorization": f"Bearer {token_file.read_text().strip()}", "Origin": "myvo"}).json()
    owners = {job.prodUserName for job in server.tb.peek_jobs(ids) if job is not None}
    assert owners == {caller["data"]["user"]} != {"pandasrv"}

    status = pandasrv("status", "--url", server.url, *user, *map(str, ids))
    assert status.exit_code == 0 and len(status.stdout.splitlines()) == 2, status.stderr
    listed = pandasrv("jobs", "list", "--url", server.url, "--queue", server.queue, "--json", *user)
    assert listed.exit_code == 0 and set(ids) <= {j["PandaID"] for j in json.loads(listed.stdout)["jobs"]}

    pilot = pandasrv("pilot", "--url", server.url, "--site", server.queue, "--jobs", "2", "--wait", "30",
                     "--heartbeat", "1", "--workdir", str(tmp_path / "pilot"),
                     "--token-file", str(token_file), "--vo", "myvo:production")
    assert pilot.exit_code == 0, pilot.output + pilot.stderr
    assert sorted(int(i) for i in pilot.stdout.split(":")[1].split()) == sorted(ids)


def test_panda_client_variables_work_as_the_options(server: RunningServer, token_file: Path) -> None:
    env = {"PANDA_AUTH": "oidc", "OIDC_AUTH_TOKEN_FILE": str(token_file), "PANDA_AUTH_VO": "myvo"}
    ids = submitted(server, env=env)
    status = pandasrv("status", "--url", server.url, *map(str, ids), env=env)
    assert status.exit_code == 0 and all("\tnot found" not in line for line in status.stdout.splitlines())


@pytest.mark.parametrize("credentials", [[], ["--token-file", "<forged>", "--vo", "myvo"]])
def test_without_a_valid_token_the_refusal_is_one_line(server: RunningServer, tmp_path: Path,
                                                       credentials: list[str]) -> None:
    forged = tmp_path / "forged"
    forged.write_text("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
    args = [arg.replace("<forged>", str(forged)) for arg in credentials]
    before = jobs_of(server)
    result = pandasrv("submit", "--url", server.url, "--site", server.queue, "--trf", "echo", *args)
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert jobs_of(server) == before


@pytest.mark.parametrize("command", [["submit", "--site", "Q", "--trf", "echo"], ["status", "1"], ["jobs", "list"],
                                     ["pilot", "--site", "Q", "--wait", "0"]])
def test_an_unusable_credential_is_one_line_before_any_request(command: list[str], tmp_path: Path) -> None:
    url = "http://127.0.0.1:9"
    args = [*command[:2], "--url", url, *command[2:]] if command[0] == "jobs" else [command[0], "--url", url, *command[1:]]
    result = pandasrv(*args, "--token-file", str(tmp_path / "missing"), "--vo", "myvo")
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "token file" in result.stderr and "cannot reach" not in result.stderr
