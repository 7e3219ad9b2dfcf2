"""Helpers to drive a test server with the real, unmodified PanDA clients.

- panda-client 2.2.0 runs in a subprocess (it reads its server from the environment at import time);
- the real pilot (``panda-pilot`` sdist from PyPI) is fetched once into a cache directory and always
  run with ``PILOT_NOKILL=1`` inside a private PID namespace: at wrap-up it kills every orphan process
  of its user, which would take other processes of the machine with it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import wait_for

PILOT_VERSION = "3.7.0.36"
# a payload script the generic pilot takes from $HARVESTER_WORKDIR (it copies every ``jobO.*.tar.gz`` there)
PILOT_JOB_SCRIPT = "jobO.pandasrv.tar.gz"
CACHE_DIR = Path(os.environ.get("PANDASRV_TEST_CACHE", Path.home() / ".cache" / "pandasrv-tests"))
STORAGE_NAME = "LOCAL_DISK"


# --- credentials -----------------------------------------------------------------------------------

def dummy_proxy(path: Path, subject: str = "/DC=ch/DC=cern/OU=Users/CN=tester/CN=Test User") -> Path:
    """A self-signed certificate and its key in one PEM: what both clients accept as a grid proxy."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    oids = {"DC": NameOID.DOMAIN_COMPONENT, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "CN": NameOID.COMMON_NAME}
    name = x509.Name([x509.NameAttribute(oids[k], v) for k, v in
                      (part.split("=", 1) for part in subject.strip("/").split("/"))])
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = _dt.datetime.now(_dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - _dt.timedelta(hours=1))
            .not_valid_after(now + _dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    path.chmod(0o600)
    return path


# --- panda-client ----------------------------------------------------------------------------------

def panda_client_env(url: str, home: Path) -> dict[str, str]:
    """Plain http, no credentials; ``PANDA_BEHIND_REAL_LB`` avoids the import-time DNS lookup."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
        "PANDA_URL_SSL": f"{url}/server/panda", "PANDA_URL": f"{url}/server/panda",
        "PANDACACHE_URL": f"{url}/server/panda", "PANDA_BEHIND_REAL_LB": "1",
        "PANDA_CONFIG_ROOT": str(home / ".pathena"),
    }


def run_panda_client(url: str, home: Path, body: str, timeout: float = 120, env: dict[str, str] | None = None) -> Any:
    """Run ``body`` (Python using ``Client`` and ``emit(value)``) with panda-client; return what it emitted.

    Each call is a fresh interpreter because panda-client fixes its server URLs at import time; ``env``
    adds the client's credential variables (``X509_USER_PROXY``, ``PANDA_AUTH``, ...).
    """
    script = "import json, sys\nfrom pandaclient import Client\n" \
             "def emit(value):\n    print('@@RESULT@@' + json.dumps(value, default=str))\n" + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", script], env={**panda_client_env(url, home), **(env or {})}, cwd=home,
                          capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("@@RESULT@@"):
            return json.loads(line[len("@@RESULT@@"):])
    raise AssertionError(f"panda-client produced no result (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


# --- the real pilot --------------------------------------------------------------------------------

def pilot_source() -> Path:
    """The unpacked ``panda-pilot`` sdist (downloaded once with pip); skip when PyPI is unreachable
    (a failure in CI)."""
    target = CACHE_DIR / f"panda-pilot-{PILOT_VERSION}"
    if (target / "pilot.py").is_file():
        return target
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                           f"panda-pilot=={PILOT_VERSION}", "-d", str(CACHE_DIR)],
                          capture_output=True, text=True, timeout=300)
    archive = CACHE_DIR / f"panda-pilot-{PILOT_VERSION}.tar.gz"
    if proc.returncode != 0 or not archive.is_file():
        skip_or_fail(f"cannot download panda-pilot {PILOT_VERSION}: {proc.stderr.strip()[-300:]}")
    with tarfile.open(archive) as tar:
        tar.extractall(CACHE_DIR, filter="data")
    return target


def skip_or_fail(reason: str) -> None:
    """Locally a missing prerequisite skips the test; in CI (``CI=true``) it is a failure, never a silent skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def can_unshare() -> bool:
    """The pilot must run in its own PID namespace; without that privilege the test cannot run safely."""
    if not shutil.which("unshare"):
        return False
    proc = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True)
    return proc.returncode == 0


