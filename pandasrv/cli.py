"""The ``pandasrv`` command: serve, apache, haproxy, daemon, db, queue, creds, pilot, submit, config."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, NoReturn

import click

from pandasrv.config import ConfigError, Settings, load_settings, mask_url, show


def exit_on_config_error(exc: ConfigError) -> NoReturn:
    """A bad setting ends the program with a one-line message and status 2 (not a traceback)."""
    click.echo(f"pandasrv: {exc}", err=True)
    sys.exit(2)


def settings_from(ctx: click.Context, **overrides: object) -> Settings:
    """Load the settings once per command."""
    try:
        return load_settings(ctx.obj.get("config"), **overrides)
    except ConfigError as exc:
        exit_on_config_error(exc)


def with_db(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of every command that opens the database: ``--db`` (it overrides PANDASRV_DB_URL), and
    the click context that ``settings_from`` loads the settings of."""
    return click.option("--db", "db_url", help="Database URL (overrides PANDASRV_DB_URL).")(click.pass_context(command))


def _log_to_stderr(level: str | int) -> None:
    """The log format of the long-running commands: which process said what, when."""
    import logging

    logging.basicConfig(level=level, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")


def _front_end(settings: Settings, section: object, overrides: dict[str, object], print_only: bool,
               render: Callable[[], str], run: Callable[[], int]) -> None:
    """What the front-end commands (apache, haproxy) share: the options given override the front end's
    settings ``section``; then its configuration is printed (``--print``) or it runs until it exits."""
    for name, value in overrides.items():
        if value is not None:
            setattr(section, name, value)
    _log_to_stderr(settings.log_level.upper())
    try:
        if print_only:
            click.echo(render(), nl=False)
            return
        sys.exit(run())
    except ConfigError as exc:
        exit_on_config_error(exc)


@click.group()
@click.version_option(package_name="pandasrv", prog_name="pandasrv")
@click.option("--config", "config_file", envvar="PANDASRV_CONFIG", help="TOML settings file.")
@click.pass_context
def main(ctx: click.Context, config_file: str | None) -> None:
    """PanDA server: web API, job database and time-based daemon."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config_file


@main.group()
def config() -> None:
    """Inspect the settings."""


@config.command("show")
@with_db
def config_show(ctx: click.Context, db_url: str | None) -> None:
    """Print the effective settings, secrets masked."""
    click.echo(json.dumps(show(settings_from(ctx, db_url=db_url)), indent=2, default=str))


@main.group()
def db() -> None:
    """Create, migrate and check the database schema."""


def _db_admin_call(action: Callable[..., Any], *args: Any) -> Any:
    """Run a db_admin function; a database error ends the program with a one-line message."""
    from sqlalchemy.exc import SQLAlchemyError

    from pandasrv.taskbuffer.errors import DBError

    try:
        return action(*args)
    except (DBError, SQLAlchemyError) as exc:
        click.echo(f"pandasrv db: {str(exc).splitlines()[0]}", err=True)
        sys.exit(1)


@db.command("init")
@click.option("--if-missing", is_flag=True, help="Do nothing if the database is already initialised.")
@with_db
def db_init(ctx: click.Context, db_url: str | None, if_missing: bool) -> None:
    """Create all tables, indexes and sequences, and stamp the newest schema revision."""
    from pandasrv.taskbuffer.db_admin import init_db

    settings = settings_from(ctx, db_url=db_url)
    created = _db_admin_call(init_db, settings.db_url, if_missing)
    where = mask_url(settings.db_url)
    click.echo(f"initialised {where}" if created else f"{where} is already initialised")


@db.command("upgrade")
@with_db
def db_upgrade(ctx: click.Context, db_url: str | None) -> None:
    """Apply the pending schema migrations (on an empty database: all of them)."""
    from pandasrv.taskbuffer.db_admin import upgrade_db

    settings = settings_from(ctx, db_url=db_url)
    revision = _db_admin_call(upgrade_db, settings.db_url)
    click.echo(f"{mask_url(settings.db_url)} at revision {revision}")


@db.command("check")
@with_db
def db_check(ctx: click.Context, db_url: str | None) -> None:
    """Exit 0 if the schema is at the newest revision, 1 (with the reason) otherwise."""
    from pandasrv.taskbuffer.db_admin import check_db

    ok, message = check_db(settings_from(ctx, db_url=db_url).db_url)
    click.echo(message, err=not ok)
    sys.exit(0 if ok else 1)


@main.command()
@click.option("--n-proc", type=int, help="Worker processes (overrides daemon.n_proc).")
@with_db
def daemon(ctx: click.Context, db_url: str | None, n_proc: int | None) -> None:
    """Run the daemon master of this machine in the foreground (the multi-machine layout)."""
    from pandasrv.daemon.master import run_master

    settings = settings_from(ctx, db_url=db_url)
    if not settings.daemon.enable:
        click.echo("pandasrv: the daemon is disabled (daemon.enable = false)", err=True)
        sys.exit(2)
    if n_proc is not None:
        settings.daemon.n_proc = n_proc
    _log_to_stderr(settings.log_level)
    run_master(settings)


@main.command()
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 25080).")
@click.option("--workers", type=int, help="Web processes (W).")
@click.option("--threads", type=int, help="Threads per web process (T).")
@click.option("--no-daemon", is_flag=True, help="Do not start the daemon master alongside the web server.")
@with_db
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int | None, threads: int | None,
          db_url: str | None, no_daemon: bool) -> None:
    """Run the PanDA web server (gunicorn) and, unless --no-daemon, the daemon master."""
    import os
    import shutil

    from pandasrv.metrics_dir import prepare_multiprocess_dir

    settings = settings_from(ctx, host=host, port=port, workers=workers, threads=threads, db_url=db_url)
    # before prometheus-client is imported: /metrics sums over all processes
    metrics_dir = prepare_multiprocess_dir() if settings.monitor.metrics else None
    serving_pid = os.getpid()  # gunicorn workers leave through this frame too; only the master cleans up
    from pandasrv.daemon.master import supervise_master
    from pandasrv.web.server import serve as run_server

    _check_port_free(settings.host, settings.port)
    daemon = not no_daemon and settings.daemon.enable
    try:
        run_server(settings, (lambda supervisor: supervise_master(supervisor, settings)) if daemon else None)
    except ConfigError as exc:
        exit_on_config_error(exc)
    finally:
        if metrics_dir is not None and os.getpid() == serving_pid:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _check_port_free(host: str, port: int) -> None:
    """Say once that the port is taken and exit (gunicorn would retry and log an error each second)."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            click.echo(f"pandasrv serve: cannot listen on {host}:{port}: {exc.strerror}", err=True)
            sys.exit(1)


@main.command()
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Plain HTTP port (default 25080).")
@click.option("--ssl-port", type=int, help="HTTPS port (client certificates and proxies; 0 = none).")
@click.option("--ssl-cert", type=click.Path(dir_okay=False), help="Server certificate (PEM).")
@click.option("--ssl-key", type=click.Path(dir_okay=False), help="Server key (PEM).")
@click.option("--ca-dir", type=click.Path(file_okay=False),
              help="Hashed CA directory with CRLs (default /etc/grid-security/certificates).")
@click.option("--processes", type=int, help="mod_wsgi daemon processes (W; default: workers).")
@click.option("--threads", type=int, help="Threads per daemon process (T; default: threads).")
@click.option("--run-dir", type=click.Path(file_okay=False), help="Configuration, sockets and logs (default var/apache).")
@click.option("--no-daemon", is_flag=True, help="Do not start the daemon master alongside Apache.")
@click.option("--print", "print_only", is_flag=True, help="Print the httpd configuration instead of running Apache.")
@with_db
def apache(ctx: click.Context, host: str | None, port: int | None, ssl_port: int | None, ssl_cert: str | None,
           ssl_key: str | None, ca_dir: str | None, processes: int | None, threads: int | None,
           run_dir: str | None, db_url: str | None, no_daemon: bool, print_only: bool) -> None:
    """Run Apache httpd + mod_wsgi (the production front end) and, unless --no-daemon, the daemon master."""
    from pathlib import Path

    from pandasrv.deploy import apache as front

    settings = settings_from(ctx, host=host, port=port, db_url=db_url)

    def run() -> int:
        from pandasrv.web.auth import check_loopback

        check_loopback(settings)
        return front.run(settings, daemon=not no_daemon)

    _front_end(settings, settings.apache, {"processes": processes, "threads": threads, "run_dir": run_dir,
                                           "ssl_port": ssl_port, "ssl_cert": ssl_cert, "ssl_key": ssl_key,
                                           "ca_dir": ca_dir}, print_only,
               lambda: front.render_config(settings, front.Layout(Path(settings.apache.run_dir).resolve())), run)


@main.command()
@click.option("--host", help="Address the balancer listens on (default haproxy.host, 127.0.0.1).")
@click.option("--port", type=int, help="Plain HTTP port, passed through (default 25080; 0 = none).")
@click.option("--ssl-port", type=int, help="TLS port, passed through to the nodes' mod_ssl (default 25443; 0 = none).")
@click.option("--backend", "backends", multiple=True, metavar="HOST[:PORT[:SSL_PORT]]",
              help="A pandasrv apache node (repeat for each; default haproxy.backends).")
@click.option("--run-dir", type=click.Path(file_okay=False), help="Configuration, pid file, admin socket (default var/haproxy).")
@click.option("--print", "print_only", is_flag=True, help="Print the HAProxy configuration instead of running HAProxy.")
@click.pass_context
def haproxy(ctx: click.Context, host: str | None, port: int | None, ssl_port: int | None, backends: tuple[str, ...],
            run_dir: str | None, print_only: bool) -> None:
    """Run HAProxy (TLS pass-through) in front of several pandasrv apache nodes on one database."""
    from pathlib import Path

    from pandasrv.deploy import haproxy as balancer

    settings = settings_from(ctx)
    _front_end(settings, settings.haproxy, {"host": host, "port": port, "ssl_port": ssl_port, "run_dir": run_dir,
                                            "backends": list(backends) or None}, print_only,
               lambda: balancer.render_config(settings, Path(settings.haproxy.run_dir).resolve()),
               lambda: balancer.run(settings))


@main.group()
def queue() -> None:
    """Manage PanDA queues (the sites pilots take jobs from)."""


def _task_buffer(ctx: click.Context, db_url: str | None) -> Any:
    from pandasrv.taskbuffer.task_buffer import TaskBuffer

    return TaskBuffer(settings_from(ctx, db_url=db_url, db_bridge=False, db_connections=1))


@queue.command("add")
@click.argument("name")
@click.option("--site", help="Site of the queue (default: the queue name).")
@click.option("--status", type=click.Choice(["online", "offline", "test", "brokeroff"]), default="online")
@click.option("--storage", default="LOCAL_DISK", help="DDM endpoint for stage-in, stage-out and logs.")
@click.option("--maxtime", type=int, help="Wall-time limit in seconds.")
@click.option("--maxrss", type=int, help="Memory limit in MB.")
@click.option("--maxwdir", type=int, help="Work directory limit in MB.")
@click.option("--corecount", type=int, help="Cores per job slot.")
@click.option("--if-missing", is_flag=True, help="Succeed quietly when the queue already exists.")
@with_db
def queue_add(ctx: click.Context, name: str, site: str | None, status: str, storage: str, maxtime: int | None,
              maxrss: int | None, maxwdir: int | None, corecount: int | None, if_missing: bool,
              db_url: str | None) -> None:
    """Add queue NAME."""
    from pandasrv.taskbuffer.errors import IntegrityError
    from pandasrv.web.queues import storages_for

    data: dict[str, Any] = {"astorages": storages_for(storage)}
    data.update({k: v for k, v in (("maxtime", maxtime), ("maxrss", maxrss), ("maxwdir", maxwdir),
                                   ("corecount", corecount)) if v is not None})
    task_buffer = _task_buffer(ctx, db_url)
    try:
        task_buffer.add_queue(name, site or name, status, data)
    except IntegrityError:
        if if_missing:
            return
        click.echo(f"pandasrv: queue {name} already exists (use 'pandasrv queue set')", err=True)
        sys.exit(1)
    finally:
        task_buffer.close()
    click.echo(f"queue {name} added")


@queue.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the full descriptions as JSON.")
@with_db
def queue_list(ctx: click.Context, as_json: bool, db_url: str | None) -> None:
    """List the queues."""
    from pandasrv.web.queues import describe

    task_buffer = _task_buffer(ctx, db_url)
    try:
        queues = task_buffer.list_queues()
    finally:
        task_buffer.close()
    if as_json:
        click.echo(json.dumps({q["name"]: describe(q) for q in queues}, indent=2))
        return
    for q in queues:
        storage = ",".join((q["data"].get("astorages") or {}).get("pw") or [])
        click.echo(f"{q['name']}\tsite={q['site']}\tstatus={q['status']}\tstorage={storage}")


@queue.command("set")
@click.argument("name")
@click.argument("settings", nargs=-1, required=True)
@with_db
def queue_set(ctx: click.Context, name: str, settings: tuple[str, ...], db_url: str | None) -> None:
    """Change queue NAME: key=value ... (site, status, storage, or any description field; JSON values allowed)."""
    from pandasrv.web.queues import QUEUE_STATUSES, parse_setting

    try:
        pairs = [parse_setting(text) for text in settings]
    except ValueError as exc:
        click.echo(f"pandasrv: {exc}", err=True)
        sys.exit(2)
    columns = {k: str(v) for k, v in pairs if k in ("site", "status")}
    if columns.get("status", "online") not in QUEUE_STATUSES:
        click.echo(f"pandasrv: status must be one of {', '.join(QUEUE_STATUSES)}", err=True)
        sys.exit(2)
    task_buffer = _task_buffer(ctx, db_url)
    try:
        current = task_buffer.get_queue(name)
        if current is None:
            click.echo(f"pandasrv: no queue named {name}", err=True)
            sys.exit(1)
        data = dict(current["data"])
        data.update({k: v for k, v in pairs if k not in ("site", "status")})
        task_buffer.update_queue(name, data=data, **columns)
    finally:
        task_buffer.close()
    click.echo(f"queue {name} updated")


@main.group()
def creds() -> None:
    """The credential calls' settings (docs/credentials.md)."""


@creds.command("new-key")
def creds_new_key() -> None:
    """Print a new random key for creds.secrets_key (urlsafe base64 of 32 bytes)."""
    from pandasrv.logic.secrets import new_key

    click.echo(new_key())


@main.group("resource-type")
def resource_type() -> None:
    """Manage resource types (SCORE, MCORE, ...: core and memory-per-core ranges; db init adds the standard ones)."""


@resource_type.command("list")
@with_db
def resource_type_list(ctx: click.Context, db_url: str | None) -> None:
    """List the resource types (a missing bound prints as -)."""
    task_buffer = _task_buffer(ctx, db_url)
    try:
        types = task_buffer.get_resource_types()
    finally:
        task_buffer.close()
    for t in types:
        bounds = [("-" if t[k] is None else str(t[k])) for k in ("mincore", "maxcore", "minrampercore", "maxrampercore")]
        click.echo(f"{t['resource_name']}\tcores={bounds[0]}..{bounds[1]}\tram_per_core={bounds[2]}..{bounds[3]}")


@resource_type.command("set")
@click.argument("name")
@click.option("--min-core", type=int, help="Fewest cores (default: no lower bound).")
@click.option("--max-core", type=int, help="Most cores (default: no upper bound).")
@click.option("--min-ram-per-core", type=int, help="Least memory per core in MB.")
@click.option("--max-ram-per-core", type=int, help="Most memory per core in MB.")
@with_db
def resource_type_set(ctx: click.Context, name: str, min_core: int | None, max_core: int | None,
                      min_ram_per_core: int | None, max_ram_per_core: int | None, db_url: str | None) -> None:
    """Create or replace resource type NAME with the given ranges."""
    task_buffer = _task_buffer(ctx, db_url)
    try:
        task_buffer.set_resource_type(name, min_core, max_core, min_ram_per_core, max_ram_per_core)
    finally:
        task_buffer.close()
    click.echo(f"resource type {name} set")


@resource_type.command("remove")
@click.argument("name")
@with_db
def resource_type_remove(ctx: click.Context, name: str, db_url: str | None) -> None:
    """Remove resource type NAME."""
    task_buffer = _task_buffer(ctx, db_url)
    try:
        removed = task_buffer.remove_resource_type(name)
    finally:
        task_buffer.close()
    if not removed:
        click.echo(f"pandasrv: no resource type named {name}", err=True)
        sys.exit(1)
    click.echo(f"resource type {name} removed")


def identity_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The credential options of the client commands, panda-client's environment variables as defaults."""
    options = [
        click.option("--proxy", help="Grid proxy (certificate and key in one PEM) for https "
                                     "[X509_USER_PROXY, else /tmp/x509up_u<uid>]."),
        click.option("--ca-dir", "client_ca_dir", help="Hashed CA directory to verify the server "
                                                      "[X509_CERT_DIR, else /etc/grid-security/certificates]."),
        click.option("--token-file", help="OIDC ID token file, sent as a Bearer token instead of the proxy "
                                          "[with PANDA_AUTH=oidc: PANDA_AUTH_ID_TOKEN, OIDC_AUTH_TOKEN_FILE]."),
        click.option("--vo", help="VO of the token, sent as Origin, e.g. myvo or myvo:production [PANDA_AUTH_VO]."),
        click.option("--no-verify", is_flag=True, help="Do not verify the server's certificate [PANDA_VERIFY_HOST=off]."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def client_identity(command: str, *, proxy: str | None, client_ca_dir: str | None, token_file: str | None,
                    vo: str | None, no_verify: bool) -> Any:
    """The ClientIdentity of a client command; a credential that cannot be used is one line and exit 1."""
    from pandasrv.client_identity import ClientIdentity, IdentityError

    try:
        identity = ClientIdentity.resolve(proxy=proxy, ca_dir=client_ca_dir, token_file=token_file, vo=vo,
                                          no_verify=no_verify)
        if identity.proxy is not None:
            identity.tls_context()
    except IdentityError as exc:
        click.echo(f"pandasrv {command}: {exc}", err=True)
        sys.exit(1)
    return identity


@main.command()
@click.option("--url", required=True, help="Server base URL, e.g. http://127.0.0.1:25080.")
@click.option("--site", required=True, help="PanDA queue (computingSite) to take jobs from.")
@click.option("--jobs", default=1, show_default=True, help="Run at most this many jobs, one after another.")
@click.option("--workdir", type=click.Path(file_okay=False), default="pilot-work", show_default=True)
@click.option("--stage-dir", type=click.Path(file_okay=False), help="Where outputs go (default <workdir>/storage).")
@click.option("--heartbeat", default=60.0, show_default=True, help="Seconds between running heartbeats.")
@click.option("--label", default="user", show_default=True, help="prodSourceLabel asked for in getJob.")
@click.option("--keep-workdir", is_flag=True, help="Keep each job's work directory after it ends.")
@click.option("--wait", default=30.0, show_default=True, help="Seconds to keep asking for a job before giving up.")
@click.option("--harvester-id", help="Play a pilot that this Harvester instance started (with --worker-id).")
@click.option("--worker-id", type=int, help="The Harvester worker this pilot runs in.")
@identity_options
def pilot(url: str, site: str, jobs: int, workdir: str, stage_dir: str | None, heartbeat: float,
          label: str, keep_workdir: bool, wait: float, harvester_id: str | None, worker_id: int | None,
          **credentials: Any) -> None:
    """Run a small generic pilot: get jobs from the server, run them, report back."""
    import logging
    from pathlib import Path

    from pandasrv.pilot.runner import PilotOptions, Unreachable, run_pilot
    from pandasrv.submit import SubmitError, base_url

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        done = run_pilot(PilotOptions(url=base_url(url), site=site, jobs=jobs, workdir=Path(workdir).resolve(),
                                      stage_dir=Path(stage_dir).resolve() if stage_dir else None,
                                      heartbeat=heartbeat, label=label, keep_workdir=keep_workdir,
                                      wait=wait, harvester_id=harvester_id, worker_id=worker_id,
                                      identity=client_identity("pilot", **credentials)))
    except (SubmitError, Unreachable) as exc:
        click.echo(f"pandasrv pilot: {exc}", err=True)
        sys.exit(1)
    click.echo(f"ran {len(done)} job(s): {' '.join(map(str, done))}")


@main.command()
@click.option("--url", required=True, help="Server base URL, e.g. http://127.0.0.1:25080.")
@click.option("--site", required=True, help="PanDA queue (computingSite) for the jobs.")
@click.option("--trf", default="", help="Transformation: a URL to a script, or a command line.")
@click.option("--args", "arguments", default="", help="Job parameters passed to the transformation.")
@click.option("--upload", type=click.Path(exists=True, dir_okay=False),
              help="Upload this script to the server cache and use it as the transformation.")
@click.option("--output", "outputs", multiple=True, help="LFN of an output file the payload writes (repeatable).")
@click.option("-n", "count", default=1, show_default=True, help="Number of jobs.")
@click.option("--label", default="user", show_default=True, help="prodSourceLabel of the jobs.")
@identity_options
def submit(url: str, site: str, trf: str, arguments: str, upload: str | None, outputs: tuple[str, ...],
           count: int, label: str, **credentials: Any) -> None:
    """Submit N jobs with panda-client's wire format and print their PandaIDs."""
    from pandasrv.submit import JobRequest, SubmitError, submit_jobs

    request = JobRequest(site=site, transformation=trf, arguments=arguments, outputs=list(outputs), label=label)
    identity = client_identity("submit", **credentials)
    try:
        with click.progressbar(length=count, label="submitting", file=sys.stderr,
                               hidden=count < 2 or not sys.stderr.isatty()) as bar:
            ids = submit_jobs(url, request, count, upload, progress=bar.update, identity=identity)
    except SubmitError as exc:
        click.echo(f"pandasrv submit: {exc}", err=True)
        sys.exit(1)
    click.echo(" ".join(map(str, ids)))


@main.command()
@click.option("--url", required=True, help="Server base URL, e.g. http://127.0.0.1:25080.")
@click.argument("panda_ids", nargs=-1, type=int, required=True)
@identity_options
def status(url: str, panda_ids: tuple[int, ...], **credentials: Any) -> None:
    """Print the status of jobs (live or archived) and the errors they carry; exit 1 if one is not found."""
    from pandasrv.submit import SubmitError, job_statuses

    try:
        lines = job_statuses(url, list(panda_ids), client_identity("status", **credentials))
    except SubmitError as exc:
        click.echo(f"pandasrv status: {exc}", err=True)
        sys.exit(1)
    click.echo("\n".join(line for line, _ in lines))
    if not all(found for _, found in lines):
        sys.exit(1)


@main.group()
def jobs() -> None:
    """Look at jobs: the monitor's data (``/monitor/jobs``) in the terminal."""


JOB_COLUMNS = ("PandaID", "jobStatus", "computingSite", "prodUserName", "prodSourceLabel", "modificationTime")


def _monitor(path: str, params: dict[str, Any], url: str, credentials: dict[str, Any]) -> dict[str, Any]:
    from pandasrv.submit import SubmitError, monitor_page

    identity = client_identity("jobs", **credentials)
    try:
        return monitor_page(url, path, params, identity)
    except SubmitError as exc:
        click.echo(f"pandasrv jobs: {exc}", err=True)
        sys.exit(1)


@jobs.command("list")
@click.option("--url", required=True, help="Server base URL, e.g. http://127.0.0.1:25080.")
@click.option("--state", help="Only jobs in this state.")
@click.option("--queue", help="Only jobs of this queue (computingSite).")
@click.option("--user", help="Only jobs of this user.")
@click.option("--label", help="Only jobs with this prodSourceLabel.")
@click.option("--hours", type=int, help="Only jobs modified in the last N hours.")
@click.option("--limit", type=int, help="Jobs per page (default: the server's page size).")
@click.option("--before", type=int, help="Start below this PandaID (the next page of a previous listing).")
@click.option("--json", "as_json", is_flag=True, help="Print the monitor's JSON.")
@identity_options
def jobs_list(url: str, state: str | None, queue: str | None, user: str | None, label: str | None,
              hours: int | None, limit: int | None, before: int | None, as_json: bool, **credentials: Any) -> None:
    """List jobs, newest first, with the counts per state (as /monitor/jobs)."""
    params = {k: v for k, v in (("state", state), ("queue", queue), ("user", user), ("label", label),
                                ("hours", hours), ("limit", limit), ("before", before)) if v is not None}
    data = _monitor("jobs", params, url, credentials)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    counts = "  ".join(f"{state}={n}" for state, n in sorted(data["jobs_by_state"].items()))
    if counts:
        click.echo(counts)
    for job in data["jobs"]:
        click.echo("\t".join(str(job[c]) for c in JOB_COLUMNS))
    if data["next_before"]:
        click.echo(f"more: --before {data['next_before']}", err=True)


@jobs.command("show")
@click.option("--url", required=True, help="Server base URL, e.g. http://127.0.0.1:25080.")
@click.argument("panda_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the monitor's JSON.")
@identity_options
def jobs_show(url: str, panda_id: int, as_json: bool, **credentials: Any) -> None:
    """Show one job: attributes, errors, files, status history (as /monitor/jobs/ID)."""
    data = _monitor(f"jobs/{panda_id}", {}, url, credentials)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for key, value in sorted(data["attributes"].items()):
        if value not in (None, "", "NULL"):
            click.echo(f"{key}: {value}")
    for error in data["errors"]:
        click.echo(f"error {error['field']} {error['code']}: {error['diag']}")
    for spec in data["files"]:
        click.echo(f"file {spec.get('type')} {spec.get('lfn')} {spec.get('status')}")
    for entry in data["history"]:
        click.echo(f"history {entry['modificationTime']} {entry['jobStatus']}")
    for log_file in data["log_files"]:
        click.echo(f"log {base_url_of(url)}{log_file['url']}")


def base_url_of(url: str) -> str:
    from pandasrv.submit import base_url

    return base_url(url)


if __name__ == "__main__":
    main()
