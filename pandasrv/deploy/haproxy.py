"""``pandasrv haproxy``: HAProxy in front of M ``pandasrv apache`` nodes that share one database.

Both frontends are ``mode tcp``: HAProxy never terminates TLS, so each client's certificate chain (grid
proxies included) reaches a node's mod_ssl, which verifies it against its CA directory exactly as when the
client talks to the node directly. A plain-HTTP frontend is passed through the same way (no header is added
or trusted). Nodes are health-checked with ``GET /server/panda/isAlive`` on their **plain** port: it is
answered by the same Apache and the same mod_wsgi daemon processes as the TLS port, and a check there needs
neither a client certificate nor a copy of the nodes' CA on the balancer. A node whose check fails leaves
both pools at once (the plain pool tracks the TLS pool's checks).

Like ``pandasrv apache`` the command writes its configuration into a run directory of its own (pid file,
admin socket) and runs HAProxy in the foreground; SIGTERM stops it gracefully (open connections get
``stop_timeout`` seconds) and the command exits 0 with no process left.
"""

from __future__ import annotations

import logging
import pwd
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pandasrv.config import ConfigError, Settings
from pandasrv.deploy import rootfs
from pandasrv.deploy.apache import stop_process
from pandasrv.web.auth import is_loopback

log = logging.getLogger("pandasrv.deploy.haproxy")

HAPROXY_BINARY = "/usr/sbin/haproxy"
CHECK_PATH = "/server/panda/isAlive"


@dataclass(frozen=True)
class Backend:
    """One ``pandasrv apache`` node: its address, plain port and TLS port (0 = none)."""

    name: str
    host: str
    port: int
    ssl_port: int


def parse_backends(settings: Settings) -> list[Backend]:
    """The nodes of ``haproxy.backends`` (``HOST[:PORT[:SSL_PORT]]``), missing ports taken from the node settings."""
    if not settings.haproxy.backends:
        raise ConfigError("haproxy.backends is empty: give each node as --backend HOST[:PORT[:SSL_PORT]]")
    nodes = []
    for index, entry in enumerate(settings.haproxy.backends, start=1):
        host, *ports = entry.strip().split(":")
        if not host or len(ports) > 2 or not all(p.isdigit() and 0 < int(p) < 65536 for p in ports):
            raise ConfigError(f"invalid setting haproxy.backends: {entry!r} is not HOST[:PORT[:SSL_PORT]]")
        port = int(ports[0]) if ports else settings.port
        ssl_port = int(ports[1]) if len(ports) > 1 else settings.apache.ssl_port
        nodes.append(Backend(f"node{index}", host, port, ssl_port))
    if len({(n.host, n.port) for n in nodes}) != len(nodes):
        raise ConfigError("invalid setting haproxy.backends: a node is listed twice")
    return nodes


def _pool(name: str, nodes: list[Backend], port_of: str, check: str | None, send_proxy: bool) -> str:
    """A ``backend`` section; ``check`` is the pool whose health checks it follows (None: it checks itself).

    With ``send_proxy`` every connection to a node, health checks included (the node refuses any without it),
    starts with the PROXY v2 header that carries the client's address."""
    lines = [f"backend {name}", "    balance leastconn"]
    if check is None:
        lines += ["    option httpchk",
                  f"    http-check send meth GET uri {CHECK_PATH} ver HTTP/1.1 hdr Host pandasrv-check",
                  "    http-check expect string alive=yes"]
    for node in nodes:
        address = f"{node.host}:{getattr(node, port_of)}"
        how = f"track {check}/{node.name}" if check else f"check port {node.port}"
        if send_proxy:
            how += " send-proxy-v2" if check else " send-proxy-v2 check-send-proxy"
        lines.append(f"    server {node.name} {address} {how}")
    return "\n".join(lines) + "\n"


WILDCARDS = ("", "0.0.0.0", "*", "::", "[::]")


def _check_no_loop(host: str, ports: list[int], nodes: list[Backend]) -> None:
    """A node listed at the balancer's own address and port would be the balancer itself (or fail to bind)."""
    front = "127.0.0.1" if host == "localhost" else host
    for node in nodes:
        address = "127.0.0.1" if node.host == "localhost" else node.host
        same_host = address == front or (front in WILDCARDS and is_loopback(address))
        for port in (node.port, node.ssl_port):
            if port in ports and same_host:
                raise ConfigError(f"haproxy listens on {host or '*'}:{port}, where node {node.host}:{port} is: on a "
                                  "machine that also runs a node, give the nodes other ports (--port/--ssl-port of "
                                  "pandasrv apache, e.g. 26080 and 26443) or the balancer another address")


