"""How the bundled clients (``pandasrv submit``, ``status``, ``jobs``, ``pilot``) prove who they are.

They follow panda-client's conventions, so that a user who has set up panda-client has set up these too:
a grid proxy (``X509_USER_PROXY``, else ``/tmp/x509up_u<uid>``) as the TLS client certificate, the CA
directory ``X509_CERT_DIR`` (else ``/etc/grid-security/certificates``) to verify the server, and with
``PANDA_AUTH=oidc`` an ID token (``PANDA_AUTH_ID_TOKEN``, ``OIDC_AUTH_TOKEN_FILE`` or
``OIDC_AUTH_ID_TOKEN``) sent as ``Authorization: Bearer`` with the VO of ``PANDA_AUTH_VO`` as ``Origin``.
Command-line options override the environment. Unlike panda-client, a token file's trailing newline is
stripped (panda-client sends it and httpx refuses the header), and a credential named explicitly but
missing is an error instead of a silent anonymous call.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import httpx

GRID_CA_DIR = Path("/etc/grid-security/certificates")


class IdentityError(ValueError):
    """A credential option or variable that cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class ClientIdentity:
    proxy: Path | None = None
    ca_dir: Path | None = None
    token: str | None = None
    origin: str | None = None
    verify: bool = True

    @classmethod
    def resolve(cls, *, proxy: str | None = None, ca_dir: str | None = None, token_file: str | None = None,
                vo: str | None = None, no_verify: bool = False,
                environ: Mapping[str, str] | None = None) -> ClientIdentity:
        """The identity from the options, falling back to panda-client's environment variables."""
        env = os.environ if environ is None else environ
        token = _token(token_file, env)
        origin = vo or env.get("PANDA_AUTH_VO") or None
        if token is not None and not origin:
            raise IdentityError("a token needs its VO: give --vo or set PANDA_AUTH_VO (e.g. myvo or myvo:production)")
        return cls(proxy=None if token is not None else _proxy(proxy, env), ca_dir=_ca_dir(ca_dir, env),
                   token=token, origin=origin if token is not None else None,
                   verify=not (no_verify or env.get("PANDA_VERIFY_HOST", "").lower() in ("off", "0", "false")))

    def headers(self) -> dict[str, str]:
        if self.token is None:
            return {}
        return {"Authorization": f"Bearer {self.token}", "Origin": self.origin or ""}

    def tls_context(self) -> ssl.SSLContext:
        """The context for https: the server verified against the CA directory (or the system's trust
        store when there is none), the proxy offered as the client certificate."""
        context = ssl.create_default_context(capath=str(self.ca_dir) if self.ca_dir else None)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.proxy is not None:
            try:
                context.load_cert_chain(str(self.proxy))
            except (OSError, ssl.SSLError) as exc:
                raise IdentityError(f"cannot use the proxy {self.proxy}: {exc}") from None
        return context

    def http_client(self, url: str, *, timeout: float) -> httpx.Client:
        """A client that carries this identity on every request to ``url``. A plain-http URL gets no TLS
        context, so that it never reads a proxy file (panda-client does the same)."""
        verify: ssl.SSLContext | bool = self.tls_context() if url.startswith("https://") else True
        return httpx.Client(timeout=timeout, headers=self.headers(), verify=verify)


def _token(token_file: str | None, env: Mapping[str, str]) -> str | None:
    if token_file:
        return _read_token(Path(token_file))
    if env.get("PANDA_AUTH", "").lower() != "oidc":
        return None
    if env.get("PANDA_AUTH_ID_TOKEN"):
        return env["PANDA_AUTH_ID_TOKEN"].strip()
    if env.get("OIDC_AUTH_TOKEN_FILE"):
        return _read_token(Path(env["OIDC_AUTH_TOKEN_FILE"]))
    if env.get("OIDC_AUTH_ID_TOKEN"):
        return env["OIDC_AUTH_ID_TOKEN"].strip()
    raise IdentityError("PANDA_AUTH=oidc but no token: give --token-file or set PANDA_AUTH_ID_TOKEN "
                        "or OIDC_AUTH_TOKEN_FILE")


def _read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise IdentityError(f"cannot read the token file {path}: {exc}") from None
    if not token or any(ch.isspace() for ch in token):
        raise IdentityError(f"the token file {path} does not hold one token (it is empty or has spaces inside)")
    return token


def _proxy(option: str | None, env: Mapping[str, str]) -> Path | None:
    named = _named_path(option, env, "X509_USER_PROXY", "proxy", "--proxy", Path.is_file)
    if named is not None:
        return named
    default = default_proxy()
    return default if default.is_file() else None


def default_proxy() -> Path:
    """Where grid tools put a user's proxy when ``X509_USER_PROXY`` is not set."""
    return Path(f"/tmp/x509up_u{os.getuid()}")


def _ca_dir(option: str | None, env: Mapping[str, str]) -> Path | None:
    named = _named_path(option, env, "X509_CERT_DIR", "CA directory", "--ca-dir", Path.is_dir)
    if named is not None:
        return named
    return GRID_CA_DIR if GRID_CA_DIR.is_dir() else None


def _named_path(option: str | None, env: Mapping[str, str], variable: str, what: str, flag: str,
                usable: Callable[[Path], bool]) -> Path | None:
    """The path the option or the variable names (None if neither does); one that is not there is an error,
    never a silent fall-back to the default."""
    named = option or env.get(variable)
    if not named:
        return None
    path = Path(named)
    if not usable(path):
        raise IdentityError(f"the {what} {path} does not exist ({flag} or {variable})")
    return path
