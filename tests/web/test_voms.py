"""VOMS attribute certificates: FQANs only from an AC that verifies, by class of fault.

A test CA, a user, VOMS servers (one described by an ``.lsc`` file, one configured as a certificate file) and
the ACs are made here (``tests/deploy/pki.py``); one proxy comes from the real ``voms-proxy-fake``. Every fault
of the matrix must give no FQANs, no role and exactly one log line.
"""

from __future__ import annotations

import datetime
import logging
from pathlib import Path
from typing import Any, Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pandasrv.config import load_settings
from pandasrv.web.auth import Authenticator, has_pilot_role
from pandasrv.web.voms import VomsVerifier
from tests.deploy import pki
from tests.deploy.conftest import require

VO = "pandasrv"
PILOT = [f"/{VO}/Role=pilot", f"/{VO}"]
NOW = datetime.datetime.now(datetime.timezone.utc)  # a fixed point for validity windows built at import


def now() -> datetime.datetime:
    """The time of the check: the good ACs are made when the test runs, which can be long after import."""
    return datetime.datetime.now(datetime.timezone.utc)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("voms")
    ca, stranger_ca = pki.make_ca("voms test CA"), pki.make_ca("stranger CA")
    lsc_server, file_server, other_vo_server = (pki.voms_server(ca, name) for name in ("voms.test", "file.test", "other.test"))
    stranger_server = pki.voms_server(stranger_ca, "voms.test")
    impostor_server = pki.voms_server(pki.make_ca("voms test CA"), "voms.test")  # the lsc's DNs, another CA key
    expired_server = pki.issue(pki.voms_server(ca, "old.test").cert.subject, ca, days=1,
                               start=NOW - datetime.timedelta(days=3))
    voms_dir = pki.vomsdir(base / "vomsdir", VO, lsc_server)
    (voms_dir / VO / "file.test.pem").write_bytes(file_server.cert.public_bytes(serialization.Encoding.PEM))
    (voms_dir / VO / "old.test.pem").write_bytes(expired_server.cert.public_bytes(serialization.Encoding.PEM))
    (voms_dir / "othervo").mkdir()
    (voms_dir / "othervo" / "other.test.pem").write_bytes(other_vo_server.cert.public_bytes(serialization.Encoding.PEM))
    ca_dir = pki.ca_dir(base / "certificates", ca)
    return {"base": base, "ca": ca, "alice": pki.user(ca, "Alice Tester"), "bob": pki.user(ca, "Bob Tester"),
            "lsc": lsc_server, "file": file_server, "other_vo": other_vo_server,
            "stranger": stranger_server, "impostor": impostor_server,
            "expired_server": expired_server, "voms_dir": voms_dir, "ca_dir": ca_dir,
            "verifier": VomsVerifier.from_paths(str(voms_dir), str(ca_dir))}


def chain(proxy: pki.Credential) -> list[Any]:
    return [proxy.cert, *proxy.chain]


def environ(proxy: pki.Credential, verify: str = "SUCCESS") -> dict[str, str]:
    """What mod_ssl exports for a client chain (``SSLOptions +StdEnvVars +ExportCertData``)."""
    pems = [c.public_bytes(serialization.Encoding.PEM).decode() for c in chain(proxy)]
    env = {"SSL_CLIENT_VERIFY": verify, "SSL_CLIENT_CERT": pems[0], "SSL_CLIENT_S_DN": pki.slash_dn(proxy.cert)}
    env.update({f"SSL_CLIENT_CERT_CHAIN_{i}": pem for i, pem in enumerate(pems[1:])})
    return env


def good(world: dict[str, Any], server: str = "lsc", **options: Any) -> pki.Credential:
    alice = world["alice"]
    return pki.proxy(alice, voms=pki.voms_extension(pki.voms_ac(world[server], alice, VO, PILOT, **options)))


@pytest.mark.parametrize("server", ["lsc", "file"])
def test_a_good_ac_gives_its_fqans(world: dict[str, Any], server: str) -> None:
    (found,) = world["verifier"].verify_chain(chain(good(world, server)), now())
    assert (found.vo, found.fqans) == (VO, tuple(PILOT))


def test_a_proxy_of_a_proxy_keeps_the_ac(world: dict[str, Any]) -> None:
    assert world["verifier"].fqans(environ(pki.proxy(good(world)))) == tuple(PILOT)


