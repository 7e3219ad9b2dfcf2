"""``pandasrv apache``: the seed's production front end, Apache httpd (MPM event) + mod_wsgi daemon processes.

The configuration is written from the settings into a run directory of its own (pid file, mutexes,
mod_wsgi sockets, logs), so two instances with other addresses or ports and other run directories never
share anything. Apache runs in the foreground; the daemon master runs beside it under a ``Supervisor``
(restarted with backoff when it dies, as under ``pandasrv serve``; Apache itself restarts its mod_wsgi
daemon processes). SIGTERM stops Apache (and with it every child) and the master, and the command exits 0.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandasrv
from pandasrv.config import ConfigError, Settings
from pandasrv.deploy import rootfs
from pandasrv.deploy.wsgi import METRICS_DIR
from pandasrv.metrics_dir import use_multiprocess_dir
from pandasrv.supervisor import Supervisor
from pandasrv.web import admission

log = logging.getLogger("pandasrv.deploy.apache")

# mod_wsgi's queue-timeout (a 504 without Retry-After) is this much beyond queue_timeout: the app sheds a request
# in the protocol's form when a thread picks it up, which can be a few service times after queue_timeout
BACKSTOP_SECONDS = 10

APACHE_BINARY = "/usr/sbin/apache2"
MODULE_DIR = Path("/usr/lib/apache2/modules")
MODULES = ("mpm_event", "authz_core", "headers", "reqtimeout")
# The request line without its query string (%m %U %H, not %r): a query can carry a credential (the pilot's
# get_access_token sends its token key there). %D: microseconds per request (A of the sizing rule).
ACCESS_LOG_FORMAT = '"%h %l %u %t \\"%m %U %H\\" %>s %b %D"'


class _InRunDir:
    """A file or directory of a ``Layout``: its name below the run directory."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, layout: Layout, owner: type[Layout] | None = None) -> Path:
        return layout.run_dir / self.name


@dataclass(frozen=True)
class Layout:
    """Where one instance keeps its files."""

    run_dir: Path

    config = _InRunDir("httpd.conf")
    settings = _InRunDir("settings.json")
    wsgi_script = _InRunDir("app.wsgi")
    logs = _InRunDir("logs")
    metrics = _InRunDir(METRICS_DIR)  # prometheus-client's multiprocess files of the W daemon processes and the master


PROXY_MODULE_SOURCE = Path(__file__).with_name("mod_pandasrv_proxycerts.c")


def proxy_module(layout: Layout) -> Path:
    """Build the proxy-certificate module with ``apxs`` into the run directory (once per source version)."""
    source = PROXY_MODULE_SOURCE.read_bytes()
    build = layout.run_dir / "build" / hashlib.sha256(source).hexdigest()[:16]
    built = build / ".libs" / "mod_pandasrv_proxycerts.so"
    if built.exists():
        return built
    if not shutil.which("apxs"):
        raise ConfigError("apxs is missing: apt-get install apache2-dev (it builds the proxy-certificate module)")
    build.mkdir(parents=True, exist_ok=True)
    (build / PROXY_MODULE_SOURCE.name).write_bytes(source)
    result = subprocess.run(["apxs", "-c", "-lcrypto", PROXY_MODULE_SOURCE.name], cwd=build, capture_output=True, text=True)
    if result.returncode != 0 or not built.exists():
        raise ConfigError(f"building the proxy-certificate module failed: {result.stderr.strip()[-500:]}")
    return built


