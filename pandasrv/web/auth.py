"""Who is calling, and may they: identity from the front server or a token, and PanDA's two role tests.

Identity only ever comes from values a trusted party vouched for: the configured local identity
(``auth = none``, loopback peers only), a verified OIDC token (``token``), or the TLS front server's variables
(``x509``: the WSGI environment, or ``X-SSL-Client-S-DN`` / ``X-GRST-Cred-*`` headers when
``trust_proxy_headers`` says a reverse proxy sets them and strips client copies).

Ownership (``Identity.user``) is the compact DN name under x509 (the CA vouches for the DN) and
issuer + subject under tokens (the display name is chosen by the user, so it is never used for anything
but display). Roles come only from credentials that carry them: an FQAN (token group or VOMS) of a
configured VO with that role, or a configured DN under x509; see docs/security.md.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping
from urllib.parse import quote, urlsplit

import jwt

from pandasrv.config import ConfigError, Settings
from pandasrv.web.voms import VomsVerifier

Source = Literal["anonymous", "local", "x509", "token"]
OWNER_WIDTH = 60  # prodUserName's column width


class AuthError(Exception):
    """The caller presented credentials that do not verify; the message is the whole refusal."""


@dataclass(frozen=True)
class Identity:
    dn: str | None = None
    fqans: tuple[str, ...] = ()
    vo: str | None = None
    role: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)
    source: Source = "anonymous"
    owner: str | None = None

    @property
    def secure(self) -> bool:
        """PanDA's "secure" request: a vouched identity (and under x509 not a limited proxy)."""
        if self.source in ("local", "token"):
            return True
        dn = self.dn or ""
        return bool(dn) and "/CN=limited proxy" not in dn

    @functools.cached_property
    def user(self) -> str | None:
        """The owner name (ownership, bans, prodUserName): the explicit owner, else the compact DN name."""
        if self.owner:
            return self.owner
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

def parse_fqan(fqan: str) -> tuple[str, str | None]:
    """``/vo/group/Role=r/Capability=NULL`` -> (``vo/group``, ``r``); a missing or NULL role is None."""
    group, _, rest = fqan.partition("/Role=")
    role = rest.split("/", 1)[0] or None
    return group.strip("/"), None if role in (None, "NULL") else role


def _has_fqan_role(identity: Identity, role: str, vos: list[str]) -> bool:
    return any(parse_fqan(f) == (vo, role) for f in identity.fqans for vo in vos)


def _dn_matches(identity: Identity, patterns: list[str]) -> bool:
    """Configured DNs count only for certificate identities: a token's DN is built from user-chosen names."""
    dn = identity.dn or ""
    return identity.source == "x509" and bool(dn) and any(re.search(p, dn) for p in patterns)


def has_production_role(identity: Identity, settings: Settings) -> bool:
    """The strict test (UserIF, every v1 pilot call): ``/<vo>/Role=production`` of a ``production_vos`` VO,
    or a certificate DN containing a ``production_dns`` entry."""
    dn = identity.dn or ""
    if identity.source == "x509" and dn and any(entry in dn for entry in settings.production_dns):
        return True
    return _has_fqan_role(identity, "production", settings.production_vos)


def has_pilot_role(identity: Identity, settings: Settings, voms_patch: bool = True) -> bool:
    """The dispatcher's test (getJob/updateJob): production role, ``/<vo>/Role=pilot`` of a ``pilot_vos`` VO,
    a certificate DN matching ``pilot_owners``, or (only when ``voms_patch_vos`` is set) any FQAN of those VOs."""
    if has_production_role(identity, settings) or _has_fqan_role(identity, "pilot", settings.pilot_vos):
        return True
    if voms_patch and settings.voms_patch_vos:
        groups = {parse_fqan(f)[0] for f in identity.fqans}
        if any(g == vo or g.startswith(vo + "/") for g in groups for vo in settings.voms_patch_vos):
            return True
    return _dn_matches(identity, [*settings.production_dns, *settings.pilot_owners])


