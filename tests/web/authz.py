"""The identities of the authorization matrices, in token and x509 mode, around an in-process app.

Each world is one ``create_app`` on a fresh database with a LocalClient; ``request_kwargs(name)`` gives the
headers / WSGI variables that make a request come from that identity, and ``roles[name]`` the roles the
identity holds (None: its credential must be refused outright).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from pandasrv.config import load_settings
from pandasrv.taskbuffer.task_buffer import TaskBuffer
from pandasrv.web.app import create_app
from pandasrv.web.auth import clean_user_id, token_owner
from tests.web.helpers import LocalClient, write_jwks

ISSUER, AUDIENCE, VO = "https://issuer.test", "pandasrv-matrix", "myvo"
ALICE = "/DC=ch/DC=cern/OU=Users/CN=alice"
BOB = "/DC=ch/DC=cern/OU=Users/CN=bob"
PILOT = "/DC=org/OU=Robots/CN=pilot one"
PROD = "/DC=ch/DC=cern/OU=Robots/CN=prodsys"
NONE: frozenset[str] = frozenset({"any"})
USER = NONE | {"user"}
PILOT_ROLES = USER | {"pilot"}
PRODUCTION = PILOT_ROLES | {"production"}
GOOD = ("anonymous", "alice", "bob", "pilot", "production")


@dataclass
class World:
    mode: str
    client: LocalClient
    tb: TaskBuffer
    kwargs: dict[str, dict[str, Any]]
    roles: dict[str, frozenset[str] | None]
    owners: dict[str, str | None] = field(default_factory=dict)

    def request_kwargs(self, name: str) -> dict[str, Any]:
        return {key: dict(value) for key, value in self.kwargs[name].items()}


def _settings(db_url: str, workdir: Path, **extra: Any) -> Any:
    return load_settings(db_url=db_url, db_bridge=False, db_connections=1, meta_cache_seconds=0,
                         production_vos=[VO], pilot_vos=[VO],
                         access_log=False, **extra)


def _x509(dn: str, fqan: str) -> dict[str, Any]:
    return {"extras": {"SSL_CLIENT_S_DN": dn, "GRST_CRED_0": f"VOMS 0 0 {fqan}"}}


@contextlib.contextmanager
def x509_world(db_url: str, workdir: Path) -> Iterator[World]:
    settings = _settings(db_url, workdir, auth="x509")
    kwargs = {"anonymous": {}, "alice": _x509(ALICE, f"/{VO}/Role=NULL"), "bob": _x509(BOB, f"/{VO}/Role=NULL"),
              "pilot": _x509(PILOT, f"/{VO}/Role=pilot"), "production": _x509(PROD, f"/{VO}/Role=production"),
              "limited-proxy": _x509(ALICE + "/CN=limited proxy", f"/{VO}/Role=production"),
              "other-vo-production": _x509(BOB, "/othervo/Role=production")}
    roles = {"anonymous": NONE, "alice": USER, "bob": USER, "pilot": PILOT_ROLES, "production": PRODUCTION,
             "limited-proxy": NONE, "other-vo-production": USER}
    owners = {"alice": clean_user_id(ALICE), "bob": clean_user_id(BOB), "pilot": clean_user_id(PILOT),
              "production": clean_user_id(PROD)}
    with _world("x509", settings, kwargs, roles, owners) as world:
        yield world


def _token(key: Any, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "s", "name": "someone", "iat": now, "exp": now + 3600,
            "groups": [VO], **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm="RS256", headers={"kid": "m1"})


def _bearer(token: str, origin: str = VO) -> dict[str, Any]:
    return {"headers": {"Authorization": f"Bearer {token}", "Origin": origin}}


@contextlib.contextmanager
def token_world(db_url: str, workdir: Path, **extra: Any) -> Iterator[World]:
    """The token identities; ``extra`` settings are passed to the app (e.g. the credential lists)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = write_jwks(workdir / "jwks.json", key, "m1")
    settings = _settings(db_url, workdir, auth="token", token_issuer=ISSUER, token_audience=AUDIENCE,
                         token_jwks_file=str(jwks), **extra)
    later = int(time.time()) + 3600
    kwargs = {
        "anonymous": {},
        "alice": _bearer(_token(key, sub="alice-sub", name="Alice")),
        "bob": _bearer(_token(key, sub="bob-sub", name="Alice")),  # same display name, another account
        "pilot": _bearer(_token(key, sub="pilot-sub", groups=[VO, f"{VO}/pilot"]), f"{VO}:pilot"),
        "production": _bearer(_token(key, sub="prod-sub", groups=[VO, f"{VO}/production"]), f"{VO}:production"),
        "plain-atlas": _bearer(_token(key, sub="atlas-sub", groups=["atlas"]), "atlas"),
        "bad-signature": _bearer(_token(foreign, sub="alice-sub")),
        "expired": _bearer(_token(key, sub="alice-sub", iat=later - 7300, exp=later - 7200)),
        "foreign-issuer": _bearer(_token(key, sub="alice-sub", iss="https://elsewhere.test")),
        "no-exp": _bearer(_token(key, sub="alice-sub", exp=None)),
        "not-yet-valid": _bearer(_token(key, sub="alice-sub", nbf=later)),
        "garbage": _bearer("not.a.jwt"),
        "role-not-in-groups": _bearer(_token(key, sub="alice-sub"), f"{VO}:production"),
    }
    roles: dict[str, frozenset[str] | None] = {
        "anonymous": NONE, "alice": USER, "bob": USER, "pilot": PILOT_ROLES, "production": PRODUCTION,
        "plain-atlas": USER}
    roles.update({name: None for name in kwargs if name not in roles})
    owners = {name: token_owner(ISSUER, sub) for name, sub in
              (("alice", "alice-sub"), ("bob", "bob-sub"), ("pilot", "pilot-sub"), ("production", "prod-sub"))}
    with _world("token", settings, kwargs, roles, owners) as world:
        yield world


@contextlib.contextmanager
def _world(mode: str, settings: Any, kwargs: dict[str, dict[str, Any]], roles: dict[str, frozenset[str] | None],
           owners: dict[str, str | None]) -> Iterator[World]:
    app = create_app(settings)
    tb = TaskBuffer(load_settings(db_url=settings.db_url, db_bridge=False, db_connections=1))
    try:
        yield World(mode, LocalClient(app), tb, kwargs, roles, owners)
    finally:
        tb.close()
        app.services.close()
