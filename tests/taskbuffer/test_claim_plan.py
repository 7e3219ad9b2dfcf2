"""The claim's inner select must follow the claim index on PostgreSQL, whatever else is in jobs_active."""

from __future__ import annotations

import pytest

from pandasrv.taskbuffer.db_proxy import DBProxy
from pandasrv.taskbuffer.db_proxy_mods.jobs_claim import MANAGED_LABELS, SKIP_LOCKED, candidate_sql, claim_filter
from pandasrv.taskbuffer.wrapped_cursor import connect
from tests.taskbuffer.test_db_proxy import make_job

pytestmark = pytest.mark.backends("postgresql")


def test_claim_select_uses_the_claim_index(db_url):
    proxy = DBProxy(db_url)
    for site in range(20):
        jobs = [make_job(f"s{site}-{i}", site=f"SITE{site}", priority=i % 50, n_outputs=0) for i in range(250)]
        proxy.insert_jobs(jobs, status="activated")
    proxy.claim_jobs("SITE3", 100)
    proxy.close()

    where, binds = claim_filter("SITE7", MANAGED_LABELS, memory=2000, walltime=3600)
    conn = connect(db_url)
    try:
        conn.cursor().execute("ANALYZE jobs_active")
        conn.commit()
        rows = conn.cursor().execute(f"EXPLAIN {candidate_sql(where, SKIP_LOCKED)}", {**binds, "n": 1}).fetchall()
    finally:
        conn.close()
    plan = "\n".join(row[0] for row in rows)
    assert "ix_jobs_active_claim" in plan, plan
    assert "Sort" not in plan, plan
