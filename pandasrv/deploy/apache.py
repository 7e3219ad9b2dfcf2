"""``pandasrv apache``: the seed's production front end, Apache httpd (MPM event) + mod_wsgi daemon processes.

The configuration is written from the settings into a run directory of its own (pid file, mutexes,
mod_wsgi sockets, logs), so two instances with other addresses or ports and other run directories never
share anything. Apache runs in the foreground; SIGTERM stops it (and with it every child) and the daemon
master beside it, and the command exits 0.
"""

from __future__ import annotations

import logging
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

log = logging.getLogger("pandasrv.deploy.apache")

APACHE_BINARY = "/usr/sbin/apache2"
MODULE_DIR = Path("/usr/lib/apache2/modules")
MODULES = ("mpm_event", "authz_core", "headers", "reqtimeout")
ACCESS_LOG_FORMAT = '"%h %l %u %t \\"%r\\" %>s %b %D"'  # %D: microseconds per request (A of the sizing rule)


@dataclass(frozen=True)
class Layout:
    """Where one instance keeps its files."""

    run_dir: Path

    @property
    def config(self) -> Path:
        return self.run_dir / "httpd.conf"

    @property
    def settings(self) -> Path:
        return self.run_dir / "settings.json"

    @property
    def wsgi_script(self) -> Path:
        return self.run_dir / "app.wsgi"

    @property
    def logs(self) -> Path:
        return self.run_dir / "logs"


def mod_wsgi_module() -> Path:
    """The mod_wsgi built for this interpreter by ``pip install mod_wsgi`` (the ``apache`` extra)."""
    try:
        import mod_wsgi.server
    except ImportError:
        raise ConfigError("mod_wsgi is not installed: pip install 'pandasrv[apache]' (needs Debian's apache2-dev)") from None
    return Path(mod_wsgi.server.where())


def frozen_settings(settings: Settings) -> Settings:
    """The settings the daemon processes get: relative paths made absolute (their working directory differs)."""
    data = settings.model_copy(deep=True)
    data.cache_dir = str(Path(settings.cache_dir).resolve())
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


def render_config(settings: Settings, layout: Layout) -> str:
    """The complete httpd configuration of one instance."""
    apache = settings.apache
    processes = apache.processes or settings.workers
    threads = apache.threads or settings.threads
    users, daemon_users = _user_directives(settings)
    run = layout.run_dir
    modules = "\n".join(f"LoadModule {name}_module {MODULE_DIR / f'mod_{name}.so'}" for name in MODULES)
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

# the application: W daemon processes x T threads; Apache's own children never run Python
WSGIRestrictEmbedded On
WSGISocketPrefix "{run}/wsgi"
WSGIPythonHome "{sys.prefix}"
WSGIDaemonProcess pandasrv processes={processes} threads={threads}{daemon_users} \\
    maximum-requests={apache.maximum_requests} request-timeout={apache.request_timeout} \\
    graceful-timeout={apache.graceful_timeout} shutdown-timeout=5 home="{run}" \\
    display-name=pandasrv-wsgi lang=C.UTF-8 locale=C.UTF-8
WSGIProcessGroup pandasrv
WSGIApplicationGroup %{{GLOBAL}}
WSGIPassAuthorization On
WSGIScriptAlias / "{layout.wsgi_script}"
<Directory "{run}">
    Require all granted
</Directory>
"""


def write_run_dir(settings: Settings, layout: Layout) -> None:
    """Write the configuration, the WSGI script and the frozen settings into the run directory."""
    layout.logs.mkdir(parents=True, exist_ok=True)
    layout.run_dir.chmod(0o755)
    layout.config.write_text(render_config(settings, layout), encoding="utf-8")
    layout.wsgi_script.write_text(
        "from pandasrv.deploy.wsgi import load\n\n"
        f"application = load({str(layout.settings)!r})\n", encoding="utf-8")
    layout.settings.write_text(frozen_settings(settings).model_dump_json(), encoding="utf-8")
    layout.settings.chmod(0o640)  # the database URL may carry a password
    if rootfs.is_root():
        shutil.chown(layout.settings, group=settings.apache.group)
        cache = Path(frozen_settings(settings).cache_dir)
        cache.mkdir(parents=True, exist_ok=True)
        shutil.chown(cache, user=settings.apache.user, group=settings.apache.group)


def needed_paths(settings: Settings, layout: Layout) -> list[Path]:
    """What the unprivileged daemon processes must read: Python, the venv, the code, the run and data dirs."""
    frozen = frozen_settings(settings)
    paths = [Path(sys.base_prefix), Path(sys.prefix), Path(pandasrv.__file__).parent, mod_wsgi_module().parent,
             layout.run_dir, Path(frozen.cache_dir)]
    if frozen.db_backend == "sqlite":
        paths.append(Path(frozen.db_url[len("sqlite:///"):]).parent)
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
    master: subprocess.Popen | None = None
    if daemon and settings.daemon.enable:
        from pandasrv.daemon.master import start_master

        master = start_master(settings)
    httpd = subprocess.Popen(apache_command(settings, layout, stash), start_new_session=True)
    log.info("apache started (pid %d) on %s:%d, run dir %s", httpd.pid, settings.host, settings.port, layout.run_dir)
    try:
        while httpd.poll() is None and not stopping:
            time.sleep(0.2)
        code = httpd.returncode
        if code is not None and not stopping:
            log.error("apache exited with %d; see %s", code, layout.logs / "error.log")
    finally:
        _stop(httpd)
        if master is not None:
            _stop(master)
        shutil.rmtree(stash, ignore_errors=True)
    return 0 if stopping else (code or 1)


def _stop(process: subprocess.Popen, timeout: float = 30.0) -> None:
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
