"""M ``pandasrv apache`` "machines" on one database behind ``pandasrv haproxy``, and pilots that use them.

Each node is a real ``pandasrv apache`` (auth = x509, HTTPS with a test CA, the daemon master beside it) on
its own loopback address (127.0.0.2, 127.0.0.3, ...) with its own run directory; the balancer listens on
127.0.0.1 and passes TLS through. Every node's host certificate also names the balancer's address, as a
real site's would carry the service alias.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx

from pandasrv.config import load_settings
from pandasrv.deploy.haproxy import HAPROXY_BINARY, admin
from pandasrv.taskbuffer.file_spec import FileSpec
from pandasrv.taskbuffer.job_spec import JobSpec
from pandasrv.taskbuffer.task_buffer import TaskBuffer
from pandasrv.taskbuffer.wrapped_cursor import connect
from tests.deploy import pki
from tests.deploy.conftest import REPO, RunningApache, require, start_apache
from tests.waiting import wait_for
from tests.web.conftest import free_port

BALANCER = "127.0.0.1"
QUEUE = "TWO_NODES"
PILOT_DN = "Pilot Factory"
GETJOB_LINE = re.compile(r'"POST /server/panda/getJob HTTP/[0-9.]+" 200 ')


@dataclass
class Identities:
    """The test CA's files: CA directory and bundle, the pilot's and a user's credentials."""

    ca_dir: Path
    ca_file: Path
    pilot: Path
    user: Path
    hosts: dict[str, Path]

    def context(self, credential: Path | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if credential is not None:
            context.load_cert_chain(str(credential))
        return context


def make_identities(base: Path, addresses: list[str]) -> Identities:
    ca = pki.make_ca("pandasrv cluster CA")
    hosts = {address: pki.host(ca, address, BALANCER).write(base / f"host-{address}.pem") for address in addresses}
    return Identities(pki.ca_dir(base / "certificates", ca), pki.ca_dir(base / "trust", ca) / "ca0.pem",
                      pki.user(ca, PILOT_DN).write(base / "pilot.pem"), pki.user(ca, "Ursula User").write(base / "user.pem"),
                      hosts)


@dataclass
class Cluster:
    nodes: list[RunningApache]
    node_urls: list[str]  # each node's own HTTPS address
    url: str  # the balancer's HTTPS address
    plain_url: str
    balancer: subprocess.Popen
    balancer_dir: Path
    identities: Identities
    db_url: str
    daemon_record: Path
    _tb: list[TaskBuffer] = field(default_factory=list)

    @property
    def tb(self) -> TaskBuffer:
        if not self._tb:
            self._tb.append(TaskBuffer(load_settings(db_url=self.db_url, db_bridge=False, db_connections=1)))
        return self._tb[0]

    def node_states(self) -> dict[str, str]:
        return node_states(self.balancer_dir)

    def getjob_lines(self) -> list[int]:
        """Per node, the ``getJob`` requests its access log shows answered (``200``)."""
        return [len(GETJOB_LINE.findall((node.run_dir / "logs" / "access.log").read_text(errors="replace")))
                for node in self.nodes]

    def add_jobs(self, n: int) -> list[int]:
        """``n`` activated jobs for the cluster's queue, stored directly (the test is about handing them out)."""
        jobs = []
        for i in range(n):
            job = JobSpec(jobName=f"two-nodes-{i}", transformation="run.sh", prodSourceLabel="user",
                          computingSite=QUEUE, jobParameters="hello", attemptNr=0, maxAttempt=1,
                          currentPriority=1000, prodUserName="Ursula User")
            job.add_file(FileSpec(lfn=f"two-nodes-{i}.log.tgz", type="log", dataset="user.test.log",
                                  destinationDBlock="user.test.log", destinationSE=QUEUE))
            jobs.append(job)
        return self.tb.insert_jobs(jobs, "activated")

    def claims(self, panda_ids: list[int]) -> dict[int, int]:
        """How often the database logged each job as handed out (``sent`` rows of job_status_log)."""
        conn = connect(self.db_url)
        try:
            conn.begin()
            cur = conn.cursor()
            cur.execute("SELECT PandaID, COUNT(*) FROM job_status_log WHERE jobStatus = 'sent' GROUP BY PandaID", {})
            counts = {int(row[0]): int(row[1]) for row in cur.fetchall()}
            conn.commit()
        finally:
            conn.close()
        return {panda_id: counts.get(panda_id, 0) for panda_id in panda_ids}


def node_states(balancer_dir: Path) -> dict[str, str]:
    """What HAProxy thinks of each node of the TLS pool (``UP``, ``DOWN``, ...), from its admin socket."""
    rows = csv.DictReader(io.StringIO(admin(balancer_dir, "show stat").lstrip("# ")))
    return {row["svname"]: row["status"] for row in rows if row["pxname"] == "nodes_tls"
            and row["svname"] not in ("FRONTEND", "BACKEND")}


SHED_RETRIES = 40  # a pilot tries again after a 503 (load shedding, an outage) as the real one does


def get_job(url: str, context: ssl.SSLContext) -> tuple[int | None, int, float]:
    """One pilot ``getJob`` (pilot3's gzip-JSON form) on a fresh connection, as the pilot makes them; a 503
    (which comes before any database work) is tried again after a short pause instead of Retry-After's 10 s.
    Returns the PandaID (None: no job), the number of 503s and the round trip of the answered call."""
    data = {"siteName": QUEUE, "computingElement": QUEUE, "prodSourceLabel": "user", "node": "wn.example.org",
            "diskSpace": 100000, "mem": 4000.0, "cpu": 2600.0}
    shed = 0
    while True:
        started = time.perf_counter()
        reply = httpx.post(f"{url}/server/panda/getJob", content=gzip.compress(json.dumps(data).encode()),
                           headers={"Content-Type": "application/json", "Accept": "application/json"},
                           verify=context, timeout=60)
        if reply.status_code != 503 or shed == SHED_RETRIES:
            break
        shed += 1
        time.sleep(0.5)
    reply.raise_for_status()
    body = reply.json()
    return (int(body["PandaID"]) if int(body.get("StatusCode", -1)) == 0 else None), shed, time.perf_counter() - started


@dataclass
class PilotRun:
    """What ``run_pilots`` saw: each call's PandaID (None: no job), answered round trips, 503s tried again."""

    got: list[int | None] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    shed: int = 0


def run_pilots(cluster: Cluster, pilots: int, calls: int) -> PilotRun:
    """``pilots`` threads, each making ``calls`` getJob calls through the balancer."""
    run = PilotRun()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def pilot() -> None:
        context = cluster.identities.context(cluster.identities.pilot)
        try:
            for _ in range(calls):
                panda_id, shed, seconds = get_job(cluster.url, context)
                with lock:
                    run.got.append(panda_id)
                    run.times.append(seconds)
                    run.shed += shed
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=pilot) for _ in range(pilots)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return run


