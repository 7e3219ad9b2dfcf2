"""A daemon script that always fails: the metrics test counts its runs and failures."""

from typing import Any


def main(task_buffer: Any, settings: Any, arguments: list[str]) -> None:
    raise RuntimeError("this script fails on purpose")
