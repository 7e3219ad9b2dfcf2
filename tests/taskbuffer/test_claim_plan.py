"""The claim's inner select must follow the claim index on PostgreSQL, not sort the queue.

No manual ANALYZE here: a burst of 30,000 jobs for one queue (where PostgreSQL, without fresh
statistics, prefers the status index and sorts every activated job on every claim) must leave the
statistics good enough by itself (``BaseProxy._refresh_statistics``), and prepared (generic) plans
must be as good as custom ones.
"""

from __future__ import annotations

import pytest

from pandasrv.logic.policy import label_set
from pandasrv.taskbuffer.claim_request import ClaimRequest
from pandasrv.taskbuffer.db_proxy import DBProxy
from pandasrv.taskbuffer.db_proxy_mods.jobs_claim import SKIP_LOCKED, candidate_sql, claim_filter
from pandasrv.taskbuffer.wrapped_cursor import connect
from tests.taskbuffer.test_db_proxy import make_job

pytestmark = pytest.mark.backends("postgresql")


@pytest.mark.slow
def test_claim_select_uses_the_claim_index(db_url):
    proxy = DBProxy(db_url)
    for batch in range(30):
        jobs = [make_job(f"b{batch}-{i}", site="SITE7", priority=i % 50, n_outputs=0) for i in range(1000)]
        proxy.insert_jobs(jobs, status="activated")
    proxy.claim_jobs(ClaimRequest(site="SITE7", labels=("managed",), n=100))
    proxy.close()

    where, binds = claim_filter(ClaimRequest(site="SITE7", labels=label_set(None), memory=2000, walltime=3600))
    values = ", ".join(f"'{value}'" if isinstance(value, str) else str(value) for value in binds.values())
    conn = connect(db_url)
    try:
        conn.begin()
        conn.cursor().execute(f"PREPARE claim_candidates AS {positional(candidate_sql(where, 1, SKIP_LOCKED), binds)}")
        for mode in ("force_custom_plan", "force_generic_plan"):
            conn.cursor().execute(f"SET LOCAL plan_cache_mode = {mode}")
            plan = "\n".join(row[0] for row in conn.cursor().execute(f"EXPLAIN EXECUTE claim_candidates({values})"))
            assert "ix_jobs_active_claim" in plan, (mode, plan)
            assert "Sort" not in plan, (mode, plan)
        conn.rollback()
    finally:
        conn.close()


def positional(sql: str, binds: dict) -> str:
    """The statement with $1..$n in the order EXECUTE passes the values (the filter's binds)."""
    for position, name in enumerate(binds, start=1):
        sql = sql.replace(f":{name}", f"${position}")
    return sql
