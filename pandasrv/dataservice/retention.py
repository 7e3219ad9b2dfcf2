"""Retention: keep the database and the upload cache from growing without bound.

Archived jobs (with their files, parameters, metadata, reports, status and pilot logs) are deleted
``retention.archived_days`` after their last change, and old rows of the history tables go with the same
cut-off, each in batches of ``retention.batch_size``. Harvester's tables (workers, job-worker relations,
statistics, commands, dialogs, service metrics, expired target slots) are purged ``retention.harvester_days``
after each row's time. Cached uploads (in the database) are deleted ``retention.cache_days`` after they were
last written.
"""

from __future__ import annotations

import datetime as _dt
import functools
import logging
from typing import Callable

from pandasrv.clock import utcnow
from pandasrv.config import Settings
from pandasrv.taskbuffer.db_proxy_mods.retention import HARVESTER_TABLES, HISTORY_TABLES
from pandasrv.taskbuffer.store import Store

log = logging.getLogger("pandasrv.dataservice.retention")

def _drain(step: Callable[[], int], batch_size: int) -> int:
    """Repeat a batch step until it comes back short; returns the total it deleted."""
    total = 0
    while True:
        n = step()
        total += n
        if n < batch_size:
            return total


def purge_database(task_buffer: Store, settings: Settings, now: _dt.datetime | None = None) -> dict[str, int]:
    """Delete what is older than ``archived_days``; returns the rows (jobs for ``jobs_archived``) per table."""
    now = now or utcnow()
    before = now - _dt.timedelta(days=settings.retention.archived_days)
    batch = settings.retention.batch_size
    deleted = {"jobs_archived": _drain(lambda: task_buffer.purge_archived_jobs(before, batch), batch)}
    for table in HISTORY_TABLES:
        deleted[table] = _drain(functools.partial(task_buffer.purge_history, table, before, batch), batch)
    harvester_before = now - _dt.timedelta(days=settings.retention.harvester_days)
    for table in HARVESTER_TABLES:
        deleted[table] = _drain(functools.partial(task_buffer.purge_aged_rows, table, harvester_before, batch), batch)
    if any(deleted.values()):
        log.info("retention: deleted %s", ", ".join(f"{n} from {t}" for t, n in deleted.items() if n))
    return deleted


def clean_cache(task_buffer: Store, settings: Settings, now: _dt.datetime | None = None) -> int:
    """Delete cached files (in the database) not written for ``cache_days``; returns how many."""
    now = now or utcnow()
    before = now - _dt.timedelta(days=settings.retention.cache_days)
    batch = settings.retention.batch_size
    removed = _drain(lambda: task_buffer.purge_cache_files(before, batch), batch)
    if removed:
        log.info("tmpwatch: removed %d cached files", removed)
    return removed
