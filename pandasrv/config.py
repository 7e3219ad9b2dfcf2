"""Typed settings, read once at start from a TOML file and ``PANDASRV_*`` environment variables.

Precedence (highest first): explicit overrides from the command line, environment variables,
the TOML file (``--config`` or ``PANDASRV_CONFIG``), then the defaults below. Nothing here is read
at import time: ``load_settings()`` builds one ``Settings`` object that is passed down explicitly.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_serializer, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

DB_SCHEMES = ("sqlite", "postgresql", "mysql")


class ConfigError(Exception):
    """A bad setting; the message is one line naming the setting."""


class ScriptSettings(BaseModel):
    """One entry of the daemon schedule, as in PanDA's ``[daemon] config``."""

    module: str | None = None
    period: int = Field(gt=0)
    timeout: int | None = Field(default=None, gt=0)
    sync: bool = False
    loop: bool = False
    arguments: list[str] = []
    enable: bool = True


def default_scripts() -> dict[str, ScriptSettings]:
    return {
        "add_main": ScriptSettings(period=240, loop=True),
        "add_sub": ScriptSettings(period=240),
        "recover_claims": ScriptSettings(period=60),
        "copy_archive": ScriptSettings(period=2400, sync=True),
        "dataset_manager": ScriptSettings(period=2400, sync=True),
        "archive": ScriptSettings(period=3600, sync=True),
        "tmpwatch": ScriptSettings(period=3600),
    }


class MonitorSettings(BaseModel):
    """The read-only pages under ``/monitor/`` and ``/metrics`` (docs/monitor.md)."""

    enable: bool = True
    page_size: int = Field(default=50, ge=1, le=1000)
    # how long each web process keeps the job counts of the pages (seconds; 0 = count on every request)
    counts_cache_seconds: float = Field(default=10.0, ge=0)
    # record and serve Prometheus metrics (/metrics); false drops the per-request metrics middleware and the
    # endpoint, for a site that does not scrape (bench/metrics_overhead.py measures what they cost)
    metrics: bool = True
    # how long each web process keeps the jobs per state and queue that /metrics shows (seconds)
    metrics_counts_seconds: float = Field(default=5.0, ge=1)
    # with auth = token or x509: callers without an identity may see job summaries (never job parameters or files)
    anonymous: bool = False
    # users without the production role see only their own jobs
    own_jobs_only: bool = False


class ApacheSettings(BaseModel):
    """``pandasrv apache``: Apache httpd (MPM event) with W mod_wsgi daemon processes x T threads (docs/deploy.md)."""

    run_dir: str = "var/apache"
    # W and T; 0 = the web settings ``workers`` and ``threads``
    processes: int = Field(default=0, ge=0)
    threads: int = Field(default=0, ge=0)
    # a WSGI daemon process is replaced gracefully after this many requests (0 = never)
    maximum_requests: int = Field(default=10000, ge=0)
    # seconds: a request running longer restarts its daemon process; a graceful restart waits this long
    request_timeout: int = Field(default=600, gt=0)
    graceful_timeout: int = Field(default=30, gt=0)
    # MPM event: worker processes of THREADS_PER_CHILD threads each, grown and shrunk between the spare limits
    start_servers: int = Field(default=2, ge=1)
    server_limit: int = Field(default=16, ge=1)
    threads_per_child: int = Field(default=25, ge=1)
    min_spare_threads: int = Field(default=25, ge=1)
    max_spare_threads: int = Field(default=75, ge=1)
    max_request_workers: int = Field(default=150, ge=1)
    # the unprivileged user Apache's children run as when started as root
    user: str = "www-data"
    group: str = "www-data"
    # TLS (0 = no HTTPS listener)
    ssl_port: int = Field(default=0, ge=0, le=65535)
    ssl_cert: str = ""
    ssl_key: str = ""
    ca_dir: str = "/etc/grid-security/certificates"
    # behind ``pandasrv haproxy`` with haproxy.send_proxy: every connection starts with HAProxy's PROXY v2
    # header (mod_remoteip), so the application sees the client's address instead of the balancer's.
    # Connections without the header are refused: only for nodes that nothing but the balancer can reach.
    proxy_protocol: bool = False


