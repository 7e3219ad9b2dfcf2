"""The WSGI entry that mod_wsgi loads: the settings ``pandasrv apache`` froze into its run directory.

mod_wsgi does not pass the command line or the caller's environment to its daemon processes, so the
settings travel as a JSON file beside the generated ``app.wsgi``; nothing is read from the environment.
The metrics directory that all W processes share (and the daemon master beside Apache) is ``metrics/``
in the same run directory; it must be chosen before prometheus-client is imported, hence the late import.
The application's log lines (one access line per request, refusals, outages) go to the process's standard
error, which mod_wsgi writes into Apache's error log; without a handler Python would drop all but warnings.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pandasrv.config import Settings
from pandasrv.metrics_dir import use_multiprocess_dir

if TYPE_CHECKING:
    from pandasrv.web.app import PandaApp

METRICS_DIR = "metrics"


def load(settings_file: str) -> PandaApp:
    """Build the application of one mod_wsgi daemon process from the frozen settings."""
    path = Path(settings_file)
    use_multiprocess_dir(path.with_name(METRICS_DIR))
    from pandasrv.web.app import create_app

    settings = Settings.model_validate(json.loads(path.read_text(encoding="utf-8")))
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(process)d %(name)s %(levelname)s %(message)s")
    return create_app(settings)
