"""The daemon master on one machine: periods, one run at a time, timeouts, loop mode, recycling, failures,
and DB sessions kept across runs. The scheduling rules run on simulated time (``tests/daemon/simulated.py``)
with exact assertions; what needs real processes runs a real master process with the probe script."""

from __future__ import annotations

import pytest

from pandasrv.config import load_settings
from pandasrv.daemon.master import TICK
from pandasrv.daemon.schedule import load_schedule
from pandasrv.daemon.worker import ScriptRunner
from tests.daemon.helpers import alive, daemon_settings, probe, records
from tests.daemon.simulated import HANG, START, RecordingStore, SimulatedClock, SimulatedMaster, scripts_settings
from tests.waiting import wait_for


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


def test_period_respected_and_runs_never_overlap(caplog):
    master = SimulatedMaster(scripts_settings(3, quick={"period": 1}, slow={"period": 1}),
                             {"quick": (0.1, "ok"), "slow": (1.6, "ok")})
    master.run_for(20)
    quick, slow = master.starts("quick"), master.starts("slow")
    assert quick[0] == slow[0] == START  # due at once
    # started again one period after its last start, at the first tick that sees it due
    assert all(1 <= after - before <= 1 + TICK for before, after in zip(quick, quick[1:]))
    assert len(quick) >= 20 / (1 + TICK)
    # a run longer than its period delays the next one, which starts as soon as it ends
    ends = [run.end for run in master.runs if run.script == "slow"]
    assert slow[1:] == ends[:len(slow) - 1] and len(slow) == 13
    assert "script slow ran 1.6 s, longer than its period of 1 s" in caplog.text
    # never two runs of one script at once
    for name in ("quick", "slow"):
        runs = [run for run in master.runs if run.script == name and run.end is not None]
        assert all(after.start >= before.end for before, after in zip(runs, runs[1:]))


def test_a_hung_run_is_killed_at_its_timeout_and_its_worker_replaced():
    master = SimulatedMaster(scripts_settings(2, hung={"period": 1, "timeout": 2}, healthy={"period": 1}),
                             {"hung": (HANG, "ok"), "healthy": (0.05, "ok")})
    master.run_for(10)
    hung = [run for run in master.runs if run.script == "hung"]
    assert len(master.killed) == len(hung) - 1 >= 2  # every run is killed, the last one is still going
    for run, (pid, when) in zip(hung, master.killed):
        assert pid == run.pid and run.start + 2 < when <= run.start + 2 + TICK
    assert len({run.pid for run in hung}) == len(hung)  # each run on a fresh worker
    # the dead worker's locks are handed to a live worker, and the other script never stopped
    released = [pid for worker in master.sim.workers for pid in worker.released]
    assert released == [pid for pid, _ in master.killed]
    healthy = master.starts("healthy")
    assert all(1 <= after - before <= 1 + TICK for before, after in zip(healthy, healthy[1:]))


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


@pytest.mark.parametrize("call, calls", [(0.3, 7), (1.5, 2), (2.5, 1)])
def test_loop_mode_calls_main_again_until_the_period_is_over(call, calls):
    """A loop-mode run calls ``main`` again while it returns True and its period is not over: calls of 0.3 s
    in a 2 s period start at 0, 0.3, ... 1.8 (seven), however long the last one takes."""
    clock = SimulatedClock()
    store = RecordingStore(clock)
    settings = scripts_settings(looping={"period": 2, "loop": True, "arguments": [str(call), "again"]},
                                once={"period": 2, "loop": True, "arguments": [str(call), "done"]},
                                plain={"period": 2, "arguments": [str(call), "again"]})
    runner = ScriptRunner(store, settings, load_schedule(settings), clock=clock)
    assert runner.run(runner.schedule["looping"]) == ("ok", None, START)
    assert [start for start, _ in store.calls] == pytest.approx([START + call * n for n in range(calls)])
    assert store.calls[-1][1] >= START + 2 > store.calls[-1][0]
    for name in ("once", "plain"):  # main returned False / no loop mode: called once
        store.calls.clear()
        runner.run(runner.schedule[name])
        assert len(store.calls) == 1
    assert store.recorded == [("looping", "ok"), ("once", "ok"), ("plain", "ok")]


def test_idle_workers_are_retired_after_their_lifetime_and_replaced():
    master = SimulatedMaster(scripts_settings(1, 2, tick={"period": 1}), {"tick": (0.5, "ok")})
    master.run_for(10)
    workers = master.sim.workers
    assert len(workers) >= 3 and master.killed == []
    for worker in workers[:-1]:  # told to stop at the first idle tick past its lifetime, never in a run
        assert worker.exitcode == 0 and worker.current is None
        assert worker.born + 2 < worker.died <= worker.born + 2 + 0.5 + TICK
        runs = [run for run in master.runs if run.pid == worker.pid]
        assert runs and all(run.end is not None and run.start - worker.born <= 2 + TICK for run in runs)
    ticks = master.starts("tick")
    assert all(1 <= after - before <= 1 + TICK for before, after in zip(ticks, ticks[1:]))  # no run missed


@pytest.mark.backends("sqlite")
def test_workers_are_recycled_after_their_lifetime(db_url, tmp_path, masters):
    record = tmp_path / "runs.jsonl"
    masters.start(daemon_settings(db_url, {"tick": probe(record, "sleep", 0.05, period=1)},
                                  n_proc=1, proc_lifetime=2))
    # the rule is proven on simulated time above; here a real worker obeys "stop" and a real one replaces it
    # (each new worker starts a TaskBuffer and its ConBridge child: seconds apiece on a loaded machine)
    assert wait_for(lambda: len({r["pid"] for r in records(record)}) >= 2, 90)
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