def storage_description(stage_dir: Path, site: str) -> dict[str, Any]:
    """One local storage endpoint that the pilot's ``mv`` copytool writes into."""
    protocol = {"endpoint": "file://localhost", "path": str(stage_dir), "flavour": "POSIX", "id": 1}
    return {STORAGE_NAME: {
        "name": STORAGE_NAME, "type": "DATADISK", "token": "", "state": "ACTIVE", "site": site,
        "rc_site": site, "is_deterministic": True, "is_tape": False, "resource": {"endpoint": str(stage_dir)},
        "rprotocols": {"1": {**protocol, "settings": {}}},
        "arprotocols": {a: [protocol] for a in ("read_lan", "write_lan", "read_wan", "write_wan")},
        "special_protocols": {},
    }}


def place_job_script(directory: Path, text: str) -> str:
    """Write the payload script ``text`` into ``directory`` (``run_real_pilot``'s ``job_scripts``); return the
    transformation a job must carry to run it: any URL whose last part is the script's name."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / PILOT_JOB_SCRIPT
    script.write_text(text)
    script.chmod(0o755)
    return f"http://127.0.0.1/not-downloaded/{PILOT_JOB_SCRIPT}"


def run_real_pilot(*, port: int, queue: str, queuedata: dict[str, Any], workdir: Path,
                   job_scripts: Path | None = None, timeout: float = 420, base: str = "http://127.0.0.1",
                   proxy: Path | None = None, cert_dir: Path | None = None) -> subprocess.CompletedProcess:
    """Run pilot.py once (``-x 1``: one job, stop when there is none) against ``base``:port (its ``--url``
    and ``-p``; the queuedata comes from the same server).

    Over https the pilot offers ``proxy`` (``X509_USER_PROXY``; by default a self-signed dummy, enough
    over http) and verifies the server against ``cert_dir`` (``X509_CERT_DIR``).

    ``job_scripts`` (see ``place_job_script``) becomes the environment variable ``HARVESTER_WORKDIR``: the
    generic pilot copies every ``jobO.*.tar.gz`` there into the job's directory and runs the one named like
    the job's transformation instead of downloading it, which lets the payload run although this pilot
    version downloads only from its built-in hosts. Nothing else changes: the job still comes from getJob
    (the pilot would read one from that directory only from a file ``HPCJobs.json``, which is never written)
    and every state goes to updateJob (its Harvester mode needs a ``--harvester-*`` option, or
    ``HARVESTER_ID`` with push mode; neither is given). The pilot's output is kept in ``workdir/pilot.out``
    for the reader of a failure.
    """
    source = pilot_source()
    workdir.mkdir(parents=True, exist_ok=True)
    stage_dir = workdir / "se"
    stage_dir.mkdir(exist_ok=True)
    storage = workdir / "storagedata.json"
    storage.write_text(json.dumps(storage_description(stage_dir, queuedata.get("atlas_site", queue))))
    schedconf = workdir / "schedconf.json"
    schedconf.write_text(json.dumps({queue: queuedata}))
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir),
        "PILOT_NOKILL": "1", "PILOT_HOME": str(home),
        "X509_USER_PROXY": str(proxy or dummy_proxy(workdir / "proxy.pem")),
        **({"X509_CERT_DIR": str(cert_dir)} if cert_dir else {}),
        "LOCAL_AGIS_SCHEDCONF": str(schedconf),
        **({"HARVESTER_WORKDIR": str(job_scripts)} if job_scripts else {}),
    }
    command = [
        "unshare", "--pid", "--fork", "--mount-proc", "timeout", "--kill-after=10", str(int(timeout)),
        sys.executable, str(source / "pilot.py"),
        "--pilot-user", "generic", "-q", queue, "-r", queue, "-s", queue,
        "--url", base, "-p", str(port), "-w", "generic", "-j", "user", "-d", "-t", "-u",
        "--queuedata-url", f"{base}:{port}/cache/schedconfig/{{pandaqueue}}.all.json",
        "--storagedata-url", str(storage), "-v", "1", "-x", "1",
    ]
    proc = subprocess.run(command, env=env, cwd=home, capture_output=True, text=True, timeout=timeout + 30)
    (workdir / "pilot.out").write_text(proc.stdout + proc.stderr)
    return proc


def served_calls(server_log: str) -> list[tuple[str, str, int]]:
    """The (module, method, status) of every request in a server log's access lines, in order, such as
    ``("panda", "getJob", 200)``."""
    calls = []
    for match in re.finditer(r"pandasrv\.access INFO \S+ (\S+) (\S+) caller=\S+ status=(\d+)", server_log):
        calls.append((match[1], match[2], int(match[3])))
    return calls


# --- what the server holds (judged from the database, never from a client's exit code) --------------

def db_proxy(db_url: str):
    from pandasrv.taskbuffer.db_proxy import DBProxy

    proxy = DBProxy(db_url)
    proxy.connect()
    return proxy


def peek_job(db_url: str, panda_id: int):
    """The job as stored (any stage table), with its files; None if unknown."""
    proxy = db_proxy(db_url)
    try:
        return proxy.peek_jobs([panda_id])[0]
    finally:
        proxy.close()


def wait_activated(db_url: str, panda_ids: list[int], timeout: float = 30) -> None:
    """Wait for the server's Setupper (it runs after the submit reply) to make the jobs claimable."""
    proxy = db_proxy(db_url)
    try:
        found: dict[int, Any] = {}

        def activated() -> bool:
            found.update(proxy.get_job_status(panda_ids))
            return all(found.get(pid, ("",))[0] == "activated" for pid in panda_ids)

        assert wait_for(activated, timeout), f"jobs not activated after {timeout} s: {found}"
    finally:
        proxy.close()


