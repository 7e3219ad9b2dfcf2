"""Where the processes of one ``pandasrv serve`` put their metric files (prometheus-client multiprocess mode).

Kept apart from ``pandasrv.metrics`` because it must run before prometheus-client is imported.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir() -> Path | None:
    """Use ``$PROMETHEUS_MULTIPROC_DIR`` (emptied of a previous run's files) or a fresh temporary directory,
    which is returned so that the caller removes it when the server stops (None for the operator's own).

    Counters restart at zero with the server, as Prometheus expects of a restarted target.
    """
    given = os.environ.get(VARIABLE)
    if given:
        use_multiprocess_dir(Path(given), fresh=True)
        return None
    path = Path(tempfile.mkdtemp(prefix="pandasrv-metrics-"))
    use_multiprocess_dir(path)
    return path


def use_multiprocess_dir(path: Path, *, fresh: bool = False) -> None:
    """Make ``path`` this process's (and its children's) metrics directory; ``fresh`` removes a previous
    run's files first."""
    path.mkdir(parents=True, exist_ok=True)
    if fresh:
        for stale in path.glob("*.db"):
            stale.unlink()
    os.environ[VARIABLE] = str(path)