def _check_auth_none(settings: Settings) -> None:
    """In ``mode tcp`` a node sees the balancer's address as the peer: loopback when both share a machine, which
    ``auth = none`` takes for a local caller. Facing other machines, that needs the PROXY protocol."""
    front = settings.haproxy
    if settings.auth != "none" or front.send_proxy or front.host == "localhost" or is_loopback(front.host):
        return
    raise ConfigError(f"haproxy on {front.host or '*'} with auth = none: without the PROXY protocol every client "
                      "would reach the nodes from the balancer's address and could pass as local; set "
                      "haproxy.send_proxy = true (and apache.proxy_protocol = true on the nodes), or the nodes' "
                      "auth (token or x509) in this settings file")


def render_config(settings: Settings, run_dir: Path) -> str:
    """The complete HAProxy configuration: TLS and plain frontends passed through to the nodes."""
    front = settings.haproxy
    nodes = parse_backends(settings)
    if not (front.port or front.ssl_port):
        raise ConfigError("haproxy: both haproxy.port and haproxy.ssl_port are 0, nothing to listen on")
    tls_nodes = [n for n in nodes if n.ssl_port]
    if front.ssl_port and len(tls_nodes) != len(nodes):
        raise ConfigError("haproxy.ssl_port needs a TLS port for every node (HOST:PORT:SSL_PORT or apache.ssl_port)")
    _check_no_loop(front.host, [p for p in (front.port, front.ssl_port) if p], nodes)
    _check_auth_none(settings)
    interval = f"{int(front.check_interval * 1000)}ms"
    # a request may run for the nodes' request_timeout; the balancer must not cut it earlier
    idle = settings.apache.request_timeout + 30
    user = (f"    user {front.user}\n    group {front.group}\n"
            if rootfs.is_root() and _user_exists(front.user) else "")
    sections = [f"""# written by pandasrv haproxy; regenerated at every start
global
    log stdout format raw local0 info
    pidfile "{run_dir}/haproxy.pid"
    stats socket "{run_dir}/admin.sock" mode 600 level admin
    maxconn {front.max_connections}
    hard-stop-after {front.stop_timeout}s
{user}
defaults
    mode tcp
    log global
    option tcplog
    option dontlognull
    timeout connect 5s
    timeout client {idle}s
    timeout server {idle}s
    timeout check 5s
    default-server inter {interval} fall 2 rise 2
"""]
    checked = None
    if front.ssl_port:
        sections.append(f"frontend https\n    bind {front.host}:{front.ssl_port}\n    default_backend nodes_tls\n")
        sections.append(_pool("nodes_tls", nodes, "ssl_port", None, front.send_proxy))
        checked = "nodes_tls"
    if front.port:
        sections.append(f"frontend http\n    bind {front.host}:{front.port}\n    default_backend nodes_plain\n")
        sections.append(_pool("nodes_plain", nodes, "port", checked, front.send_proxy))
    return "\n".join(sections)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def write_run_dir(settings: Settings, run_dir: Path) -> Path:
    """Write the configuration into the run directory and have HAProxy check it; return its path."""
    if not Path(HAPROXY_BINARY).exists():
        raise ConfigError(f"{HAPROXY_BINARY} is missing: apt-get install haproxy")
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_dir / "haproxy.cfg"
    config.write_text(render_config(settings, run_dir), encoding="utf-8")
    result = subprocess.run([HAPROXY_BINARY, "-c", "-q", "-f", str(config)], capture_output=True, text=True)
    if result.returncode != 0:
        raise ConfigError(f"haproxy refused {config}: {(result.stdout + result.stderr).strip()[-500:]}")
    return config


def run(settings: Settings) -> int:
    """Run HAProxy in the foreground until SIGTERM or SIGINT; return the exit code."""
    run_dir = Path(settings.haproxy.run_dir).resolve()
    config = write_run_dir(settings, run_dir)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.append(signum))
    # -db: stay in the foreground, one process; its log lines go to our standard output
    proxy = subprocess.Popen([HAPROXY_BINARY, "-db", "-f", str(config)], start_new_session=True)
    log.info("haproxy started (pid %d) for %d nodes, run dir %s", proxy.pid, len(settings.haproxy.backends), run_dir)
    code = None
    try:
        while proxy.poll() is None and not stopping:
            time.sleep(0.2)
        code = proxy.returncode
        if code is not None and not stopping:
            log.error("haproxy exited with %d", code)
        elif proxy.poll() is None:
            proxy.send_signal(signal.SIGUSR1)  # soft stop: no new connections, open ones get hard-stop-after
            try:
                proxy.wait(timeout=settings.haproxy.stop_timeout + 5)
            except subprocess.TimeoutExpired:
                log.warning("haproxy did not stop within %ds", settings.haproxy.stop_timeout + 5)
    finally:
        stop_process(proxy)
    return 0 if stopping else (code or 1)


def admin(run_dir: Path, command: str) -> str:
    """One command on the admin socket (``show servers state``, ``set server nodes_tls/node1 state drain``)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(run_dir / "admin.sock"))
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")

