"""The load generator of `make bench`: Debian's wrk (C, epoll), driven by the Lua scripts of bench/wrk/.

wrk spends a few microseconds of CPU per request where a Python client spends a few hundred, so on a 2-core
machine shared with the server it leaves the cores to what is measured; its rate against falcon's hello world
(bench/refapps/hello.py, reported beside every run) shows the ceiling it allows. It is installed with apt-get
when missing. One connection per wrk thread (``-t C -c C``), so that a script's globals are one connection's
state (the pilot cycle) and a shed request (503) is retried after a pause on its own connection, as a pilot does.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent / "wrk"


def ensure_wrk() -> str:
    """The path of wrk, installed from Debian's packages when it is missing (the bench runs as root here)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError("wrk is not installed and this is not root: apt-get install wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"], check=True, env=env)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("apt-get install wrk did not install wrk")
    return found


@dataclass
class WrkRun:
    """The totals of one wrk run. ``ok`` is what the script counted as done (jobs handed out, cycles, calls)."""

    seconds: float
    requests: int
    ok: int
    shed: int
    failed: int
    empty: int
    socket_errors: int
    p50_ms: float
    p95_ms: float
    cpu_seconds: float = 0.0  # wrk's own CPU time (user + system), the load generator's cost

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds / self.requests * 1e6 if self.requests else 0.0

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


def run_wrk(url: str, script: str, connections: int, seconds: float, env: dict[str, str] | None = None) -> WrkRun:
    """``script`` (post or cycle) against ``url`` for ``seconds`` with ``connections`` connections.
    ``env`` passes the script's parameters (BENCH_PATH, BENCH_BODY, BENCH_OK, BENCH_SITE)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-wrk-") as lua:
        lua.write((SCRIPTS / "common.lua").read_text() + (SCRIPTS / f"{script}.lua").read_text())
        lua.flush()
        argv = [ensure_wrk(), "-t", str(connections), "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", "30s",
                "-s", lua.name, url]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})},
                              timeout=seconds + 60)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH_JSON ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    data = json.loads(lines[-1].split(" ", 1)[1])
    return WrkRun(seconds=data["duration_us"] / 1e6, requests=data["requests"], ok=data["ok"], shed=data["shed"],
                  failed=data["failed"], empty=data["empty"],
                  socket_errors=sum(data[key] for key in ("connect_errors", "read_errors", "write_errors", "timeouts")),
                  p50_ms=data["p50_us"] / 1000, p95_ms=data["p95_us"] / 1000,
                  cpu_seconds=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