class HAProxySettings(BaseModel):
    """``pandasrv haproxy``: one TCP load balancer in front of M ``pandasrv apache`` nodes (docs/deploy.md)."""

    run_dir: str = "var/haproxy"
    # where the balancer listens: plain HTTP and TLS, both passed through untouched (0 = no such frontend)
    host: str = "127.0.0.1"
    port: int = Field(default=25080, ge=0, le=65535)
    ssl_port: int = Field(default=25443, ge=0, le=65535)
    # the nodes: "HOST", "HOST:PORT" or "HOST:PORT:SSL_PORT"; missing ports are the nodes' port and apache.ssl_port
    backends: list[str] = []
    # seconds between health checks (GET /server/panda/isAlive on each node's plain port)
    check_interval: float = Field(default=2.0, gt=0)
    # connections the balancer holds at once, and seconds a stop waits for open connections to finish
    max_connections: int = Field(default=4096, ge=1)
    stop_timeout: int = Field(default=10, ge=0)
    # send the PROXY v2 header (the client's address) to the nodes and in health checks; the nodes need
    # apache.proxy_protocol = true (docs/deploy.md)
    send_proxy: bool = False
    # the unprivileged user HAProxy switches to after binding when started as root
    user: str = "haproxy"
    group: str = "haproxy"


class DaemonSettings(BaseModel):
    enable: bool = True
    n_proc: int = Field(default=2, ge=1)
    proc_lifetime: int = Field(default=28800, gt=0)
    scripts: dict[str, ScriptSettings] = Field(default_factory=default_scripts)


class WatcherSettings(BaseModel):
    """Timeouts of the Watcher rules, in seconds (PanDA's defaults)."""

    sent: int = 30 * 60
    # a claim (``sent``) with no starting/running from its pilot within this many seconds goes back to
    # ``activated``, attemptNr + 1 (the getJob reply was lost); 0 = never. Checked by the recover_claims script.
    unconfirmed: int = Field(default=300, ge=0)
    # a job given back this many times stays ``sent`` and is failed by the ``sent`` timeout above
    unconfirmed_requeues: int = Field(default=3, ge=0)
    heartbeat: int = 2 * 3600
    heartbeat_per_queue: dict[str, int] = {}
    holding_user: int = 3 * 3600
    holding: int = 48 * 3600
    defined: int = 4 * 3600
    assigned: int = 7 * 24 * 3600
    activated: int = 7 * 24 * 3600
    pending: int = 3600
    waiting: int = 3600


class RetentionSettings(BaseModel):
    archived_days: float = 3.0
    # Harvester's workers, job-worker relations, statistics, commands, dialogs, metrics and expired slots
    harvester_days: float = 7.0
    batch_size: int = Field(default=1000, gt=0)
    cache_days: float = 7.0


