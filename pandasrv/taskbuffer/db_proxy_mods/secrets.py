"""User secrets as opaque text: the rows of ``user_secrets``, changed only by compare-and-swap.

Encryption lives above (``logic/secrets.py``), so no plaintext and no key ever reaches this layer or a
ConBridge child. A change names the version it read; a concurrent change in between makes it a no-op
that the caller sees (False) and retries on the fresh row.
"""

from __future__ import annotations

from pandasrv.clock import utcnow
from pandasrv.taskbuffer.db_proxy_mods.base import BaseProxy, transaction

_COLUMNS = ("owner", "data", "version", "updated_at")


class SecretsMixin(BaseProxy):
    @transaction(readonly=True)
    def get_secret_row(self, owner: str) -> tuple[str, int] | None:
        """The owner's sealed secrets and their version, or None when the owner has none."""
        rows = self._fetchall("SELECT data, version FROM user_secrets WHERE owner = :owner", {"owner": owner})
        return (str(rows[0][0]), int(rows[0][1])) if rows else None

    @transaction
    def put_secret_row(self, owner: str, data: str | None, version: int | None) -> bool:
        """Replace the row read at ``version`` (None: there was no row) by ``data`` (None: delete it).

        Returns False, changing nothing, when the row is no longer the one that was read."""
        now = utcnow()
        if version is None:
            if data is None:
                return not self._fetchall("SELECT 1 FROM user_secrets WHERE owner = :owner", {"owner": owner})
            inserted = self._insert_ignoring_duplicates(
                "user_secrets", _COLUMNS, "owner", {"owner": owner, "data": data, "version": 1, "updated_at": now})
            return bool(inserted.rowcount == 1)
        if data is None:
            deleted = self._execute("DELETE FROM user_secrets WHERE owner = :owner AND version = :version",
                                    {"owner": owner, "version": version})
            return bool(deleted.rowcount == 1)
        updated = self._execute(
            "UPDATE user_secrets SET data = :data, version = :next, updated_at = :now"
            " WHERE owner = :owner AND version = :version",
            {"owner": owner, "data": data, "next": version + 1, "now": now, "version": version})
        return bool(updated.rowcount == 1)
