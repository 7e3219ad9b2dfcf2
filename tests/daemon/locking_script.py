"""A daemon script for the tests: locks every output report (as the Adder does), then raises.

arguments: ``[exception class name]``: a name from ``pandasrv.taskbuffer.errors`` or ``RuntimeError``.
"""

from __future__ import annotations

from typing import Any

from pandasrv.taskbuffer import errors
from pandasrv.taskbuffer.owners import owner_token


def main(task_buffer: Any, settings: Any, arguments: list[str]) -> None:
    task_buffer.lock_output_reports(owner_token(), 1000, 600)
    raise getattr(errors, arguments[0], RuntimeError)("the database went away in the middle of the run")
