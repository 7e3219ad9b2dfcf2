"""A session dropped by the server is re-opened: the next call through the pool succeeds."""

from __future__ import annotations

import pytest

from pandasrv.config import load_settings
from pandasrv.taskbuffer.claim_request import ClaimRequest
from pandasrv.taskbuffer.db_proxy import DBProxy
from pandasrv.taskbuffer.proxy_pool import ProxyPool
from pandasrv.taskbuffer.wrapped_cursor import connect
from tests.taskbuffer.test_db_proxy import make_job

pytestmark = pytest.mark.backends("postgresql", "mysql")


def drop_session(db_url: str, backend: str, session: int) -> None:
    """What a DBA, a failover or a firewall does to an idle session."""
    conn = connect(db_url)
    try:
        if backend == "postgresql":
            conn.cursor().execute("SELECT pg_terminate_backend(:id)", {"id": session}).fetchall()
        else:
            conn.cursor().execute("KILL :id", {"id": session})
        conn.commit()
    finally:
        conn.close()


@pytest.mark.parametrize("bridge", [False, True], ids=["in_process", "con_bridge"])
def test_next_call_through_the_pool_succeeds(db_url, backend, bridge):
    settings = load_settings(db_url=db_url, db_connections=1, db_bridge=bridge, db_timeout=30)
    pool = ProxyPool(settings)
    try:
        with pool.get() as proxy:
            proxy.insert_jobs([make_job("a"), make_job("b")], "activated")
            first = proxy.session_id()
        drop_session(db_url, backend, first)
        with pool.get() as proxy:  # a write: retried because the server rolled back
            assert [job.jobName for job in proxy.claim_jobs(ClaimRequest(site="SITE", labels=("managed",), n=1))] == ["a"]
            second = proxy.session_id()
        assert second != first
        drop_session(db_url, backend, second)
        with pool.get() as proxy:  # a read
            assert len(proxy.get_job_status(list(range(1, 10)))) == 2
            assert proxy.session_id() not in (first, second)
    finally:
        pool.close()


def test_ping_reopens_a_dropped_session(db_url, backend):
    proxy = DBProxy(db_url)
    session = proxy.session_id()
    drop_session(db_url, backend, session)
    assert proxy.ping() is True
    assert proxy.session_id() != session
    proxy.close()