def tls_config(settings: Settings, layout: Layout, module: Path) -> str:
    """The HTTPS listener: client certificates (proxies too) verified against the CA directory and its CRLs.

    ``SSLVerifyClient optional``: a client without a certificate still gets in (tokens, anonymous calls), a
    client whose chain does not verify is refused in the handshake. The DN reaches the application in
    PanDA's slash form, and the whole chain as ``SSL_CLIENT_CERT_CHAIN_n`` (VOMS attributes live there).
    """
    apache = settings.apache
    if not apache.ssl_port:
        return ""
    if not (apache.ssl_cert and apache.ssl_key):
        raise ConfigError("apache.ssl_port needs apache.ssl_cert and apache.ssl_key (--ssl-cert, --ssl-key)")
    ca_dir = Path(apache.ca_dir).resolve()
    crls = any(ca_dir.glob("*.r[0-9]*"))
    revocation = (f'SSLCARevocationPath "{ca_dir}"\n    SSLCARevocationCheck chain no_crl_for_cert_ok\n'
                  if crls else "")
    return f"""
LoadModule ssl_module {MODULE_DIR / 'mod_ssl.so'}
LoadModule socache_shmcb_module {MODULE_DIR / 'mod_socache_shmcb.so'}
LoadModule pandasrv_proxycerts_module "{module}"
SSLSessionCache "shmcb:{layout.run_dir}/ssl_scache(512000)"
SSLRandomSeed startup builtin
Listen {settings.host}:{apache.ssl_port}
<VirtualHost {settings.host}:{apache.ssl_port}>
    SSLEngine on
    SSLProtocol -all +TLSv1.2 +TLSv1.3
    SSLCertificateFile "{Path(apache.ssl_cert).resolve()}"
    SSLCertificateKeyFile "{Path(apache.ssl_key).resolve()}"
    SSLCACertificatePath "{ca_dir}"
    {revocation}SSLVerifyClient optional
    SSLVerifyDepth 10
    SSLOptions +StdEnvVars +ExportCertData +LegacyDNStringFormat
    # a client's own copies of the front server's variables are never passed on
    RequestHeader unset X-SSL-Client-S-DN early
    RequestHeader unset X-SSL-Client-Verify early
{proxy_protocol(settings, "    ")}</VirtualHost>
"""


def proxy_protocol(settings: Settings, indent: str = "") -> str:
    """``RemoteIPProxyProtocol On`` (mod_remoteip) for one listener when ``apache.proxy_protocol`` is set.

    The PROXY v2 header HAProxy sends (``send-proxy-v2``) is read before TLS and before HTTP; the client's
    address it carries becomes the connection's, so ``REMOTE_ADDR``, the access log and the ``auth = none``
    loopback test see the real client, not the balancer."""
    return f"{indent}RemoteIPProxyProtocol On\n" if settings.apache.proxy_protocol else ""


def mod_wsgi_module() -> Path:
    """The mod_wsgi built for this interpreter by ``pip install mod_wsgi`` (the ``apache`` extra)."""
    try:
        import mod_wsgi.server
    except ImportError:
        raise ConfigError("mod_wsgi is not installed: pip install 'pandasrv[apache]' (needs Debian's apache2-dev)") from None
    return Path(mod_wsgi.server.where())


def daemon_shape(settings: Settings) -> tuple[int, int]:
    """W and T of the mod_wsgi daemon processes: ``apache.processes`` / ``apache.threads``, else the web
    settings ``workers`` / ``threads``."""
    return settings.apache.processes or settings.workers, settings.apache.threads or settings.threads


def frozen_settings(settings: Settings) -> Settings:
    """The settings the daemon processes get: relative paths made absolute (their working directory differs),
    and their own W and T as ``workers`` and ``threads`` (what their admission is derived from)."""
    data = settings.model_copy(deep=True)
    data.workers, data.threads = daemon_shape(settings)
    prefix = "sqlite:///"
    if settings.db_url.startswith(prefix) and not settings.db_url[len(prefix):].startswith("/"):
        data.db_url = prefix + str(Path(settings.db_url[len(prefix):]).resolve())
    return data


def _user_directives(settings: Settings) -> tuple[str, str]:
    """The ``User``/``Group`` lines and the daemon-process user options: only when started as root."""
    if not rootfs.is_root():
        return "", ""
    apache = settings.apache
    return f"User {apache.user}\nGroup {apache.group}\n", f" user={apache.user} group={apache.group}"


