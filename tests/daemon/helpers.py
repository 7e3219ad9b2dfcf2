"""Running a real daemon master (a child process) against a probe script, and reading what it recorded."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import psutil

from pandasrv.config import Settings, load_settings
from pandasrv.daemon.master import start_master

PROBE = "tests.daemon.probe"
REPO = str(Path(__file__).resolve().parents[2])


def live_children(pid: int, command_part: str) -> list[psutil.Process]:
    """The children of ``pid`` whose command line contains ``command_part``, zombies left out."""
    found = []
    for child in psutil.Process(pid).children():
        try:
            if command_part in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def probe(record: Path, behaviour: str, value: float = 0.0, label: str = "", **entry: Any) -> dict[str, Any]:
    """A ``[daemon.scripts.<name>]`` entry running the probe script; its records carry ``label``."""
    return {"module": PROBE, "arguments": [str(record), behaviour, str(value), label or behaviour], **entry}


def daemon_settings(db_url: str, scripts: dict[str, dict[str, Any]], **daemon: Any) -> Settings:
    return load_settings(db_url=db_url, db_connections=1, log_level="WARNING",
                         daemon={"n_proc": 2, **daemon, "scripts": scripts})


def records(path: Path, behaviour: str | None = None) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in entries if behaviour is None or e["behaviour"] == behaviour]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False




class Masters:
    """Daemon masters started by a test, stopped (or killed) at the end whatever happens."""

    def __init__(self, monkeypatch: Any) -> None:
        monkeypatch.setenv("PYTHONPATH", REPO)
        self.processes: list[Any] = []

    def start(self, settings: Settings) -> Any:
        process = start_master(settings)
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(15)
            except Exception:  # noqa: BLE001 - last resort: the whole group
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
