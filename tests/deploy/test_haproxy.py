"""``pandasrv haproxy``: the configuration for M nodes (checked by HAProxy itself), bad node lists, --print.

The balancer in front of real ``pandasrv apache`` nodes is tested in ``test_two_nodes.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pandasrv.config import ConfigError, load_settings
from pandasrv.deploy.haproxy import HAPROXY_BINARY, parse_backends, render_config
from tests.deploy.conftest import REPO, require

nodes = st.lists(st.tuples(st.integers(2, 254), st.integers(1024, 65535), st.integers(1024, 65535)),
                 min_size=1, max_size=8, unique_by=lambda node: node[0])


@settings(max_examples=20, deadline=None)
@given(nodes=nodes, plain=st.booleans(), tls=st.booleans(), send_proxy=st.booleans())
def test_every_node_is_in_each_pool_and_haproxy_accepts_the_config(nodes: list[tuple[int, int, int]], plain: bool,
                                                                   tls: bool, send_proxy: bool) -> None:
    require(HAPROXY_BINARY, "haproxy")
    if not (plain or tls):
        plain = True
    run_dir = Path(os.environ.get("TMPDIR", "/tmp"))
    s = load_settings(haproxy={"backends": [f"127.0.0.{a}:{p}:{t}" for a, p, t in nodes], "send_proxy": send_proxy,
                               "port": 18080 if plain else 0, "ssl_port": 18443 if tls else 0})
    text = render_config(s, run_dir)
    # with send_proxy every connection to a node starts with the PROXY v2 header, health checks included
    proxy, checked_proxy = (" send-proxy-v2", " send-proxy-v2 check-send-proxy") if send_proxy else ("", "")
    for index, (address, port, ssl_port) in enumerate(nodes, start=1):
        if tls:
            assert f"server node{index} 127.0.0.{address}:{ssl_port} check port {port}{checked_proxy}\n" in text
        if plain:
            how = f"track nodes_tls/node{index}{proxy}" if tls else f"check port {port}{checked_proxy}"
            assert f"server node{index} 127.0.0.{address}:{port} {how}\n" in text
    assert ("send-proxy" in text) == send_proxy
    assert ("bind 127.0.0.1:18443" in text) == tls and ("bind 127.0.0.1:18080" in text) == plain
    assert "mode http" not in text  # pass-through: TLS (and client certificates) end at the nodes
    assert text.count("uri /server/panda/isAlive") == 1 and "expect string alive=yes" in text
    config = run_dir / f"haproxy-test-{os.getpid()}.cfg"
    config.write_text(text)
    try:
        checked = subprocess.run([HAPROXY_BINARY, "-c", "-f", str(config)], capture_output=True, text=True)
    finally:
        config.unlink()
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_missing_ports_come_from_the_node_settings() -> None:
    s = load_settings(port=26080, apache={"ssl_port": 26443},
                      haproxy={"backends": ["node-a.example.org", "node-b.example.org:27080", "10.0.0.3:1:2"]})
    assert [(n.host, n.port, n.ssl_port) for n in parse_backends(s)] == [
        ("node-a.example.org", 26080, 26443), ("node-b.example.org", 27080, 26443), ("10.0.0.3", 1, 2)]


@pytest.mark.parametrize("backends, message", [
    ([], "haproxy.backends is empty"),
    (["a:1:2:3"], "is not HOST[:PORT[:SSL_PORT]]"),
    (["a:http"], "is not HOST[:PORT[:SSL_PORT]]"),
    (["a:0"], "is not HOST[:PORT[:SSL_PORT]]"),
    ([":80"], "is not HOST[:PORT[:SSL_PORT]]"),
    (["a:80:443", "a:80"], "a node is listed twice"),
    (["a:80"], "needs a TLS port for every node"),
    (["127.0.0.1:25080:26443"], "haproxy listens on 127.0.0.1:25080, where node 127.0.0.1:25080 is"),
    (["localhost:26080:25443"], "haproxy listens on 127.0.0.1:25443, where node localhost:25443 is"),
])
def test_bad_node_lists_are_refused_with_one_line(backends: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        render_config(load_settings(haproxy={"backends": backends}), Path("/srv/haproxy"))


def test_a_node_on_the_balancers_own_port_is_refused_on_every_address_of_the_machine() -> None:
    """The defaults collide (a node's port and the balancer's are both 25080): the command says so and how to fix it."""
    wildcard = load_settings(haproxy={"host": "0.0.0.0", "backends": ["127.0.0.2:25080:26443"]})
    with pytest.raises(ConfigError, match="give the nodes other ports"):
        render_config(wildcard, Path("/srv/haproxy"))
    elsewhere = load_settings(auth="x509", haproxy={"host": "0.0.0.0",
                                       "backends": ["node-a.example.org:25080:25443", "127.0.0.2:26080:26443"]})
    assert "server node1 node-a.example.org:25443" in render_config(elsewhere, Path("/srv/haproxy"))


def test_print_writes_the_config_and_starts_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANDASRV_")}
    command = [sys.executable, "-m", "pandasrv.cli", "haproxy", "--print", "--run-dir", str(run_dir),
               "--backend", "127.0.0.2:8080:8443", "--backend", "127.0.0.3:8080:8443", "--ssl-port", "9443"]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True, env=env).stdout
    assert "bind 127.0.0.1:9443" in out and "server node2 127.0.0.3:8443 check port 8080" in out
    assert f'stats socket "{run_dir}/admin.sock"' in out
    assert not run_dir.exists()
    refused = subprocess.run(command[:4] + ["--run-dir", str(run_dir)], cwd=REPO, capture_output=True, text=True,
                             env=env)
    assert refused.returncode == 2 and refused.stderr.startswith("pandasrv: haproxy.backends is empty")


@pytest.mark.parametrize("host", ["0.0.0.0", "panda.example.org", "::"])
def test_auth_none_facing_other_machines_needs_the_proxy_protocol(host: str) -> None:
    """Else every client would reach the nodes from the balancer's (loopback) address and pass as local."""
    backends = {"backends": ["127.0.0.2:26080:26443"], "host": host}
    with pytest.raises(ConfigError, match="set haproxy.send_proxy = true"):
        render_config(load_settings(haproxy=backends), Path("/srv/haproxy"))
    for fine in (load_settings(haproxy={**backends, "send_proxy": True}), load_settings(auth="x509", haproxy=backends),
                 load_settings(haproxy={**backends, "host": "127.0.0.1"})):
        assert "server node1 127.0.0.2:26443" in render_config(fine, Path("/srv/haproxy"))
