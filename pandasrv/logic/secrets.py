"""User secrets (``creds/set_user_secrets``, ``get_user_secrets``): a key/value dictionary per owner, sealed at rest.

Each owner's dictionary is one AES-GCM message under the server's ``creds.secrets_key`` with the owner name
as associated data, so the database holds no plaintext, and a row copied to another owner does not open.
Reads try the earlier keys in ``creds.secrets_old_keys`` too; every write seals with the current key.
Changes are read-modify-write with a compare-and-swap on the row's version, so two concurrent changes of
one owner's secrets both land. Values and keys are never logged or put into an error message.

PanDA's rules: a null key deletes all of the owner's secrets, a null value deletes that key (and its
``___file___:`` form, which panda-client uses for secrets uploaded from files).
"""

from __future__ import annotations

import base64
import binascii
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pandasrv.config import CredsSettings
from pandasrv.taskbuffer.store import SecretsStore

FORMAT = "v1:"
NONCE_BYTES = 12
MAX_KEY_CHARS = 1024
FILE_PREFIX = "___file___:"
CAS_ATTEMPTS = 8


def new_key() -> str:
    """A fresh ``creds.secrets_key``: urlsafe base64 of 32 random bytes."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


class SecretsError(Exception):
    """A refused secrets request; the message is the whole reply text and names no secret value."""


class SecretBox:
    """Seals and opens one owner's dictionary: AES-GCM, a random nonce per message, the owner as associated data."""

    def __init__(self, key: str, old_keys: list[str] | None = None) -> None:
        self._seal = AESGCM(base64.urlsafe_b64decode(key))
        self._open = [self._seal, *(AESGCM(base64.urlsafe_b64decode(k)) for k in old_keys or [])]

    @classmethod
    def from_settings(cls, settings: CredsSettings) -> SecretBox | None:
        key = settings.secrets_key.get_secret_value()
        if not key:
            return None
        return cls(key, [k.get_secret_value() for k in settings.secrets_old_keys])

    def seal(self, owner: str, secrets: dict[str, str]) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._seal.encrypt(nonce, json.dumps(secrets).encode(), owner.encode())
        return FORMAT + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, owner: str, text: str) -> dict[str, str]:
        if not text.startswith(FORMAT):
            raise SecretsError(f"the stored secrets of {owner} are not in a known format")
        try:
            raw = base64.urlsafe_b64decode(text[len(FORMAT):].encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise SecretsError(f"the stored secrets of {owner} are damaged") from None
        for box in self._open:
            try:
                secrets: dict[str, str] = json.loads(box.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], owner.encode()))
            except InvalidTag:
                continue
            return secrets
        raise SecretsError(f"the stored secrets of {owner} do not open with the configured keys")


class Secrets:
    """The owner-side operations on a store of sealed rows (``SecretsStore``: a TaskBuffer)."""

    def __init__(self, settings: CredsSettings) -> None:
        self.box = SecretBox.from_settings(settings)
        self.max_bytes = settings.max_secrets_bytes

    def _require_box(self, owner: str) -> SecretBox:
        if self.box is None:
            raise SecretsError("user secrets are not enabled on this server (creds.secrets_key is not set)")
        if not owner:
            raise SecretsError("user secrets need a caller with an owner name")
        return self.box

    def _read(self, tb: SecretsStore, owner: str) -> tuple[dict[str, str], int | None]:
        row = tb.get_secret_row(owner)
        if row is None:
            return {}, None
        data, version = row
        return self._require_box(owner).open(owner, data), int(version)

    def get(self, tb: SecretsStore, owner: str, keys: list[str] | None = None) -> dict[str, str]:
        """The owner's secrets, only ``keys`` when given (each entry may itself be comma-separated, as in PanDA)."""
        self._require_box(owner)
        secrets, _ = self._read(tb, owner)
        wanted = {k for entry in keys or [] for k in entry.split(",") if k}
        return {k: v for k, v in secrets.items() if k in wanted} if wanted else secrets

    def set(self, tb: SecretsStore, owner: str, key: str | None, value: str | None) -> None:
        """Set ``key`` to ``value``; a None value deletes the key, a None key deletes every secret of the owner."""
        box = self._require_box(owner)
        if key is not None and not key:
            raise SecretsError("key must not be empty")
        if key is not None and len(key) > MAX_KEY_CHARS:
            raise SecretsError(f"key is longer than {MAX_KEY_CHARS} characters")
        for _ in range(CAS_ATTEMPTS):
            secrets, version = self._read(tb, owner)
            if key is None:
                secrets = {}
            elif value is None:
                secrets.pop(key, None)
                secrets.pop(FILE_PREFIX + key, None)
            else:
                secrets[key] = value
            size = len(json.dumps(secrets).encode())
            if size > self.max_bytes:
                raise SecretsError(f"the secrets of {owner} would take {size} bytes, more than "
                                   f"creds.max_secrets_bytes ({self.max_bytes})")
            sealed = box.seal(owner, secrets) if secrets else None
            if tb.put_secret_row(owner, sealed, version):
                return
        raise SecretsError(f"the secrets of {owner} changed {CAS_ATTEMPTS} times while being set; try again")
