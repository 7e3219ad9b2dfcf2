"""The systemd units in ``deploy/systemd/``: each restarts on failure, stops with SIGTERM, and runs only
commands and options that ``pandasrv`` has (checked with the real command line parser)."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from pandasrv.cli import main
from tests.deploy.conftest import REPO

UNITS = sorted((REPO / "deploy" / "systemd").glob("*.service"))
INSTALLED = "/opt/pandasrv/.venv/bin/pandasrv"  # where the units expect the installation


def test_there_is_a_unit_for_each_role() -> None:
    assert {unit.name for unit in UNITS} == {"pandasrv-apache.service", "pandasrv-daemon.service",
                                             "pandasrv-haproxy.service"}


@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_the_unit_restarts_on_failure_and_runs_real_commands(unit: Path) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]  (systemd keys are case-sensitive)
    parser.read_string(unit.read_text())
    service = parser["Service"]
    assert service["Restart"] == "on-failure" and service["KillSignal"] == "SIGTERM"
    assert service["Environment"].startswith("PANDASRV_CONFIG=")
    assert parser["Install"]["WantedBy"] == "multi-user.target"
    commands = [service[key] for key in ("ExecStartPre", "ExecStart") if key in service]
    for command in commands:
        program, *arguments = shlex.split(command)
        assert program == INSTALLED
        # --help after the unit's own arguments: click refuses an unknown command or option before it helps
        result = CliRunner().invoke(main, [*arguments, "--help"])
        assert result.exit_code == 0, f"{command}: {result.output}"