def is_loopback(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address((address or "").strip("[]"))
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


# --- authenticators ------------------------------------------------------------------------------------

VOMS_ENVIRON_KEY = "pandasrv.voms_fqans"


def fqans_from_env(env: Mapping[str, Any]) -> tuple[str, ...]:
    """The caller's verified FQANs: mod_gridsite's ``GRST_CRED_*`` / ``GRST_CONN_*`` variables, plus those an
    in-process VOMS verifier put under ``pandasrv.voms_fqans`` (a dotted WSGI key no HTTP header can set).

    This is the one place FQANs enter; ``web.voms`` (the attribute certificates of the exported chain) hands
    its result in through the key."""
    fqans: list[str] = []
    for key in sorted(k for k in env if isinstance(k, str) and k.startswith(("GRST_CRED_", "GRST_CONN_"))):
        value = str(env[key])
        if key.startswith("GRST_CRED_") and value.startswith("VOMS"):
            fqans.append(value.split()[-1])
        elif key.startswith("GRST_CONN_") and value.startswith("fqan:"):
            fqans.append(value[len("fqan:"):])
    fqans.extend(str(f) for f in env.get(VOMS_ENVIRON_KEY) or ())
    return tuple(dict.fromkeys(fqans))


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


def token_owner(issuer: str, subject: str) -> str:
    """The owner name of a token identity: ``subject@issuer-host/path``, unique per (issuer, subject).

    Anything longer than prodUserName's width (or with characters outside a safe set) becomes a digest,
    ``token-<hex>``, which has no ``@`` and so never equals a readable owner name."""
    where = urlsplit(issuer)
    text = f"{subject}@{(where.netloc + where.path).rstrip('/')}"
    if len(text) <= OWNER_WIDTH and re.fullmatch(r"[A-Za-z0-9._:+\-]+@[A-Za-z0-9._:/\-]+", text):
        return text
    return "token-" + hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()[:40]


def _display(text: str) -> str:
    """A user-chosen name as one DN value: slashes and ``=`` are escaped, so it can never add DN structure."""
    return quote(text, safe=" @.:-_'()")


class TokenVerifier:
    """Checks OIDC JWTs against the configured issuer, audience and JWKS (a file or a URL).

    ``exp`` and ``sub`` are required; ``nbf`` and ``iat`` are checked when present (with
    ``token_leeway_seconds`` of clock skew)."""

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
            raise AuthError("Token authentication failed. no JWKS key matches the token")
        return keys[0].key

    def claims(self, token: str) -> dict[str, Any]:
        leeway = self.settings.token_leeway_seconds
        try:
            claims = jwt.decode(token, self._key(token), algorithms=["RS256", "RS384", "RS512", "ES256", "ES384"],
                                audience=self.settings.token_audience, issuer=self.settings.token_issuer,
                                leeway=leeway, options={"require": ["exp", "iss", "aud", "sub"]})
        except (jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
            raise AuthError(f"Token authentication failed. invalid token: {exc}") from None
        issued = claims.get("iat")
        if issued is not None and (not isinstance(issued, (int, float)) or issued > time.time() + leeway):
            raise AuthError("Token authentication failed. invalid token: iat is not a time in the past")
        if not isinstance(claims["sub"], str) or not claims["sub"]:
            raise AuthError("Token authentication failed. invalid token: sub must be a non-empty string")
        return claims

    def verify(self, token: str, origin: str | None) -> Identity:
        claims = self.claims(token)
        groups = [g.strip("/") for g in claims.get(self.settings.token_groups_claim) or [] if isinstance(g, str)]
        if not origin:
            raise AuthError("Token authentication failed. the Origin header (vo or vo:role) is missing")
        vo, role = _origin(origin)
        wanted = f"{vo}/{role}" if role else vo
        if wanted not in groups:
            raise AuthError(f"Token authentication failed. {wanted} is not in the token groups")
        owner = token_owner(str(claims["iss"]), claims["sub"])
        name, nickname = claims.get("name"), claims.get("preferred_username")
        name = name if isinstance(name, str) else ""
        nickname = nickname if isinstance(nickname, str) else ""
        dn = f"/CN={_display(name.title() or nickname or claims['sub'])}/CN=nickname:{_display(nickname or owner)}"
        fqan = f"/{vo}/Role={role}" if role else f"/{vo}/Role=NULL"
        return Identity(dn=dn, fqans=(fqan,), vo=vo, role=role, claims=claims, source="token", owner=owner)


class Authenticator:
    """Turns one request's environment into an Identity according to ``settings.auth``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tokens = TokenVerifier(settings) if settings.auth == "token" else None
        local_vo = parse_fqan(settings.local_fqans[0])[0] if settings.local_fqans else None
        self._local = Identity(dn=settings.local_dn, fqans=tuple(settings.local_fqans), vo=local_vo, source="local")
        self.voms = (VomsVerifier.from_paths(settings.voms_dir, settings.voms_ca_dir or settings.apache.ca_dir)
                     if settings.voms_dir and settings.auth != "none" else None)
        self._cache: dict[tuple[str, str | None], tuple[float, Identity]] = {}
        self._lock = threading.Lock()

    def identify(self, environ: Mapping[str, Any]) -> Identity:
        mode = self.settings.auth
        if mode == "none":
            peer = environ.get("REMOTE_ADDR")
            if not self.settings.auth_none_behind_proxy and not is_loopback(peer):
                raise AuthError(f"auth = none serves only loopback callers, not {peer!r}")
            return self._local
        variables = x509_variables(environ, self.settings.trust_proxy_headers)
        if mode == "token":
            header = str(environ.get("HTTP_AUTHORIZATION") or "")
            if header.startswith("Bearer "):
                return self._from_token(header[7:].strip(), environ.get("HTTP_ORIGIN"))
        dn = variables.get("SSL_CLIENT_S_DN")
        if not dn:
            return ANONYMOUS
        verified = [*(environ.get(VOMS_ENVIRON_KEY) or ()), *(self.voms.fqans(environ) if self.voms else ())]
        fqans = fqans_from_env({**variables, VOMS_ENVIRON_KEY: verified})
        vo = parse_fqan(fqans[0])[0].split("/")[0] if fqans else None
        return Identity(dn=dn, fqans=fqans, vo=vo, source="x509")

    def _from_token(self, token: str, origin: str | None) -> Identity:
        key = (token, origin)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit and hit[0] > now:
                return hit[1]
        assert self.tokens is not None  # tokens are read only under auth = "token"
        identity = self.tokens.verify(token, origin)
        expires = float(identity.claims["exp"]) - time.time()
        with self._lock:
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[key] = (now + max(0.0, min(600.0, expires)), identity)
        return identity


def check_loopback(settings: Settings) -> None:
    """``auth = none`` makes every caller the local identity, so it may only listen on loopback (and
    ``Authenticator.identify`` refuses every non-loopback peer as well)."""
    if settings.auth != "none":
        return
    host = settings.host
    if not (host == "localhost" or is_loopback(host)):
        raise ConfigError(f"auth = none is only allowed on a loopback host, not {host!r}; set auth = token or x509")