def render_config(settings: Settings, layout: Layout, module: Path | None = None) -> str:
    """The complete httpd configuration of one instance."""
    apache = settings.apache
    processes, threads = daemon_shape(settings)
    # each process admits at most the cap of its own T and C (pandasrv.web.admission) and keeps SIDE_THREADS
    # more for the requests it sheds or never counts, so those never queue behind the admitted ones
    daemon_threads = admission.limits(threads, settings.db_connections).cap + admission.SIDE_THREADS
    backlog = admission.listen_backlog(processes, threads)
    users, daemon_users = _user_directives(settings)
    run = layout.run_dir
    tls = tls_config(settings, layout, module or layout.run_dir / "build" / "mod_pandasrv_proxycerts.so")
    names = (*MODULES, "remoteip") if apache.proxy_protocol else MODULES
    modules = "\n".join(f"LoadModule {name}_module {MODULE_DIR / f'mod_{name}.so'}" for name in names)
    return f"""# written by pandasrv apache; regenerated at every start
ServerRoot "{run}"
ServerName {settings.host}
PidFile "{run}/httpd.pid"
DefaultRuntimeDir "{run}"
Mutex file:{run} default
ErrorLog "{layout.logs}/error.log"
LogLevel warn
{modules}
LoadModule wsgi_module "{mod_wsgi_module()}"
{users}
Listen {settings.host}:{settings.port}
{proxy_protocol(settings)}{tls}
# MPM event: worker processes grow and shrink with the load between these limits
StartServers {apache.start_servers}
ServerLimit {apache.server_limit}
ThreadsPerChild {apache.threads_per_child}
MinSpareThreads {apache.min_spare_threads}
MaxSpareThreads {max(apache.max_spare_threads, apache.min_spare_threads + apache.threads_per_child)}
MaxRequestWorkers {min(apache.max_request_workers, apache.server_limit * apache.threads_per_child)}
MaxConnectionsPerChild 0
KeepAlive On
KeepAliveTimeout 30
Timeout {apache.request_timeout}
RequestReadTimeout header=20-40,MinRate=500 body=60,MinRate=500
LimitRequestBody {settings.max_body_bytes}
TraceEnable off
ServerTokens Prod
ServerSignature Off

LogFormat {ACCESS_LOG_FORMAT} pandasrv
CustomLog "{layout.logs}/access.log" pandasrv{'' if settings.access_log else ' "expr=false"'}

# the application: W daemon processes, each admitting what T threads and C connections serve (its other threads
# answer shed and exempt requests); Apache's own children never run Python (the app sheds a request queued
# longer than queue_timeout with its own 503; queue-timeout, mod_wsgi's 504, is a backstop)
WSGIRestrictEmbedded On
WSGISocketPrefix "{run}/wsgi"
WSGIPythonHome "{sys.prefix}"
WSGIDaemonProcess pandasrv processes={processes} threads={daemon_threads}{daemon_users} \\
    maximum-requests={apache.maximum_requests} request-timeout={apache.request_timeout} \\
    queue-timeout={math.ceil(settings.queue_timeout) + BACKSTOP_SECONDS} listen-backlog={backlog} \\
    graceful-timeout={apache.graceful_timeout} shutdown-timeout=5 home="{run}" \\
    display-name=pandasrv-wsgi lang=C.UTF-8 locale=C.UTF-8
WSGIProcessGroup pandasrv
WSGIApplicationGroup %{{GLOBAL}}
WSGIPassAuthorization On
# process-group and application-group here make each daemon process load the application when it starts,
# not at its first request, which would otherwise wait (and be shed) while the process imports it
WSGIScriptAlias / "{layout.wsgi_script}" process-group=pandasrv application-group=%{{GLOBAL}}
<Directory "{run}">
    Require all granted
</Directory>
"""


