"""The upload cache in the database: files stored in chunks, each with the identity that owns it.

Every node of a cluster serves what any node stored. A name's header row in ``cache_files`` is locked
for the whole upload, so two uploads of one name run one after the other; the content goes to
``cache_chunks`` under a new version number and the header names the version to read, so a download
reads one upload's chunks, never a mix (an overwrite during a download ends that download short).
Chunks stay far below MariaDB's ``max_allowed_packet`` and let a download stream chunk by chunk.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from pandasrv.clock import utcnow
from pandasrv.taskbuffer.db_proxy_mods.base import BaseProxy, transaction
from pandasrv.taskbuffer.errors import DBError

CHUNK_BYTES = 1024 * 1024
_HEADER_COLUMNS = ("name", "owner", "version", "fileSize", "nChunks", "checksum", "creationTime", "modificationTime")


class CacheMixin(BaseProxy):
    def _locked_cache_header(self, name: str) -> tuple[str, int] | None:
        rows = self._fetchall(f"SELECT owner, version FROM cache_files WHERE name = :name{self._for_update}",
                              {"name": name})
        return (rows[0][0], int(rows[0][1])) if rows else None

    @transaction
    def store_cache_file(self, name: str, owner: str, data: bytes, *, overwrite: bool = False,
                         checksum: str | None = None) -> str:
        """Store ``data`` as ``name``: "stored"; "exists" if the name is taken and ``overwrite`` is false;
        "forbidden" if it belongs to another owner (only the owner may overwrite). Refusals change nothing."""
        now = utcnow()
        header = self._locked_cache_header(name)
        if header is None:
            self._insert_ignoring_duplicates(
                "cache_files", _HEADER_COLUMNS, "name",
                {"name": name, "owner": owner, "version": 0, "fileSize": 0, "nChunks": 0, "checksum": None,
                 "creationTime": now, "modificationTime": now})
            header = self._locked_cache_header(name)  # ours, or the row a concurrent first upload committed
            if header is None:
                raise DBError(f"cache file {name} vanished while it was being stored")
        stored_owner, version = header
        if version > 0:  # content from an earlier upload
            if stored_owner != owner:
                return "forbidden"
            if not overwrite:
                return "exists"
            self._execute("DELETE FROM cache_chunks WHERE name = :name", {"name": name})
        new_version = version + 1
        chunks = [data[i: i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]
        for seq, chunk in enumerate(chunks):
            self._execute("INSERT INTO cache_chunks (name, version, seq, data) VALUES (:name, :version, :seq, :data)",
                          {"name": name, "version": new_version, "seq": seq, "data": chunk})
        self._execute("UPDATE cache_files SET version = :version, fileSize = :size, nChunks = :n, checksum = :checksum,"
                      " modificationTime = :now WHERE name = :name",
                      {"version": new_version, "size": len(data), "n": len(chunks), "checksum": checksum, "now": now,
                       "name": name})
        return "stored"

    @transaction(readonly=True)
    def cache_file_info(self, name: str) -> dict[str, Any] | None:
        """The header of a cached file (owner, version, fileSize, nChunks, checksum, times), or None."""
        rows = self._fetchall(f"SELECT {','.join(_HEADER_COLUMNS)} FROM cache_files WHERE name = :name AND version > 0",
                              {"name": name})
        return dict(zip(_HEADER_COLUMNS, rows[0])) if rows else None

    @transaction(readonly=True)
    def cache_file_chunk(self, name: str, version: int, seq: int) -> bytes | None:
        """Chunk ``seq`` of ``version`` of a cached file; None once that version was overwritten or purged."""
        rows = self._fetchall("SELECT data FROM cache_chunks WHERE name = :name AND version = :version AND seq = :seq",
                              {"name": name, "version": version, "seq": seq})
        return bytes(rows[0][0]) if rows else None

    @transaction
    def purge_cache_files(self, before: _dt.datetime, batch_size: int) -> int:
        """Delete up to ``batch_size`` cached files last written before ``before``; returns how many."""
        names = [row[0] for row in self._fetchall(
            f"SELECT name FROM cache_files WHERE modificationTime < :before ORDER BY name LIMIT {int(batch_size)}"
            f"{self._for_update}", {"before": before})]
        if not names:
            return 0
        in_names, binds = self._in("n", names)
        self._execute(f"DELETE FROM cache_chunks WHERE name IN {in_names}", binds)
        self._execute(f"DELETE FROM cache_files WHERE name IN {in_names}", binds)
        return len(names)
