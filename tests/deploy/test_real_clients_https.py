"""The real clients, unmodified, over HTTPS against ``pandasrv apache`` (one Apache, PostgreSQL).

A test CA, a VOMS server, users and the server's host certificate are made here (``tests/deploy/pki.py``); the
OIDC issuer is a key pair and its JWKS file. The server runs ``auth = token``, which also takes client
certificates (``SSLVerifyClient optional``): a bearer token when one is sent, the verified chain otherwise.

- panda-client 2.2.0 with ``X509_USER_PROXY`` (an RFC 3820 proxy) and ``X509_CERT_DIR`` (the test CA, hashed):
  hello, submit, status, kill, putFile; then with ``PANDA_AUTH=oidc``, ``PANDA_AUTH_VO`` and the token file it
  caches under ``PANDA_CONFIG_ROOT``. What the server recorded (the owner of each job) says who it saw. A
  token's role is chosen with ``PANDA_AUTH_VO=<vo>:<role>``.
- Roles from VOMS: proxies made by Debian's real ``voms-proxy-fake`` for VO ``pandasrv`` (the server's
  ``voms_dir`` holds the VOMS server's ``.lsc``): ``Role=production`` submits managed jobs, a plain member or
  a proxy without attributes gets none of them from getJob, ``Role=pilot`` (``pilot_vos``) does.
- The real pilot, run as ``tests/web/test_real_pilot.py`` runs it, over https with the pilot-role proxy.
- What never becomes an identity with httpx is in ``test_tls.py``; here the same faults go through panda-client.
"""

from __future__ import annotations

import datetime
import json
import secrets
import ssl
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pandasrv.client_identity import ClientIdentity
from pandasrv.config import load_settings
from pandasrv.submit import JobRequest, submit_jobs
from pandasrv.taskbuffer.task_buffer import TaskBuffer
from pandasrv.web.auth import token_owner
from tests.deploy import pki
from tests.deploy.conftest import RunningApache, start_apache
from tests.realclients import (
    PILOT_VERSION,
    can_unshare,
    output_reports,
    peek_job,
    place_job_script,
    run_panda_client,
    run_real_pilot,
    skip_or_fail,
    status_history,
    wait_activated,
)
from tests.web.conftest import free_port
from tests.web.helpers import write_jwks
from tests.web.test_real_panda_client import STATUS, SUBMIT

VO = "pandasrv"
ISSUER = "https://issuer.test/realm"
AUDIENCE = "pandasrv-test"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("pki")
    ca = pki.make_ca("pandasrv client CA")
    alice = pki.user(ca, "Alice Tester")
    host = pki.host(ca, "127.0.0.1")
    issuer_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    voms = pki.voms_server(ca)
    ca_dir = pki.ca_dir(base / "certificates", ca)

    def voms_proxy(name: str, *fqans: str) -> Path:
        return pki.voms_proxy_fake(pki.user(ca, name), voms, base / name.replace(" ", "_"), ca_dir, VO, list(fqans))

    return {"base": base, "ca": ca, "alice": alice, "ca_dir": ca_dir, "vomsdir": pki.vomsdir(base / "vomsdir", VO, voms),
            "host": host.write(base / "host.pem"), "issuer_key": issuer_key,
            "jwks": write_jwks(base / "jwks.json", issuer_key, "test-key"),
            "alice_proxy": pki.proxy(alice).write(base / "alice_proxy.pem"),
            "member_proxy": voms_proxy("Vo Member", f"/{VO}"),
            "production_proxy": voms_proxy("Production Manager", f"/{VO}/Role=production"),
            "pilot_proxy": voms_proxy("Pilot Factory", f"/{VO}/Role=pilot")}


@pytest.fixture(scope="module")
def https(pg_url: str, world: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningApache, str]]:
    ssl_port = free_port()
    with start_apache(pg_url, tmp_path_factory.mktemp("apache-clients"), auth="token", token_issuer=ISSUER,
                      token_audience=AUDIENCE, token_jwks_file=world["jwks"], voms_dir=world["vomsdir"],
                      pilot_vos=json.dumps([VO]),
                      extra=["--no-daemon", "--ssl-port", str(ssl_port), "--ssl-cert", str(world["host"]),
                             "--ssl-key", str(world["host"]), "--ca-dir", str(world["ca_dir"])]) as running:
        yield running, f"https://127.0.0.1:{ssl_port}"


