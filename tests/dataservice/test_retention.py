"""Retention of archived jobs and history, the upload cache sweep, and the add_sub counters."""

from __future__ import annotations

import datetime as _dt

import pytest

from pandasrv.daemon.scripts import add_sub
from pandasrv.dataservice.retention import clean_cache, purge_database
from tests.dataservice.helpers import store, task_buffer, utcnow


@pytest.fixture
def tb(db_url, tmp_path):
    buffer = task_buffer(db_url, retention={"archived_days": 1, "batch_size": 3, "cache_days": 1})
    yield buffer
    buffer.close()


def test_archived_jobs_and_their_rows_are_purged_in_batches(tb):
    archived = store(tb, "running", n=7)
    assert tb.set_job_status(archived, "failed") == archived
    live = store(tb, "running", n=2)
    assert purge_database(tb, tb.settings)["jobs_archived"] == 0  # nothing is a day old yet
    deleted = purge_database(tb, tb.settings, now=utcnow() + _dt.timedelta(days=2))
    assert deleted["jobs_archived"] == 7
    assert tb.peek_jobs(archived) == [None] * 7
    assert deleted["job_status_log"] > 0  # the live jobs' old history goes too
    assert [j.jobStatus for j in tb.peek_jobs(live)] == ["running", "running"]
    assert all(j.Files for j in tb.peek_jobs(live))


def test_tmpwatch_removes_old_cached_files_only(tb):
    tb.store_cache_file("old.tgz", "alice", b"x")
    tb.store_cache_file("new.tgz", "alice", b"y")
    assert clean_cache(tb, tb.settings, now=utcnow() + _dt.timedelta(days=tb.settings.retention.cache_days, hours=-1)) == 0
    assert clean_cache(tb, tb.settings, now=utcnow() + _dt.timedelta(days=tb.settings.retention.cache_days, hours=1)) == 2
    assert tb.cache_file_info("old.tgz") is None and tb.cache_file_info("new.tgz") is None


def test_add_sub_counts_job_starts_per_queue(tb):
    store(tb, "running", n=2, site="QUEUE_A")
    store(tb, "running", n=1, site="QUEUE_B")
    store(tb, "activated", site="QUEUE_C")
    add_sub.main(tb, tb.settings, [])
    counts = tb.update_site_starts(utcnow() - _dt.timedelta(hours=1), utcnow())
    assert {site: n for site, (n, _) in counts.items()} == {"QUEUE_A": 2, "QUEUE_B": 1}
    assert all(last is not None for _, last in counts.values())
