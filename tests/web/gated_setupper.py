"""A Setupper plugin for tests: holds each job until a gate file named after it appears.

Configured on the test server for VO ``gatedvo``; it proves that the submit reply does not wait for the
Setupper (the jobs are still ``defined`` while the gate is closed).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from pandasrv.dataservice.plugins.generic import SetupperPlugin

GATE_DIR_VARIABLE = "SETUPPER_GATE_DIR"
GATED_VO = "gatedvo"
PLUGIN = "tests.web.gated_setupper:GatedSetupper"


class GatedSetupper(SetupperPlugin):
    def setup(self, jobs: list[Any]) -> dict[str, Any]:
        gate_dir = Path(os.environ[GATE_DIR_VARIABLE])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all((gate_dir / job.jobName).exists() for job in jobs):
            time.sleep(0.05)
        return super().setup(jobs)