def check_secrets_key(text: str) -> None:
    """A secrets key is the urlsafe base64 text of 32 random bytes (``pandasrv creds new-key``)."""
    try:
        raw = base64.urlsafe_b64decode(text.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ValueError("must be urlsafe base64 of 32 bytes (make one with: pandasrv creds new-key)")


class CredsSettings(BaseModel):
    """The credential calls (docs/credentials.md): operator-managed folders, who may read them, the secrets key.

    The ``*_users`` lists hold owner names (``Identity.user``: the compact DN name under x509, ``sub@issuer``
    under tokens), as PanDA's ``USERS.GRIDPREF`` letters p (proxies and access tokens), k (key pairs) and t
    (token keys). Empty folders or lists mean the call finds nothing or refuses everyone.
    """

    # proxies: one file per owner name, <name> (no role) or <name>:<role>
    proxy_dir: str = ""
    # access tokens: one file per client name, the token text
    token_dir: str = ""
    # key pairs: one file per key name, the key text
    key_dir: str = ""
    # token keys: one file per client name, one valid key a line, the newest first
    token_key_dir: str = ""
    # clients whose access token is only given with one of their valid token keys (PanDA's use_token_key)
    token_key_clients: list[str] = []
    proxy_users: list[str] = []
    key_pair_users: list[str] = []
    token_key_users: list[str] = []
    # the key that encrypts user secrets at rest (AES-GCM); empty: the secrets calls are off
    secrets_key: SecretStr = SecretStr("")
    # earlier keys, still read after a key change (every write uses secrets_key)
    secrets_old_keys: list[SecretStr] = []
    # the largest secrets dictionary one owner may keep (bytes of its JSON text)
    max_secrets_bytes: int = Field(default=1024 * 1024, gt=0)
    # the largest credential file read from the folders
    max_file_bytes: int = Field(default=1024 * 1024, gt=0)

    @field_validator("secrets_key")
    @classmethod
    def _check_key(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value():
            check_secrets_key(value.get_secret_value())
        return value

    @field_validator("secrets_old_keys")
    @classmethod
    def _check_old_keys(cls, values: list[SecretStr]) -> list[SecretStr]:
        for value in values:
            check_secrets_key(value.get_secret_value())
        return values

    @field_serializer("secrets_key", when_used="json")
    def _reveal_key(self, value: SecretStr) -> str:
        """The JSON form is how child processes (daemon master, Setupper helper, mod_wsgi daemon processes) get
        their settings, so it carries the key; ``repr`` and ``config show`` mask it."""
        return value.get_secret_value()

    @field_serializer("secrets_old_keys", when_used="json")
    def _reveal_old_keys(self, values: list[SecretStr]) -> list[str]:
        return [value.get_secret_value() for value in values]


class PluginSettings(BaseModel):
    """Experiment-specific agent behaviour: per agent, VO -> ``module:Class``; ``any`` is the catch-all.

    Agents without an entry for a job's VO (and no ``any``) use the generic plugin of
    ``pandasrv.dataservice.plugins.generic``.
    """

    setupper: dict[str, str] = {}
    activator: dict[str, str] = {}
    adder: dict[str, str] = {}
    finisher: dict[str, str] = {}
    closer: dict[str, str] = {}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PANDASRV_", env_nested_delimiter="__", extra="forbid")

    # database
    db_url: str = "sqlite:///var/pandasrv.db"
    db_timeout: float = Field(default=60.0, gt=0)
    db_connections: int = Field(default=2, ge=1)
    db_bridge: bool = True
    # seconds a request waits for a free DB proxy; 0 = derived from queue_timeout, threads and db_connections
    # (docs/deploy.md, "Overload")
    db_pool_wait: float = Field(default=0.0, ge=0)
    # the Retry-After (seconds) of a 503 for a retryable database failure or a shed request
    retry_after_seconds: int = Field(default=10, ge=1, le=3600)

    # web
    host: str = "127.0.0.1"
    port: int = Field(default=25080, ge=1, le=65535)
    workers: int = Field(default=2, ge=1)
    threads: int = Field(default=4, ge=1)
    # seconds a request may wait for a web thread; one that waited longer is answered 503 + Retry-After at
    # once, before any database work (gunicorn; Apache's mod_wsgi gets it as queue-timeout)
    queue_timeout: float = Field(default=2.0, gt=0)
    # pandasrv serve: seconds a connection has to send its request head (and a body up to 1 MiB) before it
    # is closed; until then it holds no thread (pandasrv.web.worker)
    request_read_timeout: float = Field(default=20.0, gt=0)
    advertised_host: str = ""
    advertised_port: int = 0
    max_body_bytes: int = Field(default=100 * 1024 * 1024, gt=0)
    access_log: bool = True
    log_level: str = "INFO"

    # identity
    auth: Literal["none", "token", "x509"] = "none"
    local_dn: str = "/DC=local/CN=pandasrv"
    local_fqans: list[str] = ["/pandasrv/Role=production"]
    production_dns: list[str] = []
    pilot_owners: list[str] = []
    # VOs (FQAN groups without the leading slash) whose Role=production / Role=pilot grant those roles
    production_vos: list[str] = ["atlas", "atlas/usatlas", "pandasrv"]
    pilot_vos: list[str] = ["atlas", "atlas/usatlas", "osg", "ams", "Engage/LBNE"]
    # PanDA's permissive "VOMS patch": any FQAN of these VOs (even Role=NULL) passes the pilot test.
    # Off (empty) by default: it gives every plain member of the VO the pilot role.
    voms_patch_vos: list[str] = []
    # auth = none refuses callers that are not on loopback; true only behind a trusted proxy that authenticates
    auth_none_behind_proxy: bool = False
    token_issuer: str = ""
    token_audience: str = ""
    token_jwks_url: str = ""
    token_jwks_file: str = ""
    token_groups_claim: str = "groups"
    # clock skew allowed when checking exp, nbf and iat (seconds)
    token_leeway_seconds: float = Field(default=30.0, ge=0, le=600)
    # VOMS: a vomsdir (``<vo>/<host>.lsc`` files and/or VOMS server certificates, as /etc/grid-security/vomsdir)
    # against which the attribute certificates in client proxies are verified. Empty: proxies give no FQANs.
    voms_dir: str = ""
    # the CA directory that the VOMS server certificates named by .lsc files must chain to (empty: apache.ca_dir)
    voms_ca_dir: str = ""
    # x509 behind a reverse proxy: trust X-SSL-Client-S-DN / X-GRST-Cred-* request headers (the proxy must
    # set them and strip client copies). Off by default: a client could otherwise claim any DN.
    trust_proxy_headers: bool = False
    # how long each web process caches bans and queue descriptions (seconds; 0 = read on every request)
    meta_cache_seconds: float = Field(default=60.0, ge=0)

    # files: the upload cache lives in the database (cache_files, cache_chunks), shared by every node
    max_upload_bytes: int = 100 * 1024 * 1024
    max_sandbox_bytes: int = 768 * 1024 * 1024

    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    watcher: WatcherSettings = Field(default_factory=WatcherSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    plugins: PluginSettings = Field(default_factory=PluginSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    apache: ApacheSettings = Field(default_factory=ApacheSettings)
    haproxy: HAProxySettings = Field(default_factory=HAProxySettings)
    creds: CredsSettings = Field(default_factory=CredsSettings)

    @model_validator(mode="after")
    def _derive_pool_wait(self) -> "Settings":
        """A web thread waits for a proxy behind at most ceil((T - C) / C) holders' turns; each turn gets the
        thread queue's budget, so an accepted request waits at most queue_timeout + db_pool_wait before its
        first statement."""
        if not self.db_pool_wait:
            turns = max(1, math.ceil((self.threads - self.db_connections) / self.db_connections))
            self.db_pool_wait = self.queue_timeout * turns
        return self

    @field_validator("db_url")
    @classmethod
    def _check_db_url(cls, value: str) -> str:
        scheme = urlsplit(value).scheme.split("+")[0]
        if scheme not in DB_SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(DB_SCHEMES)} (got {value!r})")
        return value

    @property
    def db_backend(self) -> str:
        return urlsplit(self.db_url).scheme.split("+")[0]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = os.environ.get("PANDASRV_CONFIG")
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


def mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def load_settings(config_file: str | None = None, **overrides: Any) -> Settings:
    """Build the settings once; raise ConfigError with a one-line message on any bad value."""
    previous = os.environ.get("PANDASRV_CONFIG")
    if config_file:
        if not Path(config_file).is_file():
            raise ConfigError(f"config: file {config_file} does not exist")
        os.environ["PANDASRV_CONFIG"] = config_file
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        error = exc.errors()[0]
        name = ".".join(str(p) for p in error["loc"]) or "settings"
        raise ConfigError(f"invalid setting {name}: {error['msg']}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"config: {exc}") from None
    finally:
        if config_file:
            if previous is None:
                os.environ.pop("PANDASRV_CONFIG", None)
            else:
                os.environ["PANDASRV_CONFIG"] = previous


def show(settings: Settings) -> dict[str, Any]:
    """The effective settings with secrets masked, for ``pandasrv config show``."""
    data = settings.model_dump()
    data["db_url"] = mask_url(settings.db_url)
    creds = settings.creds
    data["creds"]["secrets_key"] = "***" if creds.secrets_key.get_secret_value() else ""
    data["creds"]["secrets_old_keys"] = ["***" for _ in creds.secrets_old_keys]
    return data