def write_run_dir(settings: Settings, layout: Layout) -> None:
    """Write the configuration, the WSGI script and the frozen settings into the run directory."""
    layout.logs.mkdir(parents=True, exist_ok=True)
    layout.run_dir.chmod(0o755)
    module = proxy_module(layout) if settings.apache.ssl_port else None
    layout.config.write_text(render_config(settings, layout, module), encoding="utf-8")
    layout.wsgi_script.write_text(
        "from pandasrv.deploy.wsgi import load\n\n"
        f"application = load({str(layout.settings)!r})\n", encoding="utf-8")
    layout.settings.write_text(frozen_settings(settings).model_dump_json(), encoding="utf-8")
    layout.settings.chmod(0o640)  # the database URL may carry a password
    use_multiprocess_dir(layout.metrics, fresh=True)  # counters restart at zero with the server
    if rootfs.is_root():
        shutil.chown(layout.settings, group=settings.apache.group)
        shutil.chown(layout.metrics, user=settings.apache.user, group=settings.apache.group)


def needed_paths(settings: Settings, layout: Layout) -> list[Path]:
    """What the unprivileged daemon processes must read: Python, the venv, the code, the run dir, an SQLite DB's dir."""
    frozen = frozen_settings(settings)
    paths = [Path(sys.base_prefix), Path(sys.prefix), Path(pandasrv.__file__).parent, mod_wsgi_module().parent,
             layout.run_dir]
    if frozen.db_backend == "sqlite":
        paths.append(Path(frozen.db_url[len("sqlite:///"):]).parent)
    if settings.apache.ssl_port:  # read by Apache's root parent, which sees the namespace's view too
        paths += [Path(settings.apache.ssl_cert), Path(settings.apache.ssl_key), Path(settings.apache.ca_dir)]
    # read by the application itself: the token issuer's keys, the vomsdir and the CAs of the VOMS servers
    voms_cas = (settings.voms_ca_dir or settings.apache.ca_dir) if settings.voms_dir else ""
    paths += [Path(p) for p in (settings.token_jwks_file, settings.voms_dir, voms_cas) if p]
    # the credential folders the creds calls serve from (docs/credentials.md)
    creds = settings.creds
    paths += [Path(p) for p in (creds.proxy_dir, creds.token_dir, creds.token_key_dir, creds.key_dir) if p]
    return paths


def apache_command(settings: Settings, layout: Layout, stash: Path) -> list[str]:
    """The command that starts Apache in the foreground, inside a private mount namespace when the trap applies."""
    command = [APACHE_BINARY, "-f", str(layout.config), "-DFOREGROUND"]
    if not rootfs.is_root():
        return command
    return rootfs.namespace_script(needed_paths(settings, layout), command, stash) or command


def run(settings: Settings, daemon: bool = True) -> int:
    """Run Apache (and the daemon master) in the foreground until SIGTERM or SIGINT; return the exit code."""
    if not Path(APACHE_BINARY).exists():
        raise ConfigError(f"{APACHE_BINARY} is missing: apt-get install apache2 apache2-dev")
    layout = Layout(Path(settings.apache.run_dir).resolve())
    write_run_dir(settings, layout)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.append(signum))
    stash = Path(tempfile.mkdtemp(prefix="pandasrv-rootfs-"))
    supervisor = Supervisor()
    if daemon and settings.daemon.enable:
        from pandasrv.daemon.master import supervise_master

        supervise_master(supervisor, settings)
        supervisor.start()
    httpd = subprocess.Popen(apache_command(settings, layout, stash), start_new_session=True)
    log.info("apache started (pid %d) on %s:%d, run dir %s", httpd.pid, settings.host, settings.port, layout.run_dir)
    try:
        while httpd.poll() is None and not stopping:
            time.sleep(0.2)
        code = httpd.returncode
        if code is not None and not stopping:
            log.error("apache exited with %d; see %s", code, layout.logs / "error.log")
    finally:
        stop_process(httpd)
        supervisor.stop()
        shutil.rmtree(stash, ignore_errors=True)
    return 0 if stopping else (code or 1)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM the process; whatever is left of its process group after it exits (or times out) is killed."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
