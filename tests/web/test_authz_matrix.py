"""The authorization matrix: every identity × every registered method, in token and x509 mode.

The methods come from the registry (a new method is covered without touching this file) and the expected
cell from the registry's role column plus the roles each credential carries (tests/web/authz.py): a caller
is let through exactly when it holds the method's role; a credential that does not verify is refused
everywhere. "Refused" is recognised as the exact reply the app gives for that method's refusal.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from pandasrv.web.codecs import encode_legacy, encode_v1, fail
from pandasrv.web.registry import REGISTRY, Method
from tests.conftest import fresh_database
from tests.web.authz import World, token_world, x509_world

pytestmark = pytest.mark.backends("sqlite")
MESSAGES = {"user": "SSL secure connection or a verified token is required",
            "production": "production role is required", "pilot": "production or pilot role is required"}


@pytest.fixture(params=["x509", "token"])
def world(request: pytest.FixtureRequest, test_databases: Any, tmp_path: Any) -> Iterator[World]:
    with fresh_database(test_databases, "sqlite", tmp_path) as db_url:
        with (x509_world if request.param == "x509" else token_world)(db_url, tmp_path) as made:
            yield made


def refusal_reply(method: Method, message: str) -> tuple[int, bytes]:
    """What the app answers when ``method`` refuses a caller with ``message``."""
    if method.denied:
        result = method.denied(message)
        status, _, body = encode_legacy(result, False) if method.legacy else encode_v1(result)
        return status, body
    if method.legacy:
        return 403, f"ERROR : {message}".encode()
    return encode_v1(fail(message))[0], encode_v1(fail(message))[2]


def expected_message(method: Method, roles: frozenset[str]) -> str | None:
    """The refusal the role table implies (None: let through)."""
    if method.role == "any" or method.role in roles:
        return None
    return MESSAGES["user"] if "user" not in roles else MESSAGES[method.role]


def call(world: World, method: Method, name: str) -> tuple[int, bytes]:
    verb = "POST" if method.legacy else method.http[0]
    kwargs = world.request_kwargs(name)
    if verb == "POST" and not method.legacy:
        kwargs["json"] = {}
    reply = world.client.simulate_request(verb, method.path, **kwargs)
    return reply.status_code, reply.content


def test_every_identity_against_every_method(world: World) -> None:
    methods = list(REGISTRY)
    wrongly_allowed: list[str] = []
    wrongly_refused: list[str] = []
    for name, roles in world.roles.items():
        for method in methods:
            status, body = call(world, method, name)
            if roles is None:
                if not (status == 403 and body.startswith(b"ERROR : ")):
                    wrongly_allowed.append(f"{world.mode} {name} {method.path}: {status} {body[:80]!r}")
                continue
            message = expected_message(method, roles)
            refusals = {refusal_reply(method, text) for text in MESSAGES.values()}
            if message is not None and (status, body) != refusal_reply(method, message):
                wrongly_allowed.append(f"{world.mode} {name} {method.path}: {status} {body[:80]!r}")
            if message is None and (status, body) in refusals:
                wrongly_refused.append(f"{world.mode} {name} {method.path}: {status} {body[:80]!r}")
    cells = len(world.roles) * len(methods)
    print(f"\nauthorization matrix {world.mode}: {len(world.roles)} identities x {len(methods)} methods = {cells} "
          f"cells, wrongly allowed {len(wrongly_allowed)}, wrongly refused {len(wrongly_refused)}")
    assert len(methods) >= 40 and all(isinstance(m, Method) for m in methods)
    assert wrongly_allowed == [], "\n".join(wrongly_allowed)
    assert wrongly_refused == [], "\n".join(wrongly_refused)
