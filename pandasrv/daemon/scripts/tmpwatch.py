"""tmpwatch: delete files of the upload cache older than ``retention.cache_days``.

The cache is in the database; purges run in small batches, so two machines sweeping at once only share
the work.
"""

from __future__ import annotations

from pandasrv.config import Settings
from pandasrv.dataservice.retention import clean_cache
from pandasrv.taskbuffer.store import Store


def main(task_buffer: Store, settings: Settings, arguments: list[str]) -> None:
    clean_cache(task_buffer, settings)
