"""Calls that need no database on their hot path: liveness, server attributes, the upload cache.

Uploaded files land in ``cache_dir`` under their base name and are served back at ``/cache/<name>``;
that is also how a local user ships a payload script to the pilot (name it by its ``/cache/<name>``
URL as the job's transformation). Registering a sandbox in the database is best effort: an upload
succeeds even when the database is unavailable.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

import falcon

from pandasrv.config import Settings
from pandasrv.taskbuffer.errors import DBError
from pandasrv.web.codecs import BadRequest, fail, ok
from pandasrv.web.context import Call
from pandasrv.web.registry import endpoint

log = logging.getLogger("pandasrv.web.utils")

SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,254}$")
OVERWRITE_SUFFIX = ".__ow__"
_ENVIRONMENT_KEYS = ("REQUEST_METHOD", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR",
                     "HTTP_USER_AGENT", "HTTP_ACCEPT", "CONTENT_TYPE", "HTTP_ORIGIN", "SSL_CLIENT_S_DN", "wsgi.url_scheme")


def safe_name(name: str) -> str:
    """A plain file name (no directories, no leading dot); anything else is refused."""
    if not SAFE_NAME.match(name or "") or ".." in name:
        raise BadRequest(f"invalid file name {name!r}: use letters, digits and . _ + - only")
    return name


def crc32_of(data: bytes) -> int:
    """The CRC panda-client sends to validate_cache_file: a gzip file's footer, else zlib.crc32."""
    if data[:2] == b"\x1f\x8b" and len(data) >= 18:
        return struct.unpack("<I", data[-8:-4])[0]
    return zlib.crc32(data)


def store_upload(call: Call, filename: str, data: bytes, overwrite: bool = False) -> str:
    """Write an upload to ``cache_dir/<basename>``; returns the stored name. Never overwrites by accident."""
    settings = call.settings
    name = os.path.basename(filename.replace("\\", "/"))
    if name.endswith(OVERWRITE_SUFFIX):
        name, overwrite = name[: -len(OVERWRITE_SUFFIX)], True
    safe_name(name)
    limit = settings.max_sandbox_bytes if name.startswith("sources.") else settings.max_upload_bytes
    if len(data) > limit:
        raise BadRequest(f"file {name} is too large: {len(data)} bytes > {limit}")
    directory = Path(settings.cache_dir)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".upload-", delete=False) as handle:
        handle.write(data)
    try:
        if overwrite:
            os.replace(handle.name, target)
        else:
            try:
                os.link(handle.name, target)  # atomic "create if absent"
            except FileExistsError:
                raise BadRequest(f"cannot overwrite file {name}; upload it as {name}{OVERWRITE_SUFFIX} to replace it") from None
    finally:
        if os.path.exists(handle.name):
            os.unlink(handle.name)
    try:
        call.tb.register_sandbox_file(name, len(data), str(crc32_of(data)), socket.getfqdn(), call.identity.dn)
    except DBError as exc:
        log.warning("sandbox %s stored but not registered: %s", name, exc)
    return name


def _upload(call: Call) -> tuple[str, bytes]:
    upload = call.files.get("file")
    if upload is None:
        raise BadRequest("no file part named 'file' in the multipart body")
    return upload.filename, upload.data


@endpoint("isAlive", db=False)
def isAlive(call: Call) -> str:
    """Liveness probe: ``alive=yes``."""
    return "alive=yes"


@endpoint("getServer", db=False)
def getServer(call: Call) -> str:
    """``host:port`` clients should use for this server."""
    settings = call.settings
    return f"{settings.advertised_host or settings.host}:{settings.advertised_port or settings.port}"


@endpoint("putFile", role="user", denied=lambda m: f"ERROR: {m}")
def putFile(call: Call, file: Any = None) -> str:
    """Upload a file (multipart field ``file``) into the cache; reply ``True`` or ``ERROR: ...``."""
    try:
        store_upload(call, *_upload(call))
    except BadRequest as exc:
        return f"ERROR: {exc}"
    return "True"


@endpoint("system/is_alive", http=("GET",), db=False)
def is_alive(call: Call) -> dict[str, Any]:
    """Liveness probe."""
    return ok(message="alive")


@endpoint("system/get_attributes", http=("GET",), db=False)
def get_attributes(call: Call) -> dict[str, Any]:
    """Who the server thinks the caller is, and the request environment it saw."""
    identity = call.identity
    data = {"dn": identity.dn, "user": identity.user, "fqans": list(identity.fqans), "secure": identity.secure,
            "production": call.is_production(), "environment": {k: str(v) for k, v in call.environ.items()
                                                               if k in _ENVIRONMENT_KEYS}}
    return ok(data)


@endpoint("file_server/upload_cache_file", role="user", http=("POST",))
def upload_cache_file(call: Call, file: Any = None, overwrite: bool = False) -> dict[str, Any]:
    """Upload a sandbox (multipart field ``file``; the client's path is cut to its base name)."""
    name = store_upload(call, *_upload(call), overwrite=overwrite)
    return ok(message=f"stored {name}")


@endpoint("file_server/validate_cache_file", role="user", http=("POST",))
def validate_cache_file(call: Call, file_size: int, checksum: int | str) -> dict[str, Any]:
    """Tell a client whether an identical sandbox is already cached (``FOUND:<host>:<name>``)."""
    found = call.tb.find_sandbox_file(file_size, str(checksum))
    if found and (Path(call.settings.cache_dir) / found["fileName"]).is_file():
        return ok(message=f"FOUND:{found['hostName']}:{found['fileName']}")
    return fail("NOT FOUND")


class CacheFile:
    """GET ``/cache/<name>``: a file of the upload cache."""

    def __init__(self, settings: Settings) -> None:
        self.directory = Path(settings.cache_dir)

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        try:
            safe_name(name)
        except BadRequest as exc:
            raise falcon.HTTPForbidden(title=str(exc)) from None
        path = self.directory / name
        if not path.is_file():
            raise falcon.HTTPNotFound(title=f"{name} not found")
        resp.content_type = "application/octet-stream"
        resp.data = path.read_bytes()
