"""The WSGI entry that mod_wsgi loads: the settings ``pandasrv apache`` froze into its run directory.

mod_wsgi does not pass the command line or the caller's environment to its daemon processes, so the
settings travel as a JSON file beside the generated ``app.wsgi``; nothing is read from the environment.
"""

from __future__ import annotations

import json
from pathlib import Path

from pandasrv.config import Settings
from pandasrv.web.app import PandaApp, create_app


def load(settings_file: str) -> PandaApp:
    """Build the application of one mod_wsgi daemon process from the frozen settings."""
    settings = Settings.model_validate(json.loads(Path(settings_file).read_text(encoding="utf-8")))
    return create_app(settings)
