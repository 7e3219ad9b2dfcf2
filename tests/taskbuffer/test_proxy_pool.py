"""ProxyPool: bounded checkout, health check on checkout, in-process or bridged proxies, close."""

from __future__ import annotations

import threading

import pytest

from pandasrv.config import load_settings
from pandasrv.logic.heartbeat import Heartbeat
from pandasrv.taskbuffer import errors
from pandasrv.taskbuffer.claim_request import ClaimRequest
from pandasrv.taskbuffer.con_bridge import ConBridge
from pandasrv.taskbuffer.db_proxy import DBProxy
from pandasrv.taskbuffer.proxy_pool import ProxyPool
from pandasrv.taskbuffer.task_buffer import TaskBuffer
from tests.taskbuffer.test_db_proxy import make_job

pytestmark = pytest.mark.backends("sqlite")


def settings_for(db_url: str, **overrides):
    values = {"db_connections": 2, "db_bridge": False, "db_pool_wait": 0.3, **overrides}
    return load_settings(db_url=db_url, **values)


def test_checkout_waits_a_bounded_time(db_url):
    pool = ProxyPool(settings_for(db_url))
    with pool.get() as first, pool.get() as second:
        assert isinstance(first, DBProxy) and first is not second
        with pytest.raises(errors.PoolTimeout):
            with pool.get():
                pass
    with pool.get() as again:
        assert again in (first, second)
    pool.close()


def test_a_returned_proxy_wakes_a_waiting_thread(db_url):
    pool = ProxyPool(settings_for(db_url, db_connections=1, db_pool_wait=30))
    got: list[object] = []

    def waiter() -> None:
        with pool.get() as proxy:
            got.append(proxy)

    with pool.get() as proxy:
        thread = threading.Thread(target=waiter)
        thread.start()
    thread.join(10)
    assert got == [proxy]
    pool.close()


class CountingProxy(DBProxy):
    pings = 0

    def ping(self) -> bool:
        type(self).pings += 1
        return super().ping()


def test_health_check_only_after_an_error_or_a_long_idle(db_url):
    CountingProxy.pings = 0
    pool = ProxyPool(settings_for(db_url, db_connections=1), factory=lambda s: CountingProxy(s.db_url))
    for _ in range(3):
        with pool.get() as proxy:
            proxy.get_job_status([1])
    assert CountingProxy.pings == 0
    with pytest.raises(errors.IntegrityError):  # the caller's fault: says nothing about the session
        with pool.get() as proxy:
            proxy.insert_output_report(None, 0, "managed", "finished", "{}")
    with pool.get() as proxy:
        assert proxy.get_job_status([1]) == {}
    assert CountingProxy.pings == 0
    with pytest.raises(errors.ConnectionLost):
        with pool.get():
            raise errors.ConnectionLost("server gone")
    with pool.get() as proxy:
        assert proxy.get_job_status([1]) == {}
    assert CountingProxy.pings == 1
    pool.ping_after_idle = 0
    with pool.get():
        pass
    assert CountingProxy.pings == 2
    pool.close()


def test_bridged_pool_and_close(db_url):
    pool = ProxyPool(settings_for(db_url, db_bridge=True, db_connections=1))
    with pool.get() as proxy:
        assert isinstance(proxy, ConBridge)
        assert proxy.insert_jobs([make_job()]) == [1]
        pid = proxy.pid
    pool.close()
    assert proxy.pid is None and pid is not None
    with pytest.raises(errors.PoolTimeout):
        with pool.get():
            pass


@pytest.mark.parametrize("bridge", [False, True], ids=["in_process", "con_bridge"])
def test_task_buffer_calls_go_through_the_pool(db_url, bridge):
    task_buffer = TaskBuffer(settings_for(db_url, db_bridge=bridge))
    job = make_job()
    assert task_buffer.insert_jobs([job], status="activated") == [1]
    (stored,) = task_buffer.peek_jobs([1])
    assert stored.Files[1].lfn == "job.1.out0" and stored.jobName == job.jobName
    assert [j.PandaID for j in task_buffer.claim_jobs(ClaimRequest(site="SITE", labels=("managed",), n=1, node="wn"))] == [1]
    assert task_buffer.update_job(Heartbeat(1, "running", {}, attempt_nr=0))["result"] == "ok"
    assert task_buffer.set_job_status([1], "holding") == [1]
    assert task_buffer.get_job_status([1]) == {1: ("holding", 0, None)}
    assert task_buffer.acquire_lease("x", "me", 10) and task_buffer.release_lease("x", "me")
    assert task_buffer.ping()
    task_buffer.close()
