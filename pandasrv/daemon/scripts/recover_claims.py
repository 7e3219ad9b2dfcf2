"""recover_claims: claims no pilot confirmed within ``watcher.unconfirmed`` go back to ``activated``.

A short period (60 s), apart from the Watcher's 40-minute sweep: a lost getJob reply then costs a job
``unconfirmed`` + at most one period, not the 30-minute ``sent`` timeout and a failure.
"""

from __future__ import annotations

import logging

from pandasrv.config import Settings
from pandasrv.logic.claims import requeue_unconfirmed
from pandasrv.taskbuffer.store import Store

log = logging.getLogger("pandasrv.daemon.recover_claims")


def main(task_buffer: Store, settings: Settings, arguments: list[str]) -> None:
    requeued = requeue_unconfirmed(task_buffer, settings)
    if requeued:
        log.warning("%d claims unconfirmed for %d s given back to activated: %s", len(requeued),
                    settings.watcher.unconfirmed, " ".join(map(str, requeued[:20])) + (" ..." if len(requeued) > 20 else ""))