def test_voms_proxy_fake_proxy_gives_its_fqans(world: dict[str, Any]) -> None:
    require("voms-proxy-fake", "voms-clients")
    path = pki.voms_proxy_fake(world["alice"], world["lsc"], world["base"] / "fake", world["ca_dir"], VO, PILOT,
                               "-hours", "2")
    (found,) = world["verifier"].verify_chain(x509.load_pem_x509_certificates(path.read_bytes()), now())
    assert found.fqans == tuple(PILOT)


FAULTS: dict[str, Callable[[dict[str, Any]], pki.Credential]] = {
    "wrong signer key": lambda w: good(w, sign_with=w["bob"].key),
    "expired": lambda w: good(w, start=NOW - datetime.timedelta(days=2), hours=1),
    "not yet valid": lambda w: good(w, start=NOW + datetime.timedelta(hours=1)),
    "holder serial mismatch": lambda w: good(w, holder_serial=w["bob"].cert.serial_number),
    "holder name mismatch": lambda w: good(w, holder_name=w["bob"].cert.subject),
    "AC of another user": lambda w: pki.proxy(w["alice"], voms=pki.voms_extension(
        pki.voms_ac(w["lsc"], w["bob"], VO, PILOT))),
    "garbage DER": lambda w: pki.proxy(w["alice"], voms=b"\x30\x05\x02\x03garbage"),
    "truncated AC": lambda w: pki.proxy(w["alice"], voms=pki.voms_extension(
        pki.voms_ac(w["lsc"], w["alice"], VO, PILOT))[:-40]),
    "DER that is no AC": lambda w: pki.proxy(w["alice"], voms=bytes.fromhex("3008300602010102010a")),
    "missing extension": lambda w: pki.proxy(w["alice"]),
    "lsc chain of another CA": lambda w: good(w, "stranger"),
    "lsc DNs, but a CA key that is not trusted": lambda w: good(w, "impostor"),
    "signer neither in lsc nor a file": lambda w: good(w, "lsc", carry=()),
    "lsc names another server": lambda w: good(w, "other_vo"),
    "server certificate of another VO": lambda w: good(w, "other_vo", carry=()),
    "expired server certificate": lambda w: good(w, "expired_server", carry=()),
    "FQAN of another VO": lambda w: pki.proxy(w["alice"], voms=pki.voms_extension(
        pki.voms_ac(w["lsc"], w["alice"], VO, ["/atlas/Role=production"]))),
    "unknown critical extension": lambda w: good(w, critical_oid="2.5.29.55"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_every_fault_gives_no_fqans_no_role_and_one_log_line(world: dict[str, Any], fault: str,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    proxy = FAULTS[fault](world)
    verifier = VomsVerifier.from_paths(str(world["voms_dir"]), str(world["ca_dir"]))
    with caplog.at_level(logging.INFO, logger="pandasrv.web.voms"):
        assert verifier.fqans(environ(proxy)) == ()
        assert verifier.fqans(environ(proxy)) == ()  # the verdict is cached: still one line
    assert len([r for r in caplog.records if r.name == "pandasrv.web.voms"]) == 1, caplog.text
    settings = load_settings(auth="x509", voms_dir=str(world["voms_dir"]), voms_ca_dir=str(world["ca_dir"]),
                             pilot_vos=[VO])
    identity = Authenticator(settings).identify(environ(proxy))
    assert identity.dn == pki.slash_dn(proxy.cert) and identity.fqans == ()
    assert not has_pilot_role(identity, settings)


@pytest.mark.parametrize("verify", ["NONE", "FAILED:self signed certificate", "GENEROUS"])
def test_a_chain_mod_ssl_did_not_verify_is_never_read(world: dict[str, Any], verify: str) -> None:
    assert world["verifier"].fqans(environ(good(world), verify=verify)) == ()


def test_the_vo_names_of_the_role_rules_are_settings(world: dict[str, Any]) -> None:
    env = environ(good(world))
    for pilot_vos, expected in (([VO], True), (["atlas"], False)):
        settings = load_settings(auth="x509", voms_dir=str(world["voms_dir"]), voms_ca_dir=str(world["ca_dir"]),
                                 pilot_vos=pilot_vos)
        identity = Authenticator(settings).identify(env)
        assert identity.fqans == tuple(PILOT) and identity.vo == VO
        assert has_pilot_role(identity, settings) is expected


def test_without_a_vomsdir_no_ac_is_read(world: dict[str, Any], tmp_path: Path) -> None:
    identity = Authenticator(load_settings(auth="x509")).identify(environ(good(world)))
    assert identity.fqans == ()
    empty = VomsVerifier.from_paths(str(tmp_path / "missing"), str(world["ca_dir"]))
    assert empty.fqans(environ(good(world))) == ()
