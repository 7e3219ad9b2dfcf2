"""Credential calls benchmark: ``creds/get_proxy`` (a file from the proxy folder), ``creds/set_user_secrets``
and ``creds/get_user_secrets`` (sealed rows in the database) against a real gunicorn server.

    .venv/bin/python bench/creds.py --backend postgresql --calls 300 --clients 4 --workers 2

Each phase runs alone, every client sending ``--calls`` requests. The server runs ``auth = x509`` behind a
simulated trusted front (``X-SSL-Client-S-DN`` headers), so each client process is its own owner and the
secrets writes do not contend for one row. Prints calls/s and the median / p95 round trip per phase.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from databases import fresh_database  # noqa: E402
from web_api import gunicorn  # noqa: E402

PHASES = ("get_proxy", "set_user_secrets", "get_user_secrets")
PROXY = "-----BEGIN CERTIFICATE-----\n" + "A" * 3000 + "\n-----END CERTIFICATE-----\n"


def client_dn(index: int) -> str:
    return f"/DC=org/OU=Bench/CN=client{index}"


def send(http: httpx.Client, url: str, phase: str, n: int) -> httpx.Response:
    if phase == "get_proxy":
        return http.get(f"{url}/api/v1/creds/get_proxy", params={"dn": "bench-proxy"})
    if phase == "set_user_secrets":
        return http.post(f"{url}/api/v1/creds/set_user_secrets", json={"key": f"k{n % 20}", "value": f"value {n}"})
    return http.get(f"{url}/api/v1/creds/get_user_secrets")


def run_client(args: tuple[str, int, str, int]) -> list[float]:
    url, index, phase, calls = args
    headers = {"X-SSL-Client-S-DN": client_dn(index), "Accept": "application/json"}
    times: list[float] = []
    with httpx.Client(timeout=120, headers=headers) as http:
        for n in range(calls):
            started = time.perf_counter()
            reply = send(http, url, phase, n).json()
            times.append(time.perf_counter() - started)
            assert reply["success"], reply
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="postgresql", choices=("sqlite", "postgresql", "mysql"))
    parser.add_argument("--calls", type=int, default=300, help="rounds of the three calls per client")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, fresh_database(options.backend) as db_url:
        (Path(folder) / "bench-proxy").write_text(PROXY)
        creds = {"proxy_dir": folder, "secrets_key": base64.urlsafe_b64encode(os.urandom(32)).decode(),
                 "proxy_users": [f"client{i}" for i in range(options.clients)]}
        extra = {"auth": "x509", "trust_proxy_headers": "true", "creds": json.dumps(creds)}
        with gunicorn(db_url, options.workers, options.threads, options.threads, extra) as url:
            print(f"{options.backend}: {options.clients} clients x {options.calls} calls per phase")
            with multiprocessing.get_context("spawn").Pool(options.clients) as pool:
                pool.map(run_client, [(url, i, phase, 1) for i in range(options.clients) for phase in PHASES])  # warm-up
                for phase in PHASES:
                    started = time.perf_counter()
                    parts = pool.map(run_client, [(url, i, phase, options.calls) for i in range(options.clients)])
                    wall = time.perf_counter() - started
                    times = sorted(t for part in parts for t in part)
                    print(f"  creds/{phase:18s} {len(times) / wall:8.1f} calls/s  median "
                          f"{statistics.median(times) * 1000:6.1f} ms  p95 {times[int(0.95 * (len(times) - 1))] * 1000:6.1f} ms")


if __name__ == "__main__":
    main()
