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


def _harvester_rows(db_url: str, when: _dt.datetime, key: int) -> None:
    """One row in every Harvester table, its time column (and every other time) at ``when``."""
    from pandasrv.taskbuffer.wrapped_cursor import connect

    rows = {
        "harvester_workers": {"harvesterID": "h1", "workerID": key, "status": "finished", "lastUpdate": when},
        "harvester_rel_jobs_workers": {"harvesterID": "h1", "workerID": key, "PandaID": key, "lastUpdate": when},
        "harvester_worker_stats": {"harvester_ID": "h1", "computingSite": f"Q{key}", "jobType": "managed",
                                   "resourceType": "SCORE", "status": "running", "n_workers": 1, "lastUpdate": when},
        "harvester_commands": {"command_id": key, "harvester_ID": "h1", "command": "KILL_WORKER",
                               "status": "acknowledged", "creation_date": when, "status_date": when},
        "harvester_dialogs": {"harvester_id": "h1", "diagID": key, "creationTime": when, "diagMessage": "m"},
        "harvester_metrics": {"harvester_ID": "h1", "harvester_host": f"host{key}", "creation_time": when,
                              "metrics": "{}"},
        "harvester_slots": {"pandaQueueName": f"Q{key}", "gshare": "", "resourceType": "", "numSlots": 1,
                            "modificationTime": when, "expirationTime": when},
    }
    conn = connect(db_url)
    try:
        for table, row in rows.items():
            conn.cursor().execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})",
                                  row)
        conn.commit()
    finally:
        conn.close()


def _harvester_keys(db_url: str) -> dict[str, int]:
    from pandasrv.taskbuffer.db_proxy_mods.retention import HARVESTER_TABLES
    from pandasrv.taskbuffer.wrapped_cursor import connect

    conn = connect(db_url)
    try:
        counts = {table: conn.cursor().execute(f"SELECT COUNT(*) FROM {table}").fetchall()[0][0]
                  for table in HARVESTER_TABLES}
        conn.commit()
        return counts
    finally:
        conn.close()


def test_harvester_tables_are_purged_by_age_in_batches(tb, db_url):
    days = tb.settings.retention.harvester_days
    now = utcnow()
    for key in range(5):  # older than harvester_days: purged, in batches of 3 (two rows share a time)
        _harvester_rows(db_url, now - _dt.timedelta(days=days, hours=1 + min(key, 3)), key)
    for key in range(5, 7):  # younger: kept
        _harvester_rows(db_url, now - _dt.timedelta(days=days, hours=-1), key)
    assert set(_harvester_keys(db_url).values()) == {7}
    deleted = purge_database(tb, tb.settings, now=now)
    assert {table: deleted[table] for table in _harvester_keys(db_url)} == {table: 5 for table in _harvester_keys(db_url)}
    assert set(_harvester_keys(db_url).values()) == {2}
    assert purge_database(tb, tb.settings, now=now)["harvester_workers"] == 0
