"""A status change limited to ``expected`` statuses locks only the stage tables that hold them.

The Setupper moves its batch ``defined`` -> ``activated`` with ``expected=["defined"]``. When some of those
jobs are in jobs_active already (activated by another actor: ``recover_defined``, an operator, the bench),
locking them too would make every concurrent claim skip them (``SKIP LOCKED``) until the Setupper commits:
pilots told "no jobs" while the queue is full (what stopped the bench's draining pilots early).
"""

from __future__ import annotations

import pytest

from pandasrv.taskbuffer.db_proxy import DBProxy
from pandasrv.taskbuffer.wrapped_cursor import connect
from tests.taskbuffer.test_db_proxy import make_job

pytestmark = pytest.mark.backends("postgresql", "mysql")  # SQLite has no row locks


def test_a_change_expecting_defined_jobs_leaves_active_rows_unlocked(db_url):
    proxy = DBProxy(db_url, statement_timeout=5)
    [panda_id] = proxy.insert_jobs([make_job("a")], status="activated")
    holder = connect(db_url)  # a claim in progress: it holds the active row
    try:
        holder.begin()
        holder.cursor().execute("SELECT PandaID FROM jobs_active WHERE PandaID = :id FOR UPDATE",
                                {"id": panda_id}).fetchall()
        # Waiting for the holder's lock would end in the statement timeout (a DBError), not in this answer.
        assert proxy.set_job_status([panda_id], "activated", expected=["defined"]) == []
    finally:
        holder.rollback()
        holder.close()
        proxy.close()
