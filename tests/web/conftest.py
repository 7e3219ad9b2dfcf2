"""The real server for web tests: ``pandasrv serve`` (gunicorn, 2 workers) on a free 127.0.0.1 port.

``server`` is session-scoped and parametrised over the database backends, so each backend pays for one
start-up; tests isolate themselves with fresh queues (``fresh_queue``) rather than fresh servers.
``start_server`` starts extra servers with other settings (auth modes, test hooks) for a module.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pandasrv.config import Settings, load_settings
from pandasrv.taskbuffer.job_states import STAGE_TABLES
from pandasrv.taskbuffer.task_buffer import TaskBuffer
from pandasrv.taskbuffer.wrapped_cursor import connect
from tests.conftest import SERVER_LOGS, fresh_database, selected_backends
from tests.web.gated_setupper import GATE_DIR_VARIABLE, GATED_VO, PLUGIN
from tests.web.helpers import write_jwks

REPO = Path(__file__).resolve().parents[2]
TEST_QUEUE = "TEST_QUEUE"
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_UPLOAD_BYTES = 1024 * 1024
COUNTED_TABLES = (*STAGE_TABLES, "files", "job_params", "job_output_report", "users", "sandbox_files", "queues")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningServer:
    """A server process under test: where it listens, its database and settings, its log."""

    url: str
    db_url: str
    backend: str
    settings: Settings
    log_path: Path
    process: subprocess.Popen
    queue: str = TEST_QUEUE
    gates: Path | None = None
    _task_buffer: TaskBuffer | None = field(default=None, repr=False)

    @property
    def tb(self) -> TaskBuffer:
        """An in-process TaskBuffer on the server's database, to arrange and inspect state."""
        if self._task_buffer is None:
            self._task_buffer = TaskBuffer(load_settings(db_url=self.db_url, db_bridge=False, db_connections=1))
        return self._task_buffer

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def add_queue(self, name: str | None = None, status: str = "online", storage: str = "LOCAL_DISK") -> str:
        name = name or f"Q_{secrets.token_hex(4).upper()}"
        self.tb.add_queue(name, name, status, {"astorages": {a: [storage] for a in ("pr", "pw", "pl")}})
        return name

    def stop(self) -> None:
        if self._task_buffer is not None:
            self._task_buffer.close()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _environment(settings: dict[str, Any], extra_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANDASRV_")}
    env.update(extra_env)
    for key, value in settings.items():
        name = "PANDASRV_" + key.upper()
        env[name] = value if isinstance(value, str) else json.dumps(value)
    env["PYTHONPATH"] = str(REPO)
    return env


@contextlib.contextmanager
def start_server(db_url: str, backend: str, workdir: Path, extra_env: dict[str, str] | None = None,
                 daemon: bool = False, **overrides: Any) -> Iterator[RunningServer]:
    """Run ``pandasrv serve`` (``--no-daemon`` unless ``daemon``) with test settings (bans and queues never
    cached) until the block ends.

    The Setupper plugin of VO ``gatedvo`` waits for a gate file per job in ``workdir/gates`` (see
    ``gated_setupper.py``); bodies are limited to 16 MiB and uploads to 1 MiB so limits are cheap to test.
    """
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    settings = {"db_url": db_url, "host": "127.0.0.1", "port": port, "workers": 2, "threads": 4,
                "meta_cache_seconds": 0, "log_level": "INFO",
                "max_body_bytes": MAX_BODY_BYTES, "max_upload_bytes": MAX_UPLOAD_BYTES,
                "plugins": {"setupper": {GATED_VO: PLUGIN}}, **overrides}
    log_path = workdir / f"server-{port}.log"
    SERVER_LOGS.append(log_path)
    gates = workdir / "gates"
    gates.mkdir(exist_ok=True)
    env = _environment(settings, {GATE_DIR_VARIABLE: str(gates), **(extra_env or {})})
    with open(log_path, "wb") as log_file:
        command = [sys.executable, "-m", "pandasrv.cli", "serve"] + ([] if daemon else ["--no-daemon"])
        process = subprocess.Popen(command, env=env,
                                   cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    running = RunningServer(f"http://127.0.0.1:{port}", db_url, backend, load_settings(**settings), log_path,
                            process, gates=gates)
    try:
        wait_until_up(running)
        yield running
    finally:
        running.stop()


def wait_until_up(running: Any, timeout: float = 60) -> None:
    """Wait for ``isAlive`` of a server process (anything with ``url``, ``process`` and ``log()``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise RuntimeError(f"server exited with {running.process.returncode}:\n{running.log()}")
        try:
            if httpx.get(f"{running.url}/server/panda/isAlive", timeout=2).text == "alive=yes":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server did not answer within {timeout} s:\n{running.log()}")


@pytest.fixture(scope="session", params=selected_backends())
def server(request: pytest.FixtureRequest, test_databases: Any,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The default server (auth none, production identity) on each backend, with queue TEST_QUEUE."""
    backend = request.param
    workdir = tmp_path_factory.mktemp(f"server-{backend}")
    with fresh_database(test_databases, backend, workdir, prefix="pandasrv_w") as db_url, \
            start_server(db_url, backend, workdir) as running:
        running.add_queue(TEST_QUEUE)
        yield running


@pytest.fixture(scope="module", params=selected_backends())
def hserver(request: pytest.FixtureRequest, test_databases: Any,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server per backend behind a simulated trusted TLS front server (x509 headers), so each Harvester
    test request chooses its caller (tests/web/harvester_client.py)."""
    workdir = tmp_path_factory.mktemp("harvester")
    with fresh_database(test_databases, request.param, workdir) as db_url, \
            start_server(db_url, request.param, workdir, auth="x509", trust_proxy_headers=True) as running:
        yield running


ISSUER, AUDIENCE = "https://issuer.test", "pandasrv-test"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module", params=selected_backends())
def token_server(request: pytest.FixtureRequest, test_databases: Any, tmp_path_factory: pytest.TempPathFactory,
                 signing_key: rsa.RSAPrivateKey) -> Iterator[RunningServer]:
    """``auth = token`` with a test issuer whose JWKS holds ``signing_key`` (kid k1); VO ``myvo`` has production."""
    workdir = tmp_path_factory.mktemp("token")
    jwks = write_jwks(workdir / "jwks.json", signing_key, "k1")
    with fresh_database(test_databases, request.param, workdir) as db_url, \
            start_server(db_url, request.param, workdir, auth="token", token_issuer=ISSUER, token_audience=AUDIENCE,
                         token_jwks_file=str(jwks), production_vos=["myvo"]) as running:
        running.add_queue(running.queue)
        yield running


@pytest.fixture
def fresh_queue(server: RunningServer) -> str:
    """A new, empty online queue on the default server (so tests never see each other's jobs)."""
    return server.add_queue()


def table_counts(db_url: str) -> dict[str, int]:
    """Row counts of the tables a request could write, to prove a refused request changed nothing."""
    conn = connect(db_url)
    try:
        conn.begin()
        cur = conn.cursor()
        counts = {}
        for table in COUNTED_TABLES:
            cur.execute(f"SELECT COUNT(*) FROM {table}", {})
            counts[table] = int(cur.fetchone()[0])
        conn.commit()
        return counts
    finally:
        conn.close()
