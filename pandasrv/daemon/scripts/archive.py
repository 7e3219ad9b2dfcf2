"""archive (sync): retention — purge archived jobs and history past ``retention.archived_days``."""

from __future__ import annotations

from pandasrv.config import Settings
from pandasrv.dataservice.retention import purge_database
from pandasrv.taskbuffer.store import Store


def main(task_buffer: Store, settings: Settings, arguments: list[str]) -> None:
    purge_database(task_buffer, settings)