@pytest.fixture(scope="module")
def tb(pg_url: str) -> Iterator[TaskBuffer]:
    buffer = TaskBuffer(load_settings(db_url=pg_url, db_bridge=False, db_connections=1))
    yield buffer
    buffer.close()


@pytest.fixture
def queue(tb: TaskBuffer) -> str:
    """A new online queue (its jobs are this test's only)."""
    name = f"Q_{secrets.token_hex(4).upper()}"
    tb.add_queue(name, name, "online", {"astorages": {a: ["LOCAL_DISK"] for a in ("pr", "pw", "pl")}})
    return name


def jobs_at(tb: TaskBuffer, queue: str) -> int:
    return sum(row[-1] for row in tb.job_statistics() if row[0] == queue)


def x509_env(world: dict[str, Any], proxy: Path) -> dict[str, str]:
    return {"X509_USER_PROXY": str(proxy), "X509_CERT_DIR": str(world["ca_dir"])}


def token(world: dict[str, Any], subject: str, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "iat": now, "exp": now + 3600,
               "groups": [VO], "name": "token tester", **claims}
    return jwt.encode(payload, world["issuer_key"], algorithm="RS256", headers={"kid": "test-key"})


def oidc_env(world: dict[str, Any], home: Path, id_token: str, vo: str = VO) -> dict[str, str]:
    """``PANDA_AUTH=oidc``: the client reads its cached token from ``$PANDA_CONFIG_ROOT/.token`` (where its
    device flow leaves it), and sends ``Origin: <PANDA_AUTH_VO>``; ``X509_CERT_DIR`` verifies the server."""
    config_root = home / ".pathena"
    config_root.mkdir(parents=True, exist_ok=True)
    (config_root / ".token").write_text(json.dumps({"id_token": id_token}))
    return {"PANDA_AUTH": "oidc", "PANDA_AUTH_VO": vo, "X509_CERT_DIR": str(world["ca_dir"])}


def app_calls(apache: RunningApache, since: int) -> list[str]:
    """The application's access lines (in Apache's error log) after offset ``since`` of ``apache.log()``, as
    ``"POST panda getJob caller=Pilot_Factory status=200"`` without the time."""
    return [line.split(" INFO ", 1)[1].rsplit(" time=", 1)[0] for line in apache.log()[since:].splitlines()
            if "pandasrv.access INFO" in line]


def submit(base: str, home: Path, env: dict[str, str], queue: str, tag: str) -> list[int]:
    status, data = run_panda_client(base, home, SUBMIT.format(tag=tag, site=queue), env=env)
    assert status == 0, data
    assert len(data) == 3 and all(isinstance(entry[0], int) and entry[0] > 0 for entry in data), data
    return [entry[0] for entry in data]


def owners(db_url: str, ids: list[int]) -> set[str]:
    return {peek_job(db_url, panda_id).prodUserName for panda_id in ids}


@pytest.mark.parametrize("how", ["x509", "oidc"])
def test_panda_client_over_https(https: tuple[RunningApache, str], world: dict[str, Any], pg_url: str, queue: str,
                                 tmp_path: Path, how: str) -> None:
    base = https[1]
    subject = f"sub-{secrets.token_hex(4)}"
    env = x509_env(world, world["alice_proxy"]) if how == "x509" else oidc_env(world, tmp_path, token(world, subject))
    expected_owner = "Alice Tester" if how == "x509" else token_owner(ISSUER, subject)

    status, message = run_panda_client(base, tmp_path, "emit(Client.hello())", env=env)
    assert status == 0 and isinstance(message, str), message

    ids = submit(base, tmp_path, env, queue, how)
    assert owners(pg_url, ids) == {expected_owner}
    status, described = run_panda_client(base, tmp_path, STATUS.format(function="getJobStatus", ids=ids), env=env)
    assert status == 0 and [entry[0] for entry in described] == ids

    status, answer = run_panda_client(base, tmp_path, f"emit(Client.killJobs({ids[:2]!r}))", env=env)
    assert status == 0 and answer == [True, True]
    assert [peek_job(pg_url, pid).jobStatus for pid in ids][:2] == ["cancelled", "cancelled"]

    payload = tmp_path / f"sources.{how}-{secrets.token_hex(4)}.tar.gz"
    payload.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 8)
    status, answer = run_panda_client(base, tmp_path, f"emit(Client.putFile({str(payload)!r}))", env=env)
    assert status == 0 and answer == "True", answer
    fetched = httpx.get(f"{https[0].url}/cache/{payload.name}")
    assert fetched.status_code == 200 and fetched.content == payload.read_bytes()



