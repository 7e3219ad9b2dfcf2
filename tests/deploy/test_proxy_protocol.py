"""The PROXY protocol: behind ``pandasrv haproxy`` the application sees each client's own address.

In ``mode tcp`` HAProxy opens its own connection to the node, so without it every client looks like the
balancer (loopback when both run on one machine, which ``auth = none`` would take for a local caller). With
``haproxy.send_proxy`` the balancer starts each connection (health checks included) with a PROXY v2 header,
and a node with ``apache.proxy_protocol`` (mod_remoteip) makes the address in it the connection's, before TLS.

One node on 127.0.0.2 (``auth = none``, plain and TLS), the balancer on 127.0.0.1, clients that bind their own
source address (127.0.0.9) so that it differs from the balancer's. A remote client cannot be made on this
machine, so one test writes the PROXY header itself, as a balancer would for a client at 192.0.2.7.
"""

from __future__ import annotations

import dataclasses
import socket
import ssl
import struct
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from pandasrv.deploy.haproxy import HAPROXY_BINARY
from tests.deploy import pki
from tests.deploy.cluster import BALANCER, node_states, start_balancer, wait
from tests.deploy.conftest import RunningApache, require, start_apache
from tests.web.conftest import free_port, wait_until_up

NODE = "127.0.0.2"
CLIENT = "127.0.0.9"  # a client address other than the balancer's
REMOTE = "192.0.2.7"  # TEST-NET-1: only ever written into a header, never connected to
PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


@dataclasses.dataclass
class Front:
    node: RunningApache
    ssl_port: int
    plain_url: str
    tls_url: str
    ca_file: Path


@pytest.fixture(scope="module")
def front(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    require(HAPROXY_BINARY, "haproxy")
    workdir = tmp_path_factory.mktemp("proxy-protocol")
    workdir.chmod(0o755)
    ca = pki.make_ca("pandasrv proxy-protocol CA")
    host_pem = str(pki.host(ca, NODE, BALANCER).write(workdir / "host.pem"))
    ca_dir = pki.ca_dir(workdir / "certificates", ca)
    ssl_port = free_port()
    extra = ["--no-daemon", "--ssl-port", str(ssl_port), "--ssl-cert", host_pem, "--ssl-key", host_pem,
             "--ca-dir", str(ca_dir)]
    with start_apache(pg_url, workdir, host=NODE, extra=extra, wait=False, auth="none",
                      apache__proxy_protocol="true") as node:
        port = int(node.url.rsplit(":", 1)[1])
        with start_balancer(workdir, [(NODE, port, ssl_port)], send_proxy="true") as (_, plain_url, tls_url):
            # the health checks carry the header too: the node is UP only if it accepts them
            wait(lambda: node.process.poll() is not None or node_states(workdir / "haproxy") == {"node1": "UP"},
                 60, "the node is not UP in haproxy")
            wait_until_up(dataclasses.replace(node, url=plain_url))
            yield Front(node, ssl_port, plain_url, tls_url, ca_dir / "ca0.pem")


def attributes(url: str, ca_file: Path) -> dict:
    """``system/get_attributes`` (who the server thinks the caller is) from the source address CLIENT."""
    context = ssl.create_default_context(cafile=str(ca_file))
    with httpx.Client(transport=httpx.HTTPTransport(local_address=CLIENT, verify=context), timeout=30) as client:
        reply = client.get(f"{url}/api/v1/system/get_attributes")
    reply.raise_for_status()
    return reply.json()["data"]


def _logged_calls(front: Front) -> list[str]:
    return [line for line in (front.node.run_dir / "logs" / "access.log").read_text().splitlines()
            if "/system/get_attributes" in line]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_the_application_sees_the_clients_address_not_the_balancers(front: Front, scheme: str) -> None:
    url = front.tls_url if scheme == "https" else front.plain_url
    before = len(_logged_calls(front))
    data = attributes(url, front.ca_file)
    assert data["environment"]["REMOTE_ADDR"] == CLIENT
    assert data["environment"]["wsgi.url_scheme"] == scheme  # TLS still ends at the node
    # the access log has the client's address too (Apache writes the line after the reply has gone out)
    wait(lambda: len(_logged_calls(front)) > before, 30, "the access log has no line of the call")
    assert _logged_calls(front)[before].startswith(f"{CLIENT} ")


def _proxy_v2_header(source: str, port: int) -> bytes:
    """A PROXY v2 header for a TCP/IPv4 connection from ``source`` to the node (what ``send-proxy-v2`` writes)."""
    addresses = socket.inet_aton(source) + socket.inet_aton(NODE) + struct.pack("!HH", 40000, port)
    return PROXY_V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(addresses)) + addresses


def _raw_get(port: int, prefix: bytes, path: str) -> bytes:
    with socket.create_connection((NODE, port), timeout=30) as sock:
        sock.sendall(prefix + f"GET {path} HTTP/1.1\r\nHost: {NODE}\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks)


def test_auth_none_refuses_a_remote_client_behind_the_balancer(front: Front) -> None:
    port = int(front.node.url.rsplit(":", 1)[1])
    reply = _raw_get(port, _proxy_v2_header(REMOTE, port), "/api/v1/system/get_attributes")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403 ")
    assert f"auth = none serves only loopback callers, not '{REMOTE}'".encode() in body
    local = _raw_get(port, _proxy_v2_header(CLIENT, port), "/api/v1/system/get_attributes")
    assert local.startswith(b"HTTP/1.1 200 ") and f'"REMOTE_ADDR": "{CLIENT}"'.encode() in local


@pytest.mark.parametrize("which", ["plain", "tls"])
def test_a_connection_without_the_header_is_refused(front: Front, which: str) -> None:
    port = front.ssl_port if which == "tls" else int(front.node.url.rsplit(":", 1)[1])
    scheme = "https" if which == "tls" else "http"
    context = ssl.create_default_context(cafile=str(front.ca_file))
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{scheme}://{NODE}:{port}/server/panda/isAlive", verify=context, timeout=10)
