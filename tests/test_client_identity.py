"""The bundled clients' credentials: every combination of option and panda-client variable resolves to the
identity panda-client would use, and a credential named but unusable is a one-line IdentityError."""

from __future__ import annotations

import itertools
import ssl
from pathlib import Path
from typing import Any

import pytest

from pandasrv import client_identity
from pandasrv.client_identity import ClientIdentity, IdentityError
from tests.deploy import pki


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A proxy, a CA directory and a token file; neither grid default (/tmp/x509up_u<uid>, the grid CA
    directory) exists while the test runs."""
    monkeypatch.setattr(client_identity, "GRID_CA_DIR", tmp_path / "no-grid-certificates")
    monkeypatch.setattr(client_identity, "default_proxy", lambda: tmp_path / "no-x509up")
    ca = pki.make_ca("identity test CA")
    token = tmp_path / "token"
    token.write_text("header.payload.signature\n")
    return {"proxy": pki.proxy(pki.user(ca, "Alice")).write(tmp_path / "proxy.pem"),
            "ca_dir": pki.ca_dir(tmp_path / "certificates", ca), "token": token}


# (option given?, variable given?) for each credential; the option wins, a variable is the default
SOURCES = list(itertools.product([False, True], repeat=2))


@pytest.mark.parametrize(("proxy_source", "ca_source"), itertools.product(SOURCES, SOURCES))
def test_proxy_and_ca_dir_from_option_or_variable(files: dict[str, Path], tmp_path: Path,
                                                  proxy_source: tuple[bool, bool], ca_source: tuple[bool, bool]) -> None:
    other_ca = pki.ca_dir(tmp_path / "other", pki.make_ca("other CA"))
    other_proxy = pki.user(pki.make_ca("x"), "Bob").write(tmp_path / "bob.pem")
    env = {**({"X509_USER_PROXY": str(other_proxy)} if proxy_source[1] else {}),
           **({"X509_CERT_DIR": str(other_ca)} if ca_source[1] else {})}
    identity = ClientIdentity.resolve(proxy=str(files["proxy"]) if proxy_source[0] else None,
                                      ca_dir=str(files["ca_dir"]) if ca_source[0] else None, environ=env)
    assert identity.proxy == (files["proxy"] if proxy_source[0] else other_proxy if proxy_source[1] else None)
    assert identity.ca_dir == (files["ca_dir"] if ca_source[0] else other_ca if ca_source[1] else None)
    assert identity.token is None and identity.headers() == {} and identity.verify


def test_grid_defaults_are_used_when_they_exist(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_identity, "GRID_CA_DIR", files["ca_dir"])
    monkeypatch.setattr(client_identity, "default_proxy", lambda: files["proxy"])
    identity = ClientIdentity.resolve(environ={})
    assert (identity.proxy, identity.ca_dir) == (files["proxy"], files["ca_dir"])


TOKEN_VARIABLES = [{"PANDA_AUTH_ID_TOKEN": "header.payload.signature"}, {"OIDC_AUTH_TOKEN_FILE": "<token>"},
                   {"OIDC_AUTH_ID_TOKEN": " header.payload.signature\n"}]


@pytest.mark.parametrize("variables", TOKEN_VARIABLES)
@pytest.mark.parametrize("vo_from", ["option", "variable"])
def test_a_token_replaces_the_proxy_and_carries_its_vo(files: dict[str, Path], variables: dict[str, str],
                                                       vo_from: str) -> None:
    env = {"PANDA_AUTH": "oidc", "X509_USER_PROXY": str(files["proxy"]),
           **{k: v.replace("<token>", str(files["token"])) for k, v in variables.items()},
           **({"PANDA_AUTH_VO": "myvo:production"} if vo_from == "variable" else {})}
    identity = ClientIdentity.resolve(vo="myvo:production" if vo_from == "option" else None, environ=env)
    assert identity.headers() == {"Authorization": "Bearer header.payload.signature", "Origin": "myvo:production"}
    assert identity.proxy is None


def test_token_variables_count_only_with_panda_auth_oidc(files: dict[str, Path]) -> None:
    for variables in TOKEN_VARIABLES:
        env = {k: v.replace("<token>", str(files["token"])) for k, v in variables.items()}
        assert ClientIdentity.resolve(environ={**env, "PANDA_AUTH_VO": "myvo"}).token is None
    assert ClientIdentity.resolve(token_file=str(files["token"]), vo="myvo", environ={}).token == "header.payload.signature"


def unusable_cases(files: dict[str, Path], tmp_path: Path) -> dict[str, dict[str, Any]]:
    spaced = tmp_path / "spaced"
    spaced.write_text("two tokens\n")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00")
    missing = str(tmp_path / "missing")
    return {
        "token without a vo": {"token_file": str(files["token"])},
        "oidc without a token": {"environ": {"PANDA_AUTH": "oidc", "PANDA_AUTH_VO": "myvo"}},
        "missing token file": {"token_file": missing, "vo": "v"},
        "empty token file": {"token_file": str(empty), "vo": "v"},
        "token file with spaces": {"token_file": str(spaced), "vo": "v"},
        "binary token file": {"token_file": str(binary), "vo": "v"},
        "token file is a directory": {"token_file": str(tmp_path), "vo": "v"},
        "missing proxy option": {"proxy": missing},
        "missing proxy variable": {"environ": {"X509_USER_PROXY": missing}},
        "missing CA dir option": {"ca_dir": missing},
        "missing CA dir variable": {"environ": {"X509_CERT_DIR": missing}},
        "CA dir is a file": {"ca_dir": str(files["token"])},
    }


def test_unusable_credentials_are_one_line_errors(files: dict[str, Path], tmp_path: Path) -> None:
    for name, kwargs in unusable_cases(files, tmp_path).items():
        with pytest.raises(IdentityError) as raised:
            ClientIdentity.resolve(**{"environ": {}, **kwargs})
        assert len(str(raised.value).splitlines()) == 1, name


def test_a_proxy_that_is_not_a_key_and_certificate_is_an_identity_error(files: dict[str, Path]) -> None:
    identity = ClientIdentity(proxy=files["token"])
    with pytest.raises(IdentityError, match="cannot use the proxy"):
        identity.tls_context()


def test_tls_context_verifies_unless_told_not_to(files: dict[str, Path]) -> None:
    strict = ClientIdentity.resolve(proxy=str(files["proxy"]), ca_dir=str(files["ca_dir"]), environ={}).tls_context()
    assert strict.verify_mode == ssl.CERT_REQUIRED and strict.check_hostname
    for kwargs in ({"no_verify": True, "environ": {}}, {"environ": {"PANDA_VERIFY_HOST": "off"}}):
        loose = ClientIdentity.resolve(**kwargs).tls_context()  # type: ignore[arg-type]
        assert loose.verify_mode == ssl.CERT_NONE and not loose.check_hostname


def test_plain_http_never_reads_the_proxy(files: dict[str, Path]) -> None:
    """panda-client sends no certificate over http; a broken proxy file must not stop an http call."""
    with ClientIdentity(proxy=files["token"]).http_client("http://127.0.0.1:9", timeout=1):
        pass
    with pytest.raises(IdentityError):
        ClientIdentity(proxy=files["token"]).http_client("https://127.0.0.1:9", timeout=1)