def test_refused_credentials_never_submit(https: tuple[RunningApache, str], world: dict[str, Any], tb: TaskBuffer,
                                          queue: str, tmp_path: Path) -> None:
    """The faults ``test_tls.py`` sends with httpx, sent by panda-client: the TLS handshake (a chain that does
    not verify) or the token check refuses them, the client reports a failure, and no job exists."""
    base, now = world["base"], datetime.datetime.now(datetime.timezone.utc)
    log_before = len(https[0].log())
    stranger = pki.user(pki.make_ca("stranger CA"), "Mallory")
    expired = pki.proxy(world["alice"], days=1, start=now - datetime.timedelta(days=3))
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": int(time.time()) + 3600,
                         "groups": [VO]}, other_key, algorithm="RS256", headers={"kid": "test-key"})
    homes = [tmp_path / f"client{i}" for i in range(4)]
    for home in homes:
        home.mkdir()
    cases = {
        "proxy of an unknown CA's user": (homes[0], x509_env(world, pki.proxy(stranger).write(base / "stranger.pem"))),
        "expired proxy": (homes[1], x509_env(world, expired.write(base / "expired_proxy.pem"))),
        "token signed by another key": (homes[2], oidc_env(world, homes[2], forged)),
        "token without the VO group": (homes[3], oidc_env(world, homes[3], token(world, "nogroup", groups=["other"]))),
    }
    for name, (home, env) in cases.items():
        status, data = run_panda_client(https[1], home, SUBMIT.format(tag=name, site=queue), env=env)
        assert status != 0 and not data, (name, status, data)
    assert jobs_at(tb, queue) == 0
    # the chains end in the handshake; the tokens reach the application and get its 403 (its access lines are
    # written before the reply, Apache's access log only after it)
    assert app_calls(https[0], log_before) == ["POST job submit caller=- status=403"] * 2


def get_job(base: str, world: dict[str, Any], proxy: Path, queue: str, label: str | None) -> dict[str, str]:
    """One getJob as a pilot sends it, over https with ``proxy`` as the client certificate."""
    context = ssl.create_default_context(capath=str(world["ca_dir"]))
    context.load_cert_chain(str(proxy))
    form = {"siteName": queue, "node": "wn.test", **({"prodSourceLabel": label} if label else {})}
    reply = httpx.post(f"{base}/server/panda/getJob", data=form, verify=context, timeout=60)
    assert reply.status_code == 200, reply.text
    return {key: values[0] for key, values in parse_qs(reply.text).items()}


def test_only_a_pilot_role_gets_a_production_job(https: tuple[RunningApache, str], world: dict[str, Any],
                                                 pg_url: str, queue: str, tmp_path: Path) -> None:
    """A production manager submits managed jobs with panda-client (VOMS proxy, ``Role=production``; a plain
    member of the VO may not); a user's proxy, with or without a VOMS membership, gets none of them, whatever
    it asks for; a pilot role does."""
    base = https[1]
    managed = SUBMIT.replace('job.prodSourceLabel = "user"', 'job.prodSourceLabel = "managed"')
    status, data = run_panda_client(base, tmp_path, managed.format(tag="member", site=queue),
                                    env=x509_env(world, world["member_proxy"]))
    assert status != 0 and not data, "a VOMS membership without Role=production submits no managed job"
    status, data = run_panda_client(base, tmp_path, managed.format(tag="managed", site=queue),
                                    env=x509_env(world, world["production_proxy"]))
    assert status == 0 and len(data) == 3, data
    ids = [entry[0] for entry in data]
    assert {peek_job(pg_url, pid).prodSourceLabel for pid in ids} == {"managed"}
    wait_activated(pg_url, ids)
    for proxy in ("alice_proxy", "member_proxy"):
        for label in ("managed", "user", None):
            reply = get_job(base, world, world[proxy], queue, label)
            assert "PandaID" not in reply and reply["StatusCode"] != "0", (proxy, label, reply)
    assert {peek_job(pg_url, pid).jobStatus for pid in ids} == {"activated"}
    reply = get_job(base, world, world["pilot_proxy"], queue, "managed")
    assert reply["StatusCode"] == "0" and int(reply["PandaID"]) in ids, reply


