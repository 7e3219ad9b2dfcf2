"""Two ``pandasrv apache`` machines (127.0.0.2, 127.0.0.3) on one database server behind ``pandasrv haproxy``.

Pilots with client certificates (the test CA's, verified by each node's mod_ssl through the TLS pass-through)
spread over both nodes and every job is handed out once; a file uploaded through one node downloads from the
other; the ``sync`` daemon script runs on one machine at a time although both daemon masters run it; SIGTERM
stops the balancer with exit 0 and nothing left.

Run on each database server backend (PostgreSQL, MariaDB): SQLite is a file on one machine and cannot be
shared between machines, so it is no backend of this layout. The figures of each run (jobs per node,
duplicates, cross-node downloads) are printed at the end of the session and written to
``tests-artifacts/two-nodes-<backend>.json``.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.conftest import fresh_database
from tests.daemon.helpers import records
from tests.deploy.cluster import Cluster, download, put_file, run_pilots, start_cluster, stop_balancer
from tests.deploy.conftest import record_figures
from tests.waiting import wait_for

PILOTS, CALLS = 6, 8
pytestmark = pytest.mark.backends("postgresql", "mysql")


@pytest.fixture(scope="module")
def backend(request: pytest.FixtureRequest) -> str:
    """One cluster per database server backend (module scope: the nodes are started once per backend)."""
    return request.param


@pytest.fixture(scope="module")
def cluster(backend: str, test_databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp(f"two-nodes-{backend}")
    workdir.chmod(0o755)
    with fresh_database(test_databases, backend, workdir, prefix="pandasrv_2n") as db_url, \
            start_cluster(db_url, workdir) as running:
        yield running


def test_pilots_spread_over_both_nodes_and_each_job_is_handed_out_once(backend: str, cluster: Cluster) -> None:
    ids = cluster.add_jobs(PILOTS * CALLS)
    before = cluster.getjob_lines()
    run = run_pilots(cluster, PILOTS, CALLS)
    got = run.got

    def logged() -> list[int]:
        return [after - earlier for after, earlier in zip(cluster.getjob_lines(), before)]

    # Apache writes a request's access-log line after its reply has gone out
    if not wait_for(lambda: sum(logged()) >= len(got), 30):
        pytest.fail(f"the access logs show {logged()} getJob calls, not {len(got)}", pytrace=False)
    per_node = logged()
    claims = cluster.claims(ids)
    handed = [panda_id for panda_id in got if panda_id is not None]
    record_figures(f"two-nodes-{backend}", {
        "jobs": len(ids), "getJob calls": len(got), "jobs per node": per_node,
        "duplicates": len(handed) - len(set(handed)) + sum(count - 1 for count in claims.values() if count > 1),
        "lost": len(set(ids) - set(handed)), "503s tried again": run.shed,
        "p50 ms": round(1000 * sorted(run.times)[len(run.times) // 2], 1)})
    assert None not in got  # exactly as many calls as jobs: every call got one
    assert sorted(got) == sorted(ids)  # no job twice, none lost
    assert claims == {panda_id: 1 for panda_id in ids}  # the database logged one claim per job
    assert sum(per_node) == len(ids) and all(count > 0 for count in per_node), per_node
    assert {state for state, *_ in cluster.tb.get_job_status(ids).values()} == {"sent"}


def test_a_file_uploaded_through_one_node_downloads_from_the_other(backend: str, cluster: Cluster) -> None:
    user = cluster.identities.context(cluster.identities.user)
    anonymous = cluster.identities.context(None)
    cross_node = through_balancer = 0
    for source, target in ((0, 1), (1, 0)):
        name = f"sandbox-{os.urandom(4).hex()}.tar.gz"
        data = os.urandom(300 * 1024)
        assert put_file(cluster.node_urls[source], user, name, data) == "True"
        reply = download(cluster.node_urls[target], anonymous, name)
        assert reply.status_code == 200 and reply.content == data
        cross_node += 1
        reply = download(cluster.url, anonymous, name)
        assert reply.status_code == 200 and reply.content == data
        through_balancer += 1
        assert download(cluster.node_urls[target], anonymous, f"missing-{name}").status_code == 404
    record_figures(f"two-nodes-{backend}", {"cross-node downloads": f"{cross_node}/2 (300 KiB each, byte-exact)",
                                            "downloads through the balancer": f"{through_balancer}/2"})


def test_sync_script_runs_on_one_machine_at_a_time(backend: str, cluster: Cluster) -> None:
    masters = set()
    for node in cluster.nodes:
        children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == node.process.pid]
        masters.update(pid for pid in children if b"pandasrv.daemon.master" in Path(f"/proc/{pid}/cmdline").read_bytes())
    assert len(masters) == 2  # each machine runs its own daemon master
    assert wait_for(lambda: len(records(cluster.daemon_record, "exclusive")) >= 4, 40)
    runs = sorted(records(cluster.daemon_record, "exclusive"), key=lambda r: r["start"])
    overlaps = sum(after["start"] < before["end"] for before, after in zip(runs, runs[1:]))
    record_figures(f"two-nodes-{backend}", {"sync script runs": len(runs), "overlapping runs": overlaps,
                                            "runs per daemon master": sorted(Counter(r["ppid"] for r in runs).values())})
    assert len(runs) >= 4
    assert overlaps == 0  # never two runs at once, on any machine
    assert {r["ppid"] for r in runs} <= masters


def _parent(entry: Path) -> int:
    try:
        status = (entry / "status").read_text()
    except OSError:
        return -1
    return int(next(line for line in status.splitlines() if line.startswith("PPid:")).split()[1])


def test_plain_http_is_passed_through_too(cluster: Cluster) -> None:
    assert httpx.get(f"{cluster.plain_url}/server/panda/isAlive", timeout=10).text == "alive=yes"


def test_sigterm_stops_the_balancer_with_exit_0(cluster: Cluster) -> None:
    pid = cluster.balancer.pid
    assert stop_balancer(cluster.balancer) == 0
    left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _group(p) == pid]
    assert left == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{cluster.plain_url}/server/panda/isAlive", timeout=5)


def _group(entry: Path) -> int:
    try:
        return int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return -1
