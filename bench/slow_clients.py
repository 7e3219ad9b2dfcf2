"""Slow clients (slowloris) against ``pandasrv serve``: how many normal requests still get an answer.

    .venv/bin/python bench/slow_clients.py --slow 200 --normal 12

Starts ``pandasrv serve --no-daemon`` (the settings' workers x threads) on a fresh SQLite
database and a free 127.0.0.1 port, opens ``--slow`` connections that trickle request headers one line
every few seconds and never finish them, then sends ``--normal`` plain ``isAlive`` requests with a 5 s
timeout each and prints how many were answered. ``pandasrv serve``'s worker (pandasrv.web.worker)
reads request heads in its event loop, so slow clients hold no thread; docs/security.md has the figures
before and after.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slow", type=int, default=200)
    parser.add_argument("--normal", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="pandasrv-slow-"))
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PANDASRV_")},
           "PANDASRV_DB_URL": f"sqlite:///{workdir / 'db.sqlite'}", "PANDASRV_PORT": str(port),
           "PANDASRV_HOST": "127.0.0.1", "PANDASRV_WORKERS": str(args.workers), "PANDASRV_THREADS": str(args.threads),
           "PANDASRV_ACCESS_LOG": "false", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "pandasrv.cli", "db", "init"], env=env, check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    server = subprocess.Popen([sys.executable, "-m", "pandasrv.cli", "serve", "--no-daemon"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/server/panda/isAlive"
    slow: list[socket.socket] = []
    try:
        for _ in range(300):
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        for _ in range(args.slow):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"GET /server/panda/isAlive HTTP/1.1\r\nHost: x\r\n")
            slow.append(sock)
        time.sleep(1)
        served = 0
        started = time.monotonic()
        for _ in range(args.normal):
            for sock in slow:  # keep trickling: one more header line each round
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    pass
            try:
                served += httpx.get(url, timeout=5).status_code == 200
            except httpx.HTTPError:
                pass
        print(f"slow clients {args.slow}, workers {args.workers} x threads {args.threads}: "
              f"{served} of {args.normal} normal requests served in {time.monotonic() - started:.1f} s")
    finally:
        for sock in slow:
            sock.close()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
