"""The client commands a new user runs (``submit``, ``status``, ``pilot``, ``jobs``, ``serve``): one-line
errors and honest exit codes, against the real server and against addresses where nothing answers."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner, Result

from pandasrv.cli import main
from tests.web.conftest import REPO, RunningServer, free_port
from tests.web.helpers import submit_activated


def pandasrv(*args: str) -> Result:
    """The command in this process (click's runner: stdout, stderr and the exit code, much faster)."""
    return CliRunner().invoke(main, list(args))


def nowhere() -> str:
    return f"http://127.0.0.1:{free_port()}"


# Built per test from a free port: a port in a parametrize id would differ between pytest-xdist's workers.
BAD_URLS = {
    "http-nothing-listening": nowhere,
    "no-scheme": lambda: "127.0.0.1:25080",
    "unknown-host": lambda: "http://no-such-host.invalid",
    "https-nothing-listening": lambda: f"https://127.0.0.1:{free_port()}",
}


@pytest.mark.parametrize("url_kind", BAD_URLS)
@pytest.mark.parametrize("command", [["submit", "--site", "Q", "--trf", "run.sh"], ["status", "1"],
                                     ["jobs", "list"], ["jobs", "show", "1"]])
def test_a_server_that_cannot_be_reached_is_one_line_and_exit_1(command: list[str], url_kind: str) -> None:
    url = BAD_URLS[url_kind]()
    result = pandasrv(command[0], "--url", url, *command[1:]) if command[0] != "jobs" else \
        pandasrv(command[0], command[1], "--url", url, *command[2:])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert url in lines[0] or repr(url) in lines[0]


def test_https_against_a_plain_http_server_is_one_line(server: RunningServer) -> None:
    url = server.url.replace("http://", "https://")
    result = pandasrv("status", "--url", url, "1")
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert url in result.stderr


def test_pilot_against_no_server_exits_1(tmp_path) -> None:
    url = nowhere()
    result = pandasrv("pilot", "--url", url, "--site", "Q", "--wait", "0", "--workdir", str(tmp_path / "w"))
    assert result.exit_code == 1
    assert f"pandasrv pilot: cannot reach {url}" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("suffix", ["", "/", "/server/panda", "/server/panda/", "/api/v1"])
def test_submit_takes_the_url_with_or_without_the_api_path(server: RunningServer, fresh_queue: str,
                                                            suffix: str) -> None:
    result = pandasrv("submit", "--url", server.url + suffix, "--site", fresh_queue, "--trf", "echo", "-n", "3")
    assert result.exit_code == 0, result.stderr
    ids = [int(i) for i in result.stdout.split()]
    assert len(ids) == 3
    assert all(server.tb.get_job_status(ids).get(i) for i in ids)


def test_unknown_queue_is_said_without_a_misleading_http_status(server: RunningServer) -> None:
    result = pandasrv("submit", "--url", server.url, "--site", "NO_SUCH_QUEUE_X", "--trf", "echo")
    assert result.exit_code == 1
    assert "HTTP 200" not in result.stderr and "NO_SUCH_QUEUE_X" in result.stderr, result.stderr


def test_status_of_an_unknown_job_exits_1_and_known_ones_0(server: RunningServer, fresh_queue: str) -> None:
    (panda_id,) = submit_activated(server, fresh_queue, 1)
    known = pandasrv("status", "--url", server.url, str(panda_id))
    assert known.exit_code == 0 and known.stdout.split()[:3] == [str(panda_id), "activated", fresh_queue]
    mixed = pandasrv("status", "--url", server.url, str(panda_id), "999999999")
    assert mixed.exit_code == 1
    assert mixed.stdout.splitlines()[1] == "999999999\tnot found"


def test_jobs_list_and_show_print_the_monitor_json(server: RunningServer, fresh_queue: str) -> None:
    ids = submit_activated(server, fresh_queue, 3)
    listed = pandasrv("jobs", "list", "--url", server.url, "--queue", fresh_queue, "--json")
    assert listed.exit_code == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert [job["PandaID"] for job in data["jobs"]] == sorted(ids, reverse=True)
    assert data["jobs_by_state"] == {"activated": 3}
    paged = pandasrv("jobs", "list", "--url", server.url, "--queue", fresh_queue, "--limit", "2")
    assert [int(line.split("\t")[0]) for line in paged.stdout.splitlines()[1:]] == sorted(ids, reverse=True)[:2]
    assert f"--before {sorted(ids, reverse=True)[1]}" in paged.stderr
    shown = json.loads(pandasrv("jobs", "show", "--url", server.url, str(ids[0]), "--json").stdout)
    assert shown["attributes"]["PandaID"] == ids[0] and shown["attributes"]["computingSite"] == fresh_queue
    text = pandasrv("jobs", "show", "--url", server.url, str(ids[0]))
    assert f"computingSite: {fresh_queue}" in text.stdout.splitlines()
    bad = pandasrv("jobs", "list", "--url", server.url, "--state", "nonsense")
    assert bad.exit_code == 1 and "unknown job state" in bad.stderr


def test_version() -> None:
    result = pandasrv("--version")
    assert result.exit_code == 0 and result.stdout.startswith("pandasrv, version ")


def test_serve_on_a_port_in_use_says_it_once_and_exits(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "pandasrv.cli", "serve", "--port", str(port), "--no-daemon",
                                 "--db", f"sqlite:///{tmp_path}/x.db"], capture_output=True, text=True, timeout=60,
                                cwd=REPO)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"pandasrv serve: cannot listen on 127.0.0.1:{port}: Address already in use"]
