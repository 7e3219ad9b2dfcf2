"""HTTPS through ``pandasrv apache``: identities only from client chains that verify against the CA directory.

One Apache for the module (auth = x509), a test CA made here; the client certificates are plain user
certificates, RFC 3820 proxies (accepted thanks to the apxs-built module), and the ones that must never become
an identity: a self-signed certificate, a certificate of an unknown CA, an expired proxy, a forged DN header.
"""

from __future__ import annotations

import datetime
import json
import ssl
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests.deploy import pki
from tests.deploy.conftest import RunningApache, start_apache
from tests.web.conftest import free_port


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("pki")
    ca = pki.make_ca("pandasrv test CA")
    alice = pki.user(ca, "Alice Tester")
    server = pki.host(ca, "127.0.0.1")
    return {"base": base, "ca": ca, "alice": alice, "ca_dir": pki.ca_dir(base / "certificates", ca),
            "server_cert": server.write(base / "host.pem"), "ca_file": pki.ca_dir(base / "trust", ca) / "ca0.pem"}


@pytest.fixture(scope="module")
def https(pg_url: str, world: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningApache, str]]:
    ssl_port = free_port()
    host_pem = str(world["server_cert"])
    with start_apache(pg_url, tmp_path_factory.mktemp("apache-tls"), auth="x509",
                      extra=["--no-daemon", "--ssl-port", str(ssl_port), "--ssl-cert", host_pem, "--ssl-key", host_pem,
                             "--ca-dir", str(world["ca_dir"])]) as running:
        yield running, f"https://127.0.0.1:{ssl_port}"


def attributes(base: str, world: dict[str, Any], credential: Path | None, **headers: str) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=str(world["ca_file"]))
    if credential is not None:
        context.load_cert_chain(str(credential))
    reply = httpx.get(f"{base}/api/v1/system/get_attributes", verify=context, headers=headers, timeout=30)
    reply.raise_for_status()
    return reply.json()["data"]


def test_is_alive_over_https(https: tuple[RunningApache, str], world: dict[str, Any]) -> None:
    context = ssl.create_default_context(cafile=str(world["ca_file"]))
    assert httpx.get(f"{https[1]}/server/panda/isAlive", verify=context).text == "alive=yes"


def test_plain_user_certificate_gives_its_slash_dn(https: tuple[RunningApache, str], world: dict[str, Any]) -> None:
    data = attributes(https[1], world, world["alice"].write(world["base"] / "alice.pem"))
    assert data["dn"] == pki.slash_dn(world["alice"].cert) == "/DC=test/OU=people/CN=Alice Tester"


@pytest.mark.parametrize("depth", [1, 2])
def test_rfc3820_proxy_is_accepted_and_gives_the_proxy_dn(https: tuple[RunningApache, str], world: dict[str, Any],
                                                         depth: int) -> None:
    credential = world["alice"]
    for _ in range(depth):
        credential = pki.proxy(credential)
    data = attributes(https[1], world, credential.write(world["base"] / f"proxy{depth}.pem"))
    assert data["dn"].startswith(pki.slash_dn(world["alice"].cert) + "/CN=")
    assert data["user"] == "Alice Tester"


def _refused(base: str, world: dict[str, Any], credential: Path) -> bool:
    try:
        data = attributes(base, world, credential)
    except (httpx.HTTPError, ssl.SSLError):
        return True
    return data["dn"] is None


def test_no_identity_without_a_verified_chain(https: tuple[RunningApache, str], world: dict[str, Any]) -> None:
    base = world["base"]
    stranger_ca = pki.make_ca("stranger CA")
    self_signed = pki.issue(pki.user(stranger_ca, "Mallory").cert.subject, None)
    expired = pki.proxy(world["alice"], days=1, start=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=3))
    cases = {"unknown CA": pki.user(stranger_ca, "Mallory"), "self-signed": self_signed,
             "proxy of an unknown CA's user": pki.proxy(pki.user(stranger_ca, "Mallory")), "expired proxy": expired}
    for name, credential in cases.items():
        assert _refused(https[1], world, credential.write(base / f"{name.replace(' ', '_')}.pem")), name
    forged = attributes(https[1], world, None, **{"X-SSL-Client-S-DN": "/DC=test/CN=root", "SSL-Client-S-DN": "/CN=x"})
    assert forged["dn"] is None



def test_bundled_clients_present_the_proxy_and_verify_the_server(https: tuple[RunningApache, str], world: dict[str, Any],
                                                                 pg_url: str, tmp_path: Path) -> None:
    """``pandasrv submit/status/jobs`` over https with panda-client's credentials: the proxy's owner
    owns the jobs; a server the CA directory does not vouch for is one line and exit 1."""
    from click.testing import CliRunner

    from pandasrv.cli import main

    def pandasrv(*args: str, env: dict[str, str] | None = None) -> Any:
        return CliRunner().invoke(main, list(args), env=env)

    assert pandasrv("queue", "add", "TLS_Q", "--if-missing", "--db", pg_url).exit_code == 0
    proxy = pki.proxy(world["alice"]).write(tmp_path / "x509up")
    submit = pandasrv("submit", "--url", https[1], "--site", "TLS_Q", "--trf", "echo", "-n", "2",
                      "--proxy", str(proxy), "--ca-dir", str(world["ca_dir"]))
    assert submit.exit_code == 0, submit.output + submit.stderr
    ids = submit.stdout.split()
    grid_env = {"X509_USER_PROXY": str(proxy), "X509_CERT_DIR": str(world["ca_dir"])}
    status = pandasrv("status", "--url", https[1], *ids, env=grid_env)
    assert status.exit_code == 0 and len(status.stdout.splitlines()) == 2, status.stderr
    shown = pandasrv("jobs", "show", "--url", https[1], ids[0], "--json", env=grid_env)
    assert shown.exit_code == 0 and json.loads(shown.stdout)["attributes"]["prodUserName"] == "Alice Tester"

    untrusted = pki.ca_dir(tmp_path / "other-cas", pki.make_ca("some other CA"))
    refused = pandasrv("status", "--url", https[1], ids[0], "--proxy", str(proxy), "--ca-dir", str(untrusted))
    assert refused.exit_code == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "certificate verify failed" in refused.stderr.lower()
