"""A daemon script for the scheduler tests: records every call, then behaves as its arguments say.

arguments: [record_file, behaviour, value, label]; behaviour is ``sleep`` (value seconds), ``fail`` (raise),
``hang`` (start a ``sleep`` subprocess, record its pid, then block) or ``session`` (record the worker's DB session id).
"""

from __future__ import annotations

import json
import os
import subprocess
import time


def _record(path: str, entry: dict) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(entry) + "\n")


def main(task_buffer, settings, arguments):
    path, behaviour, value = arguments[0], arguments[1], float(arguments[2]) if len(arguments) > 2 else 0.0
    label = arguments[3] if len(arguments) > 3 else behaviour
    entry = {"behaviour": label, "pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgrp(),
             "start": time.time()}
    if behaviour == "fail":
        _record(path, entry)
        raise RuntimeError("this script always fails")
    if behaviour == "hang":
        child = subprocess.Popen(["sleep", "300"])
        entry["child"] = child.pid
        _record(path, entry)
        time.sleep(300)
    if behaviour == "session":
        entry["session"] = task_buffer.session_id()
    time.sleep(value)
    entry["end"] = time.time()
    _record(path, entry)
