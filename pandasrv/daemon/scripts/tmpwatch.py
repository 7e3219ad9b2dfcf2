"""tmpwatch: delete files of the upload cache older than ``retention.cache_days``.

Not sync: with a cache on shared storage several machines may sweep it; a file already gone is skipped.
"""

from __future__ import annotations

from typing import Any

from pandasrv.config import Settings
from pandasrv.dataservice.retention import clean_cache


def main(task_buffer: Any, settings: Settings, arguments: list[str]) -> None:
    clean_cache(settings)
