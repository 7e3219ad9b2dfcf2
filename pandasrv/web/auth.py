"""Who is calling, and may they: identity from the front server or a token, and PanDA's two role tests.

Identity only ever comes from values a trusted party vouched for: the configured local identity
(``auth = none``, loopback only), a verified OIDC token (``token``), or the TLS front server's variables
(``x509``: the WSGI environment, or ``X-SSL-Client-S-DN`` / ``X-GRST-Cred-*`` headers when
``trust_proxy_headers`` says a reverse proxy sets them and strips client copies).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import jwt

from pandasrv.config import ConfigError, Settings


class AuthError(Exception):
    """The caller presented credentials that do not verify."""


@dataclass(frozen=True)
class Identity:
    dn: str | None = None
    fqans: tuple[str, ...] = ()
    vo: str | None = None
    role: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)

    @property
    def secure(self) -> bool:
        """PanDA's "secure" request: a DN is known (and it is not a limited proxy)."""
        return bool(self.dn) and "/CN=limited proxy" not in self.dn

    @functools.cached_property
    def user(self) -> str | None:
        """The compact user name (owner checks, bans, prodUserName); computed once per request."""
        return clean_user_id(self.dn) if self.dn else None


ANONYMOUS = Identity()


# --- DN helpers (PanDA's get_bare_dn / clean_user_id, in our words) ------------------------------

def bare_dn(dn: str, keep_proxy: bool = False, keep_digits: bool = True) -> str:
    dn = dn.replace("/CN=limited proxy", "")
    if keep_proxy:
        dn = re.sub(r"(/CN=proxy)+", "/CN=proxy", dn)
    else:
        dn = dn.replace("/CN=proxy", "")
    if not keep_digits:
        dn = re.sub(r"(/CN=\d+)+$", "", dn)
    return dn


def clean_user_id(dn: str) -> str:
    """The compact user name stored in ``prodUserName`` and used for ownership and bans."""
    text = re.sub(r"/(DC|O|OU|C|L)=[^/]+", "", dn)
    text = re.sub(r"/CN=\d+(?=/|$)", "", text)
    text = re.sub(r" \d+(?=/|$)", "", text)
    text = re.sub(r"_\d+(?=/|$)", "", text)
    text = text.replace("/CN=proxy", "").replace("/CN=limited proxy", "").replace("limited proxy", "")
    text = re.sub(r"/CN=Robot:[^/]*", "", text)
    text = re.sub(r"/CN=nickname:[^/]*", "", text)
    names = [part for part in text.split("/CN=") if part and part != "/"]
    if len(names) >= 2:
        text = names[1]
    elif names:
        text = names[0]
    text = text.replace("/CN=", "").lstrip("/")
    text = text.split("/email")[0]
    text = re.sub(r"[()']", "", text)
    words = text.split(" ")
    if len(words) > 1 and "@" in words[-1]:
        text = " ".join(words[:-1])
    return text.strip()


# --- roles ------------------------------------------------------------------------------------------

_DISPATCH_ROLES = (
    "/atlas/usatlas/Role=production", "/atlas/usatlas/Role=pilot", "/atlas/Role=production", "/atlas/Role=pilot",
    "/osg/Role=pilot", "^/[^/]+/Role=production$", "/ams/Role=pilot", "/Engage/LBNE/Role=pilot",
)
_VO_PREFIXES = ("/atlas/", "/osg/", "/cms/", "/ams/", "/Engage/LBNE/")
_STRICT_ROLES = ("/atlas/usatlas/Role=production", "/atlas/Role=production", "^/[^/]+/Role=production")


def has_pilot_role(identity: Identity, settings: Settings, voms_patch: bool = True) -> bool:
    """The dispatcher's permissive test (getJob/updateJob): pilot or production role, or a pilot owner DN."""
    for fqan in identity.fqans:
        for pattern in _DISPATCH_ROLES:
            if fqan.startswith(pattern) or re.match(pattern, fqan):
                return True
        if voms_patch and fqan.startswith(_VO_PREFIXES):
            return True
    dn = identity.dn or ""
    return bool(dn) and any(re.search(p, dn) for p in (*settings.production_dns, *settings.pilot_owners))


def has_production_role(identity: Identity, settings: Settings) -> bool:
    """The strict test of UserIF and every v1 endpoint: a production role, no pilot role."""
    dn = identity.dn or ""
    if dn and any(entry in dn for entry in settings.production_dns):
        return True
    return any(fqan.startswith(p) or re.match(p, fqan) for fqan in identity.fqans for p in _STRICT_ROLES)


# --- authenticators ------------------------------------------------------------------------------------

def fqans_from_env(env: Mapping[str, str]) -> tuple[str, ...]:
    fqans: list[str] = []
    for key in sorted(env):
        value = env[key]
        if key.startswith("GRST_CRED_") and value.startswith("VOMS"):
            fqans.append(value.split()[-1])
        elif key.startswith("GRST_CONN_") and value.startswith("fqan:"):
            fqans.append(value[len("fqan:"):])
    return tuple(fqans)


