"""``pandasrv daemon``: the multi-machine layout's foreground master, configured from the TOML file."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.daemon.helpers import REPO, alive, records
from tests.waiting import wait_for


@pytest.mark.backends("sqlite")
def test_pandasrv_daemon_runs_the_configured_scripts_and_stops_on_sigterm(db_url, tmp_path, monkeypatch):
    record = tmp_path / "runs.jsonl"
    config = tmp_path / "pandasrv.toml"
    config.write_text(
        f'db_url = "{db_url}"\nlog_level = "WARNING"\n[daemon]\nn_proc = 1\n'
        f'[daemon.scripts.probe]\nmodule = "tests.daemon.probe"\nperiod = 1\n'
        f'arguments = ["{record}", "sleep", "0.05"]\n'
    )
    monkeypatch.setenv("PYTHONPATH", REPO)
    process = subprocess.Popen([sys.executable, "-m", "pandasrv.cli", "--config", str(config), "daemon"],
                               start_new_session=True)
    try:
        assert wait_for(lambda: len(records(record)) >= 2, 30)
        worker = records(record)[-1]["pid"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
        assert wait_for(lambda: not alive(worker), 5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
