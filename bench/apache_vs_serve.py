"""getJob (and submit, updateJob) through ``pandasrv apache`` (Apache + mod_wsgi) against gunicorn, back to back.

    .venv/bin/python bench/apache_vs_serve.py --jobs 2000 --pilots 8 --workers 4 --threads 4
    .venv/bin/python bench/apache_vs_serve.py --jobs 2000 --pilots 8 --workers 4 --threads 4 --front gunicorn --front apache

One fresh PostgreSQL database per front end, the same phases as ``bench/web_api.py`` (submit in batches,
activate, N pilot processes drain the queue with getJob, then two heartbeats per job), the same W x T.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))

import web_api  # noqa: E402
from databases import fresh_database  # noqa: E402


@contextmanager
def apache(db_url: str, workers: int, threads: int, db_connections: int) -> Iterator[str]:
    port = web_api.free_port()
    run_dir = tempfile.mkdtemp(prefix="pandasrv-bench-apache-")
    os.chmod(run_dir, 0o755)
    env = {**os.environ, "PANDASRV_DB_URL": db_url, "PANDASRV_AUTH": "none", "PANDASRV_ACCESS_LOG": "false",
           "PANDASRV_LOG_LEVEL": "WARNING",
           "PANDASRV_DB_CONNECTIONS": str(db_connections)}
    proc = subprocess.Popen([sys.executable, "-m", "pandasrv.cli", "apache", "--no-daemon", "--port", str(port),
                             "--processes", str(workers), "--threads", str(threads), "--run-dir", run_dir],
                            env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        web_api.wait_until_alive(url, proc, "pandasrv apache")
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--pilots", type=int, default=8)
    parser.add_argument("--submitters", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--db-connections", type=int, default=4)
    parser.add_argument("--front", action="append", choices=("apache", "gunicorn"),
                        help="repeatable, in this order (default apache then gunicorn); run both orders on a shared "
                             "machine, whose load drifts")
    options = parser.parse_args()
    options.setting = []
    fronts = {"apache": lambda db: apache(db, options.workers, options.threads, options.db_connections),
              "gunicorn": lambda db: web_api.gunicorn(db, options.workers, options.threads, options.db_connections, {})}
    for name in options.front or list(fronts):
        front = fronts[name]
        print(f"\n{name}: load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at start", flush=True)
        with fresh_database("postgresql") as db_url:
            web_api.add_queue(db_url)
            with front(db_url) as url:
                results = web_api.run(url, db_url, options.jobs, options.pilots, options.submitters)
        print(f"\nfront end: {name}")
        web_api.print_table("postgresql", options, results)


if __name__ == "__main__":
    main()