def x509_variables(environ: Mapping[str, Any], trust_proxy_headers: bool) -> dict[str, str]:
    """The front server's TLS variables: the WSGI environment, or trusted ``X-`` headers."""
    wanted = ("SSL_CLIENT_S_DN", "GRST_CRED_", "GRST_CONN_")
    found = {k: str(v) for k, v in environ.items() if k.startswith(wanted)}
    if trust_proxy_headers:
        for key, value in environ.items():
            if key.startswith("HTTP_X_") and key[7:].startswith(wanted):
                found[key[7:]] = str(value)
    return found


def _origin(origin: str) -> tuple[str, str | None]:
    for separator in (":", "."):
        if separator in origin:
            vo, role = origin.split(separator, 1)
            return vo, role or None
    return origin, None


class TokenVerifier:
    """Checks OIDC JWTs against the configured issuer, audience and JWKS (a file or a URL)."""

    def __init__(self, settings: Settings) -> None:
        if not (settings.token_issuer and settings.token_audience):
            raise ConfigError("auth = token needs token_issuer and token_audience")
        if not (settings.token_jwks_file or settings.token_jwks_url):
            raise ConfigError("auth = token needs token_jwks_file or token_jwks_url")
        self.settings = settings
        self._client = jwt.PyJWKClient(settings.token_jwks_url) if settings.token_jwks_url else None
        self._keys: jwt.PyJWKSet | None = None
        if settings.token_jwks_file:
            with open(settings.token_jwks_file, encoding="utf-8") as handle:
                self._keys = jwt.PyJWKSet.from_dict(json.load(handle))

    def _key(self, token: str) -> Any:
        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token).key
        kid = jwt.get_unverified_header(token).get("kid")
        keys = [k for k in self._keys.keys if kid is None or k.key_id == kid] if self._keys else []
        if not keys:
            raise AuthError("no JWKS key matches the token")
        return keys[0].key

    def verify(self, token: str, origin: str | None) -> Identity:
        try:
            claims = jwt.decode(token, self._key(token), algorithms=["RS256", "RS384", "RS512", "ES256", "ES384"],
                                audience=self.settings.token_audience, issuer=self.settings.token_issuer)
        except (jwt.PyJWTError, ValueError, KeyError) as exc:
            raise AuthError(f"invalid token: {exc}") from None
        groups = [g.strip("/") for g in claims.get(self.settings.token_groups_claim) or [] if isinstance(g, str)]
        if not origin:
            raise AuthError("the Origin header (vo or vo:role) is missing")
        vo, role = _origin(origin)
        wanted = f"{vo}/{role}" if role else vo
        if wanted not in groups:
            raise AuthError(f"{wanted} is not in the token groups")
        name = str(claims.get("name") or "").title()
        nickname = claims.get("preferred_username") or claims.get("sub")
        dn = f"/CN={name}/CN=nickname:{nickname}" if name else f"/CN={nickname}"
        fqan = f"/{vo}/Role={role}" if role else f"/{vo}/Role=NULL"
        return Identity(dn=dn, fqans=(fqan,), vo=vo, role=role, claims=claims)


class Authenticator:
    """Turns one request's environment into an Identity according to ``settings.auth``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tokens = TokenVerifier(settings) if settings.auth == "token" else None
        self._local = Identity(dn=settings.local_dn, fqans=tuple(settings.local_fqans))
        self._cache: dict[tuple[str, str | None], tuple[float, Identity]] = {}
        self._lock = threading.Lock()

    def identify(self, environ: Mapping[str, Any]) -> Identity:
        mode = self.settings.auth
        if mode == "none":
            return self._local
        variables = x509_variables(environ, self.settings.trust_proxy_headers)
        if mode == "token":
            header = str(environ.get("HTTP_AUTHORIZATION") or "")
            if header.startswith("Bearer "):
                return self._from_token(header[7:].strip(), environ.get("HTTP_ORIGIN"))
        dn = variables.get("SSL_CLIENT_S_DN")
        if not dn:
            return ANONYMOUS
        return Identity(dn=dn, fqans=fqans_from_env(variables))

    def _from_token(self, token: str, origin: str | None) -> Identity:
        key = (token, origin)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit and hit[0] > now:
                return hit[1]
        identity = self.tokens.verify(token, origin)
        expires = float(identity.claims.get("exp") or 0) - time.time()
        with self._lock:
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[key] = (now + max(0.0, min(600.0, expires)), identity)
        return identity


def check_loopback(settings: Settings) -> None:
    """``auth = none`` makes every caller the local identity, so it may only listen on loopback."""
    if settings.auth != "none":
        return
    host = settings.host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(f"auth = none is only allowed on a loopback host, not {host!r}; set auth = token or x509")
