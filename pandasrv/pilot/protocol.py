"""The legacy dispatcher protocol, spoken the way PanDA's own pilot speaks it.

The real pilot POSTs ``gzip(json)`` to ``/server/panda/<method>`` with ``Content-Type:
application/json`` but *no* ``Content-Encoding`` header, and reads the reply as JSON when it looks
like an object, otherwise as a query string. Doing exactly the same keeps this pilot a faithful
stand-in for the real one when exercising a server.
"""

from __future__ import annotations

import gzip
import json
from typing import Any
from urllib.parse import parse_qs

import httpx

from pandasrv.client_identity import ClientIdentity

LEGACY_PATH = "/server/panda"


def encode_body(data: dict[str, Any]) -> bytes:
    return gzip.compress(json.dumps(data).encode())


def parse_reply(text: str) -> dict[str, Any]:
    """Decode a dispatcher reply: a JSON object, the literal ``Succeeded``, or a query string."""
    body = text.strip()
    if body.startswith("{"):
        reply: dict[str, Any] = json.loads(body)
        return reply
    if body == "Succeeded":
        return {"StatusCode": "0"}
    return {key: values[0] for key, values in parse_qs(body).items()}


def status_code(reply: dict[str, Any]) -> int:
    """``StatusCode`` arrives as an int (JSON) or a string (query string); a missing one is a failure."""
    try:
        return int(reply.get("StatusCode", -1))
    except (TypeError, ValueError):
        return -1


class Dispatcher:
    """One keep-alive HTTP connection to a server's legacy pilot endpoints (plus the upload cache)."""

    def __init__(self, url: str, *, timeout: float = 60.0, client: httpx.Client | None = None,
                 identity: ClientIdentity | None = None) -> None:
        self.base = url.rstrip("/")
        self.http = client or (identity or ClientIdentity()).http_client(self.base, timeout=timeout)

    def call(self, method: str, data: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(
            f"{self.base}{LEGACY_PATH}/{method}",
            content=encode_body(data),
            headers={"Content-Type": "application/json"},
        )
        response.raise_for_status()
        return parse_reply(response.text)

    def upload_cache_file(self, path: str, name: str) -> bool:
        """Put a file into the server's upload cache (panda-client's ``putFile`` request)."""
        with open(path, "rb") as handle:
            response = self.http.post(
                f"{self.base}/api/v1/file_server/upload_cache_file",
                files={"file": (name, handle, "application/octet-stream")},
                headers={"Accept": "application/json"},
            )
        if response.status_code != 200:
            return False
        try:
            return bool(response.json().get("success"))
        except ValueError:
            return False

    def cache_url(self, name: str) -> str:
        return f"{self.base}/cache/{name}"

    def download(self, url: str) -> bytes:
        response = self.http.get(url)
        response.raise_for_status()
        return response.content

    def close(self) -> None:
        self.http.close()
