"""Upload cache benchmark: store and read back one large file in the database, per backend.

    .venv/bin/python bench/cache_files.py                    # 64 MiB on all three backends
    .venv/bin/python bench/cache_files.py --backend mysql --mib 256

On a fresh database: ``store_cache_file`` of ``--mib`` random MiB (1 MiB chunks) and the chunk-by-chunk
read a ``/cache/<name>`` download does, in-process, with the MiB/s of each. A large file on MariaDB
also shows that no statement comes near ``max_allowed_packet``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from databases import fresh_database  # noqa: E402

from pandasrv.taskbuffer.db_proxy import DBProxy  # noqa: E402


def run(backend: str, data: bytes) -> tuple[float, float]:
    """(store seconds, read seconds) of ``data`` on a fresh database of ``backend``."""
    with fresh_database(backend) as url:
        proxy = DBProxy(url)
        try:
            start = time.perf_counter()
            assert proxy.store_cache_file("big.bin", "bench", data) == "stored"
            stored = time.perf_counter() - start
            start = time.perf_counter()
            info = proxy.cache_file_info("big.bin")
            assert info is not None
            read = b"".join(proxy.cache_file_chunk("big.bin", info["version"], seq) or b""
                            for seq in range(info["nChunks"]))
            elapsed = time.perf_counter() - start
            assert read == data
            return stored, elapsed
        finally:
            proxy.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "mysql"), action="append")
    parser.add_argument("--mib", type=int, default=64)
    args = parser.parse_args()
    data = os.urandom(args.mib * 1024 * 1024)
    for backend in args.backend or ("sqlite", "postgresql", "mysql"):
        stored, read = run(backend, data)
        print(f"{backend:<10} {args.mib} MiB  store {stored:6.2f} s ({args.mib / stored:7.1f} MiB/s)"
              f"  read {read:6.2f} s ({args.mib / read:7.1f} MiB/s)", flush=True)


if __name__ == "__main__":
    main()
