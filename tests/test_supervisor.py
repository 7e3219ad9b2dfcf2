"""The restart rule (backoff, the once-per-interval alarm) and the Supervisor's process handling."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from pandasrv.supervisor import RestartPolicy, Supervisor, command, describe_exit, poll
from tests.waiting import wait_for

lifetimes = st.lists(st.floats(min_value=0.0, max_value=200.0), min_size=1, max_size=40)


@given(lifetimes)
def test_backoff_doubles_while_crashing_and_resets_after_a_stable_run(lives):
    policy = RestartPolicy(name="child", initial_delay=0.5, max_delay=30.0, stable_after=60.0)
    now, previous, deaths = 0.0, 0.0, []
    for life in lives:
        policy.on_start(now)
        started, now = now, now + life
        delay = policy.on_death(-9, now)
        if now - started >= 60.0 or not [t for t in deaths if now - t < 300.0]:
            assert delay == 0.0  # a first death, or one after a good run, is restarted at once
        else:
            assert delay == min(max(previous * 2, 0.5), 30.0)
        deaths.append(now)
        assert not policy.may_start(now + delay - 0.01) or delay == 0.0
        assert policy.may_start(now + delay)
        previous = delay
        now += delay


@given(st.lists(st.floats(min_value=0.0, max_value=50.0), min_size=1, max_size=60))
def test_a_child_that_keeps_dying_is_reported_once_per_interval(gaps):
    policy = RestartPolicy(name="child", alarm_deaths=3, alarm_interval=300.0)
    now, deaths, alarms = 0.0, [], []
    for gap in gaps:
        now += gap
        policy.on_start(now)
        before = policy.last_alarm
        policy.on_death(1, now)
        deaths.append(now)
        if policy.last_alarm != before:
            alarms.append(now)
            assert len([t for t in deaths if now - t < 300.0]) >= 3
    assert all(b - a >= 300.0 for a, b in zip(alarms, alarms[1:]))


def test_describe_exit():
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(None) == "exit status unknown"


def test_supervisor_restarts_a_dying_child_and_stops_the_live_one(caplog):
    supervisor = Supervisor(stop_grace=5)
    crash = command([sys.executable, "-c", "import sys; sys.exit(3)"])
    supervisor.add("crasher", crash, initial_delay=0.05, max_delay=0.1, alarm_deaths=3)
    sleeper = supervisor.add("sleeper", command([sys.executable, "-c", "import time; time.sleep(60)"]))
    with caplog.at_level(logging.WARNING, logger="pandasrv.supervisor"):
        supervisor.start()
        wait_for(lambda: supervisor.restarts("crasher") >= 4, 30, step=0.05)
        supervisor.stop()
    assert supervisor.restarts("crasher") >= 4
    assert supervisor.restarts("sleeper") == 0 and supervisor.process("sleeper") is sleeper
    assert sleeper.returncode == -15  # stopped with SIGTERM
    messages = [r.getMessage() for r in caplog.records]
    assert any("crasher died (exit code 3)" in m for m in messages)
    assert sum("crasher keeps dying" in m for m in messages) == 1


def test_poll_of_a_child_reaped_by_someone_else_is_dead_with_unknown_status():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitpid(process.pid, 0)
    assert poll(process) == (True, None)
