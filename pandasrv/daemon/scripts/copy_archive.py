"""copy_archive (sync): the Watcher's timeout rules, each one set-based sweep."""

from __future__ import annotations

from pandasrv.config import Settings
from pandasrv.dataservice.watcher import run_watcher
from pandasrv.taskbuffer.store import Store


def main(task_buffer: Store, settings: Settings, arguments: list[str]) -> None:
    run_watcher(task_buffer, settings)
