"""Proxies, access tokens, token keys and key pairs from operator-managed folders, and who may have them.

The operator (or a cron job renewing proxies and tokens) writes one file per credential into the folders
of ``[creds]`` (layout in docs/credentials.md); every read checks the file's identity (inode, size,
modification time) and rereads it when it changed, so a renewed credential is served at once and an
unchanged one costs a ``stat``. Names from a request never leave their folder: anything that is not a
plain file name is refused before the file system sees it.

Who may have what follows PanDA's ``USERS.GRIDPREF`` letters, as owner-name lists in the settings: p
(``proxy_users``) for proxies and access tokens, k (``key_pair_users``) for key pairs, t
(``token_key_users``) for token keys. A refusal is a ``CredentialRefused`` carrying the dispatcher's
StatusCode, so the legacy and v1 forms answer the same refusal each in its own way.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from pandasrv.config import CredsSettings
from pandasrv.logic.constants import SC_INVALID, SC_MISSING_KEY, SC_NOT_FOUND, SC_PERMS

MAX_NAME_CHARS = 255
_ROLE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_LIST_OF = {"p": "proxy_users", "k": "key_pair_users", "t": "token_key_users"}


class CredentialRefused(Exception):
    """The caller does not get the credential; ``code`` is the legacy StatusCode, the message the reply text."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def plain_name(name: str) -> bool:
    """A name that can only mean a file directly inside its folder (no path, no hidden file, no NUL)."""
    return 0 < len(name) <= MAX_NAME_CHARS and "/" not in name and "\x00" not in name and not name.startswith(".")


class Folder:
    """The files of one folder, each reread when it changes; ``read`` gives None for a missing file."""

    def __init__(self, path: str, max_bytes: int) -> None:
        self.path = Path(path) if path else None
        self.max_bytes = max_bytes
        self._files: dict[str, tuple[tuple[int, int, int, int], str]] = {}
        self._lock = threading.Lock()

    def read(self, name: str) -> str | None:
        if self.path is None or not plain_name(name):
            return None
        file = self.path / name
        try:
            info = file.stat()
        except OSError:
            with self._lock:
                self._files.pop(name, None)
            return None
        signature = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        with self._lock:
            hit = self._files.get(name)
        if hit and hit[0] == signature:
            return hit[1]
        if not file.is_file() or info.st_size > self.max_bytes:
            return None
        try:
            text = file.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        with self._lock:
            self._files[name] = (signature, text)
        return text


class Credentials:
    """The folder-backed credentials of one process, with PanDA's permission rules."""

    def __init__(self, settings: CredsSettings) -> None:
        self.settings = settings
        limit = settings.max_file_bytes
        self.proxies = Folder(settings.proxy_dir, limit)
        self.tokens = Folder(settings.token_dir, limit)
        self.keys = Folder(settings.key_dir, limit)
        self.token_keys = Folder(settings.token_key_dir, limit)

    def _allow(self, caller: str | None, allowed: list[str], letter: str, what: str) -> str:
        if not caller or caller not in allowed:
            raise CredentialRefused(SC_PERMS, f"failed since '{caller or ''}' is not authorized with '{letter}'"
                                              f" (creds.{_LIST_OF[letter]}) to get {what}")
        return caller

    def proxy(self, caller: str | None, name: str, role: str | None) -> str:
        """The proxy filed under owner name ``name`` with ``role`` (None: no role)."""
        self._allow(caller, self.settings.proxy_users, "p", "a proxy")
        if role is not None and not _ROLE.fullmatch(role):
            raise CredentialRefused(SC_NOT_FOUND, f"'proxy' not found for {name}: role {role!r} is not a role name")
        # ":" separates the role in the file name, so a name with one could only find another owner's proxy
        text = self.proxies.read(name + (f":{role}" if role else "")) if ":" not in name else None
        if text is None:
            raise CredentialRefused(SC_NOT_FOUND, f"'proxy' not found for {name}" + (f" with role {role}" if role else ""))
        return text

    def access_token(self, caller: str | None, client_name: str, token_key: str | None) -> str:
        """The access token of ``client_name``; clients in ``token_key_clients`` need one of their token keys."""
        self._allow(caller, self.settings.proxy_users, "p", "an access token")
        name = client_name.strip()
        if name in self.settings.token_key_clients and (token_key is None or token_key not in self._token_keys(name)):
            raise CredentialRefused(SC_INVALID, f"failed since token key is invalid for {name}")
        text = self.tokens.read(name)
        if text is None:
            raise CredentialRefused(SC_NOT_FOUND, f"'token' not found for {name}")
        return text.strip()

    def _token_keys(self, client_name: str) -> list[str]:
        text = self.token_keys.read(client_name)
        return [line.strip() for line in (text or "").splitlines() if line.strip()]

    def token_key(self, caller: str | None, client_name: str) -> str:
        """The newest token key of ``client_name`` (the first line of its file)."""
        self._allow(caller, self.settings.token_key_users, "t", "a token key")
        keys = self._token_keys(client_name)
        if not keys:
            raise CredentialRefused(SC_MISSING_KEY, f"token key is missing for '{client_name}'")
        return keys[0]

    def key_pair(self, caller: str | None, public_key_name: str, private_key_name: str) -> tuple[str, str]:
        """The two named keys of a key pair."""
        self._allow(caller, self.settings.key_pair_users, "k", "a key pair")
        found = []
        for name in (public_key_name, private_key_name):
            text = self.keys.read(name)
            if text is None:
                raise CredentialRefused(SC_MISSING_KEY, f"failed for '{caller}' since {name} is missing")
            found.append(text)
        return found[0], found[1]

