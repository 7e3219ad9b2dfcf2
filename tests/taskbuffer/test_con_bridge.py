"""ConBridge: DBProxy calls in a child process; a call past db_timeout kills the child and its session."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from typing import Iterator

import psutil
import pytest

from pandasrv.config import load_settings
from pandasrv.taskbuffer import errors
from pandasrv.taskbuffer.claim_request import ClaimRequest
from pandasrv.taskbuffer.con_bridge import ConBridge, _serve
from pandasrv.taskbuffer.job_states import IllegalTransition
from pandasrv.taskbuffer.proxy_pool import ProxyPool
from pandasrv.taskbuffer.wrapped_cursor import connect
from tests.taskbuffer.test_db_proxy import make_job
from tests.waiting import wait_for

TIMEOUT = 1.5


@pytest.fixture
def settings(db_url):
    return load_settings(db_url=db_url, db_timeout=TIMEOUT, db_connections=2, db_bridge=True, db_pool_wait=30)


@pytest.fixture
def bridge(settings) -> Iterator[ConBridge]:
    con_bridge = ConBridge(settings)
    yield con_bridge
    con_bridge.close()


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def session_exists(db_url: str, backend: str, session: int) -> bool:
    if backend == "sqlite":
        return process_exists(session)
    sql = {
        "postgresql": "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = :id",
        "mysql": "SELECT COUNT(*) FROM information_schema.processlist WHERE id = :id",
    }[backend]
    conn = connect(db_url)
    try:
        return conn.cursor().execute(sql, {"id": session}).fetchone()[0] > 0
    finally:
        conn.close()


def test_any_dbproxy_method_works_across_the_pipe(bridge):
    ids = bridge.insert_jobs([make_job("a"), make_job("b")], "activated")
    assert bridge.peek_jobs(ids[:1])[0].Files[1].lfn == f"a.{ids[0]}.out0"
    claimed = bridge.claim_jobs(ClaimRequest(site="SITE", labels=("managed",), n=5, node="wn"))
    assert sorted(job.PandaID for job in claimed) == ids
    assert bridge.get_job_status(ids) == {i: ("sent", 0, None) for i in ids}
    assert bridge.acquire_lease("c", "me", 60) is True
    assert bridge.ping() is True and bridge.pid != os.getpid()
    with pytest.raises(AttributeError):
        getattr(bridge, "no_such_method")  # noqa: B009 - the attribute access itself is under test


def test_exceptions_arrive_as_the_same_types(bridge):
    (panda_id,) = bridge.insert_jobs([make_job()])
    with pytest.raises(IllegalTransition) as raised:
        bridge.set_job_status([panda_id], "running")
    assert (raised.value.old, raised.value.new) == ("defined", "running")
    with pytest.raises(ValueError, match="not settable"):
        bridge.set_job_status([panda_id], "activated", {"bogus": 1})
    with pytest.raises(errors.DBError):
        bridge.insert_output_report(None, 0, "managed", "finished", "{}")
    assert bridge.get_job_status([panda_id])[panda_id][0] == "defined"  # the child is still fine


def test_a_call_past_db_timeout_kills_the_child_and_its_session(bridge, db_url, backend):
    assert bridge.ping()
    pid, session = bridge.pid, bridge.session
    started = time.monotonic()
    with pytest.raises(errors.DBTimeout):
        bridge.sleep(30)
    assert time.monotonic() - started < TIMEOUT + 2
    assert not process_exists(pid)
    assert wait_for(lambda: not session_exists(db_url, backend, session), 10, step=0.2)
    assert wait_for(lambda: _serves(bridge), 30)  # a fresh child serves calls again
    assert bridge.pid not in (None, pid)


def _serves(bridge: ConBridge) -> bool:
    """Whether a call is served; on a loaded machine the fresh child may take longer than this test's short
    db_timeout to connect, and the call then times out like any other (DBTimeout)."""
    try:
        return bridge.get_job_status([1]) == {}
    except errors.DBTimeout:
        return False


def test_the_pool_keeps_serving_while_a_call_hangs(settings):
    pool = ProxyPool(settings)
    outcome: list[BaseException] = []

    def hang() -> None:
        try:
            with pool.get() as proxy:
                proxy.sleep(30)
        except errors.DBTimeout as exc:
            outcome.append(exc)

    hanging = threading.Thread(target=hang)
    hanging.start()
    try:
        with pool.get() as proxy:
            assert proxy.insert_jobs([make_job()])[0] > 0
        hanging.join(TIMEOUT + 10)
        assert len(outcome) == 1
        for _ in range(settings.db_connections):
            with pool.get() as proxy:
                assert proxy.get_job_status([10**12]) == {}
    finally:
        hanging.join()
        pool.close()


def kill_and_wait(pid: int) -> None:
    """SIGKILL a child and wait until it is gone (a zombie of the forkserver counts as gone)."""
    os.kill(pid, 9)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} outlived SIGKILL")


def call_until_served(bridge: ConBridge, deadline: float = 30) -> list[errors.ConnectionLost]:
    """Call until a call is served (a child in backoff answers ConnectionLost at once); returns the refusals."""
    refused = []
    end = time.monotonic() + deadline
    while True:
        try:
            assert bridge.get_job_status([10**12]) == {}
            return refused
        except errors.ConnectionLost as exc:
            refused.append(exc)
            assert time.monotonic() < end, refused
            time.sleep(0.1)


def test_a_child_killed_between_calls_is_replaced_before_the_next_call(bridge, caplog):
    assert bridge.ping()
    pid = bridge.pid
    kill_and_wait(pid)
    with caplog.at_level(logging.WARNING, logger="pandasrv.supervisor"):
        assert bridge.get_job_status([10**12]) == {}  # not a ConnectionLost: the next call gets a fresh child
    assert bridge.pid not in (None, pid)
    assert [r.getMessage().split(" after ")[0] for r in caplog.records] == ["ConBridge child died (killed by SIGKILL)"]


def test_a_child_killed_during_a_call_gives_connection_lost_then_a_fresh_child(settings):
    bridge = ConBridge(settings.model_copy(update={"db_timeout": 120}))
    outcome: list[BaseException] = []

    def busy() -> None:
        try:
            bridge.sleep(60)
        except BaseException as exc:  # noqa: BLE001 - the test reads whatever the call raised
            outcome.append(exc)

    try:
        assert bridge.ping()
        caller = threading.Thread(target=busy)
        caller.start()
        deadline = time.monotonic() + 60
        while caller.is_alive():  # a kill that lands before the call is sent only replaces the idle child
            assert time.monotonic() < deadline
            if bridge.pid is not None:
                kill_and_wait(bridge.pid)
            caller.join(1)
        assert len(outcome) == 1 and isinstance(outcome[0], errors.ConnectionLost), outcome
        call_until_served(bridge)
    finally:
        bridge.close()


@pytest.mark.backends("sqlite")
def test_a_child_that_keeps_dying_is_restarted_with_backoff_and_reported_once(bridge, caplog):
    with caplog.at_level(logging.WARNING, logger="pandasrv.supervisor"):
        refused = []
        for _ in range(5):
            call_until_served(bridge)
            kill_and_wait(bridge.pid)
            started = time.monotonic()
            refused += call_until_served(bridge)
            assert time.monotonic() - started < 30
    messages = [r.getMessage() for r in caplog.records]
    assert sum("ConBridge child died" in m for m in messages) == 5
    assert sum("ConBridge child keeps dying" in m for m in messages) == 1, messages
    assert refused and all("keeps dying; next start in" in str(exc) for exc in refused)


@pytest.mark.backends("sqlite")
def test_a_child_whose_parent_is_gone_before_it_is_ready_ends_quietly(db_url, capfd):
    """A web worker killed while its ConBridge child starts: the child's hello finds a closed pipe and the child
    ends without a word (it used to die on the BrokenPipeError, a traceback in the server log per kill)."""
    parent_end, child_end = multiprocessing.Pipe()
    parent_end.close()
    _serve(child_end, db_url, None)
    assert capfd.readouterr().err == ""


def test_close_stops_the_child(bridge):
    assert bridge.ping()
    pid = bridge.pid
    bridge.close()
    assert not process_exists(pid)
    assert bridge.ping() is True
