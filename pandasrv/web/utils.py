"""Calls that need no database on their hot path: liveness, server attributes, the upload cache.

Uploaded files are stored in the database under their base name (``cache_files``, so any node of a
cluster serves them) and are served back at ``/cache/<name>``; that is also how a user ships a payload
script to the pilot (name it by its ``/cache/<name>`` URL as the job's transformation). Every cached file
has an owner, the uploader's identity, and only the owner may overwrite it.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import re
import socket
import struct
import zlib
from typing import Any, Iterator

import falcon

from pandasrv.taskbuffer.errors import DBError
from pandasrv.taskbuffer.store import Store
from pandasrv.web.codecs import BadRequest, fail, ok
from pandasrv.web.context import Call, Services
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
        (crc,) = struct.unpack("<I", data[-8:-4])
        return int(crc)
    return zlib.crc32(data)


def store_upload(call: Call, filename: str, data: bytes, overwrite: bool = False) -> str:
    """Store an upload in the cache under its base name; returns the name. Never overwrites by accident, and
    never overwrites another owner's file (BadRequest with the reason, nothing changed)."""
    settings = call.settings
    name = os.path.basename(filename.replace("\\", "/"))
    if name.endswith(OVERWRITE_SUFFIX):
        name, overwrite = name[: -len(OVERWRITE_SUFFIX)], True
    safe_name(name)
    limit = settings.max_sandbox_bytes if name.startswith("sources.") else settings.max_upload_bytes
    if len(data) > limit:
        raise BadRequest(f"file {name} is too large: {len(data)} bytes > {limit}")
    owner = call.identity.user or call.identity.dn
    if not owner:
        raise BadRequest("an upload needs an authenticated identity")
    checksum = str(crc32_of(data))
    result = call.tb.store_cache_file(name, owner, data, overwrite=overwrite, checksum=checksum)
    if result == "exists":
        raise BadRequest(f"cannot overwrite file {name}; upload it as {name}{OVERWRITE_SUFFIX} to replace it")
    if result == "forbidden":
        raise BadRequest(f"cannot overwrite file {name}: it belongs to another user")
    call.tb.register_sandbox_file(name, len(data), checksum, socket.getfqdn(), call.identity.dn)
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
    if found and call.tb.cache_file_info(found["fileName"]) is not None:
        return ok(message=f"FOUND:{found['hostName']}:{found['fileName']}")
    return fail("NOT FOUND")


# Python's own table, not the machine's /etc/mime.types: every node answers the same type.
_TYPES = mimetypes.MimeTypes()


def content_type_of(name: str) -> str:
    """The type to serve a cached file with: from its name, but a compressed file stays opaque bytes (a
    ``Content-Encoding: gzip`` would make clients unpack a ``.tgz`` sandbox on download)."""
    kind, encoding = _TYPES.guess_type(name, strict=False)
    return kind if kind and not encoding else "application/octet-stream"


class CacheFile:
    """GET ``/cache/<name>``: a file of the upload cache, streamed from the database chunk by chunk."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        try:
            safe_name(name)
        except BadRequest as exc:
            raise falcon.HTTPForbidden(title=str(exc)) from None
        task_buffer = self.services.task_buffer
        try:
            info = task_buffer.cache_file_info(name)
        except DBError as exc:
            log.warning("cache %s: %s", name, exc)
            raise falcon.HTTPServiceUnavailable(title="database unavailable") from None
        if info is None:
            raise falcon.HTTPNotFound(title=f"{name} not found")
        resp.content_type = content_type_of(name)
        resp.content_length = int(info["fileSize"])
        resp.stream = _chunks(task_buffer, name, int(info["version"]), int(info["nChunks"]))


def _chunks(task_buffer: Store, name: str, version: int, n_chunks: int) -> Iterator[bytes]:
    """The chunks of one version; an overwrite or purge during the download ends it short (the client
    sees fewer bytes than Content-Length), never a mix of two uploads."""
    for seq in range(n_chunks):
        chunk = task_buffer.cache_file_chunk(name, version, seq)
        if chunk is None:
            log.warning("cache %s: version %d replaced during a download; ending it short", name, version)
            return
        yield chunk