def put_file(url: str, context: ssl.SSLContext, name: str, data: bytes) -> str:
    reply = httpx.post(f"{url}/server/panda/putFile", files={"file": (name, data)}, verify=context, timeout=60)
    reply.raise_for_status()
    return reply.text


def download(url: str, context: ssl.SSLContext, name: str) -> httpx.Response:
    return httpx.get(f"{url}/cache/{name}", verify=context, timeout=60)


def wait(condition: Any, timeout: float, what: str) -> None:
    """``wait_for`` for set-up steps, where a failure is an error of the environment, not an assertion."""
    if not wait_for(condition, timeout):
        raise RuntimeError(f"{what} after {timeout} s")


@contextlib.contextmanager
def start_cluster(db_url: str, workdir: Path, n_nodes: int = 2, sync_period: float = 1.0,
                  processes: int = 2, threads: int = 4) -> Iterator[Cluster]:
    """``n_nodes`` nodes (127.0.0.2 ...) with an ``exclusive`` sync probe script, and the balancer on 127.0.0.1."""
    require(HAPROXY_BINARY, "haproxy")
    addresses = [f"127.0.0.{2 + i}" for i in range(n_nodes)]
    identities = make_identities(workdir, addresses)
    record = workdir / "sync-runs.jsonl"
    probe = {"module": "tests.daemon.probe", "arguments": [str(record), "sleep", "0.3", "exclusive"],
             "period": max(1, int(sync_period)), "sync": True}
    settings = {"auth": "x509", "pilot_owners": json.dumps([PILOT_DN]), "db_connections": "2",
                "daemon": json.dumps({"n_proc": 1, "scripts": {"exclusive": probe}}), "log_level": "WARNING"}
    tb = TaskBuffer(load_settings(db_url=db_url, db_bridge=False, db_connections=1))
    try:
        tb.add_queue(QUEUE, QUEUE, "online", {"astorages": {a: ["LOCAL_DISK"] for a in ("pr", "pw", "pl")}})
    finally:
        tb.close()
    with contextlib.ExitStack() as stack:
        nodes, node_urls, ports = [], [], []
        for address in addresses:
            (workdir / address).mkdir()
            ssl_port = free_port()
            host_pem = str(identities.hosts[address])
            extra = ["--ssl-port", str(ssl_port), "--ssl-cert", host_pem, "--ssl-key", host_pem,
                     "--ca-dir", str(identities.ca_dir), "--processes", str(processes), "--threads", str(threads)]
            node = stack.enter_context(start_apache(db_url, workdir / address, host=address, extra=extra, **settings))
            nodes.append(node)
            node_urls.append(f"https://{address}:{ssl_port}")
            ports.append((address, int(node.url.rsplit(":", 1)[1]), ssl_port))
        with start_balancer(workdir, ports) as (balancer, plain_url, tls_url):
            cluster = Cluster(nodes, node_urls, tls_url, plain_url, balancer, workdir / "haproxy", identities, db_url,
                              record)
            try:
                wait(lambda: set(cluster.node_states().values()) == {"UP"}, 30, "the nodes are not UP in haproxy")
                yield cluster
            finally:
                if cluster._tb:
                    cluster.tb.close()


