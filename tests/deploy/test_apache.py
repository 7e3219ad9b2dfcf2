"""``pandasrv apache``: configuration, isAlive through Apache + mod_wsgi, SIGTERM, two instances side by side."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pandasrv.config import load_settings
from pandasrv.deploy.apache import Layout, frozen_settings, render_config
from pandasrv.deploy.rootfs import blocked_ancestor, namespace_script
from pandasrv.web import admission
from tests.deploy.conftest import REPO, RunningApache, apache_pids, start_apache
from tests.waiting import wait_for


@pytest.fixture(scope="module")
def apache(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApache]:
    with start_apache(pg_url, tmp_path_factory.mktemp("apache"), extra=[]) as running:
        yield running


@settings(max_examples=25, deadline=None)
@given(processes=st.integers(1, 64), threads=st.integers(1, 64), requests=st.integers(0, 10**6),
       timeout=st.integers(1, 3600))
def test_config_has_the_seed_layout(processes: int, threads: int, requests: int, timeout: int) -> None:
    s = load_settings(apache={"processes": processes, "threads": threads, "maximum_requests": requests,
                              "request_timeout": timeout})
    text = render_config(s, Layout(Path("/srv/run")))
    # T threads admit, two more answer the shed and exempt requests (pandasrv.web.admission)
    daemon_threads = admission.limits(threads, s.db_connections).cap + admission.SIDE_THREADS
    assert f"processes={processes} threads={daemon_threads}" in text
    assert f"listen-backlog={admission.listen_backlog(processes, threads)}" in text
    frozen = frozen_settings(s)
    assert (frozen.workers, frozen.threads) == (processes, threads)
    assert f"maximum-requests={requests} request-timeout={timeout}" in text
    for line in ("LoadModule mpm_event_module", "WSGIApplicationGroup %{GLOBAL}", "WSGIPassAuthorization On",
                 "WSGIRestrictEmbedded On", 'PidFile "/srv/run/httpd.pid"', "Listen 127.0.0.1:25080",
                 # each daemon process loads the application at its start (documented mod_wsgi preloading)
                 'WSGIScriptAlias / "/srv/run/app.wsgi" process-group=pandasrv application-group=%{GLOBAL}'):
        assert line in text


def test_print_writes_the_config_and_starts_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    out = subprocess.run([sys.executable, "-m", "pandasrv.cli", "apache", "--print", "--port", "1234",
                          "--run-dir", str(run_dir)], cwd=REPO, capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if not k.startswith("PANDASRV_")}).stdout
    assert "Listen 127.0.0.1:1234" in out and f'WSGISocketPrefix "{run_dir}/wsgi"' in out
    assert not run_dir.exists()


def test_is_alive_through_apache_and_mod_wsgi(apache: RunningApache) -> None:
    assert httpx.get(f"{apache.url}/server/panda/isAlive").text == "alive=yes"
    names = {Path(f"/proc/{pid}/comm").read_text().strip() for pid in apache_pids(apache.run_dir)}
    assert "apache2" in names
    access = (apache.run_dir / "logs" / "access.log").read_text()
    assert "GET /server/panda/isAlive" in access


def test_daemon_processes_are_unprivileged_when_started_as_root(apache: RunningApache) -> None:
    if os.geteuid() != 0:
        pytest.skip("only started as root does Apache switch users")
    owners = {}
    for pid in apache_pids(apache.run_dir):
        status = Path(f"/proc/{pid}/status").read_text()
        uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
        owners[pid] = uid
    parent = apache.process.pid
    children = {pid: uid for pid, uid in owners.items() if pid != parent and uid != 0}
    assert children, owners
    assert all(uid != 0 for uid in children.values())


def test_daemon_master_runs_beside_apache(apache: RunningApache) -> None:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(next(line for line in status.splitlines() if line.startswith("PPid:")).split()[1])
            if ppid == apache.process.pid and b"pandasrv.daemon.master" in cmdline:
                found.append(int(entry.name))
    assert found, apache.log()


def test_two_instances_never_collide_and_sigterm_leaves_nothing(pg_url: str, apache: RunningApache,
                                                               tmp_path: Path) -> None:
    with start_apache(pg_url, tmp_path, host="127.0.0.2") as other:
        assert other.run_dir != apache.run_dir
        for url in (apache.url, other.url):
            assert httpx.get(f"{url}/server/panda/isAlive").text == "alive=yes"
        assert apache_pids(other.run_dir)
        assert other.stop() == 0
        assert wait_for(lambda: apache_pids(other.run_dir) == [], 10), apache_pids(other.run_dir)
    assert httpx.get(f"{apache.url}/server/panda/isAlive").text == "alive=yes"


@pytest.mark.parametrize("mode", [0o700, 0o750, 0o710])
def test_blocked_ancestor_is_found_and_covered(mode: int) -> None:
    tmp_path = Path(tempfile.mkdtemp(dir="/tmp"))  # pytest's own tmp_path lies below a mode-700 directory
    tmp_path.chmod(0o755)
    home = tmp_path / "home"
    (home / "venv" / "lib").mkdir(parents=True)
    (home / "code").mkdir()
    home.chmod(mode)
    try:
        blocked = blocked_ancestor(home / "venv" / "lib")
        assert blocked == (home if not mode & 0o001 else None)
        command: Any = namespace_script([home / "venv", home / "venv" / "lib", home / "code", tmp_path], ["true"],
                                        tmp_path / "stash")
        if blocked is None:
            assert command is None
            return
        script = command[-1]
        assert command[:4] == ["unshare", "--mount", "--propagation", "private"]
        assert f"mount -t tmpfs -o mode=0711 pandasrv-rootfs {home}" in script
        assert script.count("mount --bind") == 3  # the stash and the two outermost needed paths
        assert script.endswith("exec true")
    finally:
        home.chmod(0o755)
        shutil.rmtree(tmp_path)


def test_metrics_add_up_over_the_wsgi_daemon_processes(apache: RunningApache) -> None:
    """/metrics under Apache counts the requests of all W daemon processes, not only of the one that
    answers the scrape (prometheus-client's multiprocess mode, its files in the run directory)."""
    from tests.web.test_metrics import scrape, value

    def served() -> float:
        return value(scrape(apache.url), "pandasrv_http_requests_total", method="isAlive", status="200")

    before = served()
    with ThreadPoolExecutor(8) as pool, httpx.Client(timeout=30) as client:
        replies = list(pool.map(lambda _: client.get(f"{apache.url}/server/panda/isAlive").text, range(64)))
    assert replies == ["alive=yes"] * 64
    assert {served() - before for _ in range(6)} == {64}  # whichever process answers each scrape
