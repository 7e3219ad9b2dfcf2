"""The daemon master on one machine: periods, one run at a time, timeouts, loop mode, recycling, failures,
and DB sessions kept across runs. Each test runs a real master process with the probe script."""

from __future__ import annotations

import pytest

from pandasrv.config import load_settings
from pandasrv.daemon.schedule import load_schedule
from tests.daemon.helpers import alive, daemon_settings, probe, records, wait_for

EPS = 0.05


def test_schedule_defaults_and_disabled_scripts():
    settings = load_settings(daemon={"scripts": {
        "copy_archive": {"period": 2400, "sync": True},
        "custom": {"module": "tests.daemon.probe", "period": 60, "timeout": 5, "arguments": ["x"]},
        "off": {"period": 10, "enable": False},
    }})
    schedule = load_schedule(settings)
    assert set(schedule) == {"copy_archive", "custom"}
    assert schedule["copy_archive"].module == "pandasrv.daemon.scripts.copy_archive"
    assert schedule["copy_archive"].timeout == 2400 + 3600
    assert schedule["copy_archive"].lease_component == "pandaD.copy_archive"
    assert schedule["custom"].timeout == 5 and schedule["custom"].arguments == ("x",)
    assert load_schedule(load_settings(daemon={"scripts": {"s": {"period": 10}}}))["s"].timeout == 30


@pytest.mark.backends("sqlite")
def test_period_respected_and_runs_never_overlap(db_url, tmp_path, masters):
    record = tmp_path / "runs.jsonl"
    masters.start(daemon_settings(db_url, {
        "quick": probe(record, "sleep", 0.1, period=1),
        "slow": probe(record, "sleep", 1.6, label="slow", period=1),
    }, n_proc=3))
    assert wait_for(lambda: len(records(record, "sleep")) >= 4 and len(records(record, "slow")) >= 3, 30)
    quick = records(record, "sleep")
    for before, after in zip(quick, quick[1:]):
        assert after["start"] - before["start"] >= 1 - EPS
    slow = records(record, "slow")
    for before, after in zip(slow, slow[1:]):
        assert after["start"] >= before["end"]  # a run longer than its period delays the next one


@pytest.mark.backends("sqlite")
def test_timeout_kills_the_worker_process_group_and_replaces_it(db_url, tmp_path, masters):
    record = tmp_path / "runs.jsonl"
    masters.start(daemon_settings(db_url, {
        "hung": probe(record, "hang", period=1, timeout=2),
        "healthy": probe(record, "sleep", 0.05, period=1),
    }))
    assert wait_for(lambda: len(records(record, "hang")) >= 2, 30)
    first, second = records(record, "hang")[:2]
    assert second["pid"] != first["pid"]
    assert wait_for(lambda: not alive(first["pid"]) and not alive(first["child"]), 5)
    assert len(records(record, "sleep")) >= 2


@pytest.mark.backends("sqlite")
def test_loop_mode_calls_main_again_until_the_period_is_over(db_url, tmp_path, masters):
    record = tmp_path / "runs.jsonl"
    masters.start(daemon_settings(db_url, {"looping": probe(record, "loop", 0.3, period=2, loop=True)}, n_proc=1))
    assert wait_for(lambda: len(records(record, "loop")) >= 10, 30)
    calls = records(record, "loop")
    # a run lasts at least its period, so every call that starts within it belongs to the first run
    period_over = calls[0]["start"] + 2
    first_run = [c for c in calls if c["start"] < period_over - EPS]
    assert 2 <= len(first_run) <= 2 / 0.3 + 1  # called again and again (each call takes at least 0.3 s) ...
    assert first_run[-1]["end"] >= period_over - EPS  # ... until the period is over, however slow the calls
    assert all(c["end"] < period_over + EPS for c in first_run[:-1])  # and no call is started after it
    assert len({c["pid"] for c in first_run}) == 1
    assert all(after["start"] >= before["end"] for before, after in zip(calls, calls[1:]))


@pytest.mark.backends("sqlite")
def test_workers_are_recycled_after_their_lifetime(db_url, tmp_path, masters):
    record = tmp_path / "runs.jsonl"
    masters.start(daemon_settings(db_url, {"tick": probe(record, "sleep", 0.05, period=1)},
                                  n_proc=1, proc_lifetime=2))
    # each new worker starts a TaskBuffer (and its ConBridge child): seconds apiece on a loaded machine
    assert wait_for(lambda: len({r["pid"] for r in records(record)}) >= 3, 90)
    pids = [r["pid"] for r in records(record)]
    retired = pids[0]
    assert wait_for(lambda: not alive(retired), 30)


@pytest.mark.backends("sqlite")
def test_a_failing_script_neither_stops_the_others_nor_its_worker(db_url, tmp_path, masters):
    record = tmp_path / "runs.jsonl"
    masters.start(daemon_settings(db_url, {
        "broken": probe(record, "fail", period=1),
        "fine": probe(record, "sleep", 0.05, period=1),
    }, n_proc=1))
    assert wait_for(lambda: len(records(record, "fail")) >= 3 and len(records(record, "sleep")) >= 3, 30)
    assert len({r["pid"] for r in records(record)}) == 1  # one worker ran everything and survived


def test_workers_keep_their_database_session_across_runs(db_url, tmp_path, masters):
    record = tmp_path / "runs.jsonl"
    masters.start(daemon_settings(db_url, {"session": probe(record, "session", period=1)}, n_proc=1))
    assert wait_for(lambda: len(records(record, "session")) >= 3, 30)
    runs = records(record, "session")
    assert len({r["pid"] for r in runs}) == 1
    assert len({r["session"] for r in runs}) == 1