@contextlib.contextmanager
def start_balancer(workdir: Path, nodes: list[tuple[str, int, int]],
                   **settings: str) -> Iterator[tuple[subprocess.Popen, str, str]]:
    """``pandasrv haproxy`` on 127.0.0.1 (run dir ``workdir/haproxy``) in front of ``(address, port, ssl_port)``
    nodes, with ``haproxy.*`` settings; yields the process and its plain and TLS URLs once its admin socket is up."""
    front_port, front_ssl = free_port(), free_port()
    balancer_dir = workdir / "haproxy"
    command = [sys.executable, "-m", "pandasrv.cli", "haproxy", "--host", BALANCER, "--port", str(front_port),
               "--ssl-port", str(front_ssl), "--run-dir", str(balancer_dir)]
    for address, port, ssl_port in nodes:
        command += ["--backend", f"{address}:{port}:{ssl_port}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANDASRV_")}
    env.update({"PANDASRV_HAPROXY__CHECK_INTERVAL": "0.3",
                **{f"PANDASRV_HAPROXY__{key.upper()}": value for key, value in settings.items()}})
    with open(workdir / "haproxy.log", "wb") as log:
        balancer = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
    try:
        wait(lambda: balancer.poll() is not None or (balancer_dir / "admin.sock").exists(), 30,
              "haproxy's admin socket did not appear")
        if balancer.poll() is not None:
            raise RuntimeError((workdir / "haproxy.log").read_text(errors="replace"))
        yield balancer, f"http://{BALANCER}:{front_port}", f"https://{BALANCER}:{front_ssl}"
    finally:
        stop_balancer(balancer)


def stop_balancer(balancer: subprocess.Popen) -> int:
    """SIGTERM ``pandasrv haproxy`` as systemd would; its exit code."""
    if balancer.poll() is None:
        balancer.send_signal(signal.SIGTERM)
        try:
            balancer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(balancer.pid, signal.SIGKILL)
            balancer.wait()
    return balancer.returncode
