"""Two daemon masters ("machines") on one database: a sync script runs on one machine at a time, its period
counts across both, and when the holder of the lease is killed the other master takes over at expiry."""

from __future__ import annotations

import os
import signal

import pytest

from tests.daemon.helpers import alive, daemon_settings, probe, records
from tests.waiting import wait_for

PERIOD = 1  # seconds: the shortest a period can be (whole seconds); the waits below are counted in runs
EPS = 0.05


def by_start(path):
    return sorted(records(path), key=lambda r: r["start"])


@pytest.mark.backends("postgresql", "mysql")
def test_sync_script_is_exclusive_across_masters_and_survives_a_killed_holder(db_url, tmp_path, masters):
    record = tmp_path / "runs.jsonl"
    scripts = {"exclusive": probe(record, "sleep", 0.4, period=PERIOD, sync=True),
               "local": probe(tmp_path / "local.jsonl", "sleep", 0.05, period=1)}
    first = masters.start(daemon_settings(db_url, scripts))
    second = masters.start(daemon_settings(db_url, scripts))
    assert wait_for(lambda: len(records(record)) >= 5, 60)

    runs = by_start(record)
    for before, after in zip(runs, runs[1:]):
        assert after["start"] >= before["end"]                   # never two runs at once, on any machine
        assert after["start"] - before["start"] >= PERIOD - EPS  # the period holds across machines
    # non-sync scripts run on every machine
    assert {r["ppid"] for r in records(tmp_path / "local.jsonl")} == {first.pid, second.pid}

    # kill -9 the machine whose worker just ran the script: it still holds the lease
    count = len(records(record))
    assert wait_for(lambda: len(records(record)) > count, 30)
    holder_run = by_start(record)[-1]
    holder = first if holder_run["ppid"] == first.pid else second
    survivor = second if holder is first else first
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait()
    assert wait_for(lambda: not alive(holder_run["pid"]), 5)  # its workers die with it

    assert wait_for(lambda: len(records(record)) >= count + 3, 30)
    after_kill = [r for r in by_start(record) if r["start"] > holder_run["start"]]
    assert after_kill and all(r["ppid"] == survivor.pid for r in after_kill)
    assert after_kill[0]["start"] - holder_run["start"] >= PERIOD - EPS  # taken over only after expiry
