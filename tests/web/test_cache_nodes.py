"""The upload cache across server processes: two ``pandasrv serve`` nodes on one database, with tokens.

A file uploaded through one node downloads from the other; only its owner may overwrite it (legacy
``name.__ow__`` and v1 ``overwrite=true``), a refusal changes nothing on either node, and concurrent
uploads of one name through both nodes never give a 500 or a mixed file.
"""

from __future__ import annotations

import os
import threading
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import selected_backends
from tests.web.conftest import fresh_database, start_server
from tests.web.helpers import write_jwks

ISSUER, AUDIENCE = "https://issuer.cache.test", "pandasrv-cache-test"


@pytest.fixture(scope="module")
def signing_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module", params=selected_backends())
def nodes(request, test_databases, tmp_path_factory, signing_key):
    """Two server processes ("nodes") on one fresh database of the backend."""
    workdir = tmp_path_factory.mktemp("cache-nodes")
    jwks = write_jwks(workdir / "jwks.json", signing_key, "k1")
    options = {"auth": "token", "token_issuer": ISSUER, "token_audience": AUDIENCE, "token_jwks_file": str(jwks),
               "workers": 1}
    with fresh_database(test_databases, request.param, workdir) as db_url, \
            start_server(db_url, request.param, workdir / "a", **options) as node_a, \
            start_server(db_url, request.param, workdir / "b", **options) as node_b:
        yield node_a, node_b


def user(key, subject: str) -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "name": "same display name", "groups": ["myvo"],
              "iat": now, "exp": now + 600}
    return {"Authorization": f"Bearer {jwt.encode(claims, key, algorithm='RS256', headers={'kid': 'k1'})}",
            "Origin": "myvo", "Accept": "application/json"}


def put_file(node, headers, name, data) -> str:
    reply = httpx.post(f"{node.url}/server/panda/putFile", files={"file": (name, data)}, headers=headers, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.text


def upload_v1(node, headers, name, data, overwrite=False) -> dict:
    reply = httpx.post(f"{node.url}/api/v1/file_server/upload_cache_file", files={"file": (name, data)},
                       data={"overwrite": "true" if overwrite else "false"}, headers=headers, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()


def download(node, name) -> httpx.Response:
    return httpx.get(f"{node.url}/cache/{name}", timeout=60)


def test_upload_through_one_node_downloads_from_the_other(nodes, signing_key):
    node_a, node_b = nodes
    alice = user(signing_key, "alice")
    data = os.urandom(768 * 1024)  # under the test servers' 1 MiB upload limit
    name = f"payload-{os.urandom(4).hex()}.bin"
    assert upload_v1(node_a, alice, name, data)["success"]
    for node in (node_b, node_a):
        reply = download(node, name)
        assert reply.status_code == 200 and reply.content == data
        assert int(reply.headers["content-length"]) == len(data)
    assert download(node_b, "never-uploaded.sh").status_code == 404


def test_only_the_owner_overwrites_on_any_node(nodes, signing_key):
    node_a, node_b = nodes
    alice, bob = user(signing_key, "alice"), user(signing_key, "bob")  # same display name, other subject
    name = f"x-{os.urandom(4).hex()}.sh"
    assert put_file(node_a, alice, name, b"echo alice") == "True"
    refused = put_file(node_b, bob, f"{name}.__ow__", b"echo bob")
    assert refused.startswith("ERROR: ") and "belongs to another user" in refused
    refused_v1 = upload_v1(node_a, bob, name, b"echo bob", overwrite=True)
    assert refused_v1["success"] is False and "belongs to another user" in refused_v1["message"]
    assert put_file(node_b, alice, name, b"echo again").startswith("ERROR: cannot overwrite file")
    for node in nodes:
        assert download(node, name).content == b"echo alice"
    assert upload_v1(node_b, alice, name, b"echo alice v2", overwrite=True)["success"]
    assert put_file(node_a, alice, f"{name}.__ow__", b"echo alice v3") == "True"
    for node in nodes:
        assert download(node, name).content == b"echo alice v3"


def test_concurrent_uploads_of_one_name_through_both_nodes(nodes, signing_key):
    identities = [user(signing_key, subject) for subject in ("alice", "bob", "alice", "bob")]
    size = 256 * 1024
    for round_ in range(3):
        name = f"race-{round_}-{os.urandom(4).hex()}.bin"
        barrier = threading.Barrier(len(identities))
        replies: list[dict | None] = [None] * len(identities)

        def send(i: int, name: str = name, barrier: threading.Barrier = barrier, replies: list = replies) -> None:
            barrier.wait()
            replies[i] = upload_v1(nodes[i % 2], identities[i], name, bytes([i]) * size, overwrite=True)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(len(identities))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert None not in replies  # every request got a 200 with an in-band answer
        stored = [i for i, reply in enumerate(replies) if reply["success"]]
        assert stored and len({i % 2 for i in stored}) == 1  # the first owner wins; the other is refused
        for node in nodes:
            data = download(node, name).content
            assert len(data) == size and len(set(data)) == 1 and data[0] in stored