def output_reports(db_url: str, panda_id: int) -> list[dict[str, Any]]:
    """The job output report rows that updateJob stored for a final heartbeat."""
    from pandasrv.taskbuffer.wrapped_cursor import connect

    conn = connect(db_url)
    try:
        cur = conn.cursor()
        cur.execute("SELECT PandaID, attemptNr, jobStatus, data FROM job_output_report WHERE PandaID = :id",
                    {"id": panda_id})
        rows = [dict(zip(("PandaID", "attemptNr", "jobStatus", "data"), row)) for row in cur.fetchall()]
        conn.commit()
        return rows
    finally:
        conn.close()


def run_adder(server) -> None:
    """Finalise every pending job output report with the daemon's Adder, as ``add_main`` would."""
    from pandasrv.config import load_settings
    from pandasrv.dataservice.adder import Adder
    from pandasrv.taskbuffer.task_buffer import TaskBuffer

    settings = load_settings(db_url=server.db_url)
    task_buffer = TaskBuffer(settings)
    try:
        adder = Adder(task_buffer, settings)
        while adder.run_round(100):
            pass
    finally:
        task_buffer.close()


def status_history(db_url: str, panda_id: int) -> list[str]:
    """The job's states in the order the server recorded them (job_status_log)."""
    from pandasrv.taskbuffer.wrapped_cursor import connect

    conn = connect(db_url)
    try:
        cur = conn.cursor()
        cur.execute("SELECT jobStatus FROM job_status_log WHERE PandaID = :id ORDER BY modificationTime",
                    {"id": panda_id})
        states = [row[0] for row in cur.fetchall()]
        conn.commit()
        return states
    finally:
        conn.close()
