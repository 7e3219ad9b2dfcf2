"""archive (sync): retention — purge archived jobs and history past ``retention.archived_days``."""

from __future__ import annotations

from typing import Any

from pandasrv.config import Settings
from pandasrv.dataservice.retention import purge_database


def main(task_buffer: Any, settings: Settings, arguments: list[str]) -> None:
    purge_database(task_buffer, settings)
