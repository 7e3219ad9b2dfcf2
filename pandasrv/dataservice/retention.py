"""Retention: keep the database and the upload cache from growing without bound.

Archived jobs (with their files, parameters, metadata, reports, status and pilot logs) are deleted
``retention.archived_days`` after their last change, and old rows of the history tables go with the same
cut-off, each in batches of ``retention.batch_size``. Uploaded files in ``cache_dir`` are deleted after
``retention.cache_days``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from pathlib import Path
from typing import Any

from pandasrv.config import Settings

log = logging.getLogger("pandasrv.dataservice.retention")

HISTORY_TABLES = ("job_status_log", "pilot_log", "job_output_report")


def _drain(step: Any, batch_size: int) -> int:
    """Repeat a batch step until it comes back short; returns the total it deleted."""
    total = 0
    while True:
        n = step()
        total += n
        if n < batch_size:
            return total


def purge_database(task_buffer: Any, settings: Settings, now: _dt.datetime | None = None) -> dict[str, int]:
    """Delete what is older than ``archived_days``; returns the rows (jobs for ``jobs_archived``) per table."""
    now = now or _dt.datetime.now(_dt.UTC).replace(tzinfo=None)
    before = now - _dt.timedelta(days=settings.retention.archived_days)
    batch = settings.retention.batch_size
    deleted = {"jobs_archived": _drain(lambda: task_buffer.purge_archived_jobs(before, batch), batch)}
    for table in HISTORY_TABLES:
        deleted[table] = _drain(lambda table=table: task_buffer.purge_history(table, before, batch), batch)
    if any(deleted.values()):
        log.info("retention: deleted %s", ", ".join(f"{n} from {t}" for t, n in deleted.items() if n))
    return deleted


def clean_cache(settings: Settings, now: float | None = None) -> list[str]:
    """Delete regular files in ``cache_dir`` not modified for ``cache_days``; returns their paths."""
    root = Path(settings.cache_dir)
    if not root.is_dir():
        return []
    cutoff = (now or time.time()) - settings.retention.cache_days * 86400
    removed = []
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory) / name
            try:
                if path.is_file() and not path.is_symlink() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed.append(str(path))
            except FileNotFoundError:
                continue  # another machine sharing the cache removed it first
    if removed:
        log.info("tmpwatch: removed %d cached files from %s", len(removed), root)
    return removed