def test_a_token_role_is_chosen_with_panda_auth_vo(https: tuple[RunningApache, str], world: dict[str, Any],
                                                    pg_url: str, queue: str, tmp_path: Path) -> None:
    """One token with the groups ``pandasrv`` and ``pandasrv/production``: ``PANDA_AUTH_VO=pandasrv:production``
    (sent as ``Origin``) submits managed jobs, ``PANDA_AUTH_VO=pandasrv`` the same token may not."""
    managed = SUBMIT.replace('job.prodSourceLabel = "user"', 'job.prodSourceLabel = "managed"')
    id_token = token(world, "manager", groups=[VO, f"{VO}/production"])
    results = {}
    for vo in (VO, f"{VO}:production"):
        home = tmp_path / vo.replace(":", "_")
        results[vo] = run_panda_client(https[1], home, managed.format(tag=vo, site=queue),
                                       env=oidc_env(world, home, id_token, vo))
    assert results[VO][0] != 0 and not results[VO][1], results[VO]
    status, data = results[f"{VO}:production"]
    assert status == 0 and len(data) == 3, data
    assert {peek_job(pg_url, entry[0]).prodSourceLabel for entry in data} == {"managed"}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_real_pilot_over_https(https: tuple[RunningApache, str], world: dict[str, Any], pg_url: str, queue: str,
                               tmp_path: Path) -> None:
    """The real pilot, run as ``tests/web/test_real_pilot.py`` runs it but with ``--url https://127.0.0.1``, the
    HTTPS port, ``X509_USER_PROXY`` from ``voms-proxy-fake`` (``/pandasrv/Role=pilot``) and ``X509_CERT_DIR``:
    it gets the user job Alice submitted and reports it up to its final state, as over http."""
    if not can_unshare():
        skip_or_fail("unshare --pid is not permitted here; the real pilot must not run outside a PID namespace")
    base = https[1]
    job_scripts = tmp_path / "harvester"
    transformation = place_job_script(job_scripts, "#!/bin/sh\necho \"payload says: $*\"\n")
    alice = ClientIdentity(proxy=world["alice_proxy"], ca_dir=world["ca_dir"])
    (panda_id,) = submit_jobs(f"{base}/server/panda", JobRequest(site=queue, transformation=transformation,
                                                                 arguments="over https"), 1, identity=alice)
    wait_activated(pg_url, [panda_id])
    queuedata = httpx.get(f"{https[0].url}/cache/schedconfig/{queue}.all.json").json()
    log_before = len(https[0].log())

    proc = run_real_pilot(port=httpx.URL(base).port, queue=queue, queuedata=queuedata, workdir=tmp_path / "pilot",
                          job_scripts=job_scripts, base="https://127.0.0.1", proxy=world["pilot_proxy"],
                          cert_dir=world["ca_dir"])
    pilot_log = (proc.stdout + proc.stderr)[-3000:]
    assert f'saved data from "{base}/cache/schedconfig/{queue}.all.json"' in proc.stdout + proc.stderr, pilot_log
    # the application's access lines name the caller: the owner of the pilot proxy, which only the TLS port
    # can vouch for
    calls = app_calls(https[0], log_before)
    assert calls[:1] == ["POST panda getJob caller=Pilot_Factory status=200"], (calls, pilot_log)
    assert len(calls) >= 4 and set(calls[1:]) == {"POST panda updateJob caller=Pilot_Factory status=200"}, calls
    job = peek_job(pg_url, panda_id)
    assert job.jobStatus == "holding", (job.jobStatus, job.pilotErrorCode, job.pilotErrorDiag, pilot_log)
    assert job.pilotErrorCode == 0 and job.transExitCode == "0", (job.pilotErrorDiag, pilot_log)
    assert job.prodUserName == "Alice Tester" and job.pilotID and PILOT_VERSION in job.pilotID
    history = status_history(pg_url, panda_id)
    assert history.index("sent") < history.index("starting") < history.index("running") < history.index("holding")
    (row,) = output_reports(pg_url, panda_id)
    assert row["jobStatus"] == "finished"
