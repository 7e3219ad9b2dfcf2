"""Bytes in, parameters out; results in, bytes out — every wire quirk of the real clients lives here.

Requests: query strings, form and multipart bodies, JSON bodies (gzip with or without the header,
since the pilot gzips without saying so). Replies: the legacy urlencoded/JSON/plain forms and the v1
JSON envelope.
"""

from __future__ import annotations

import io
import json
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from falcon.media.multipart import MultipartFormHandler

from pandasrv.taskbuffer.wire import json_default

GZIP_MAGIC = b"\x1f\x8b"
JSON_TYPE = "application/json"


class BadRequest(Exception):
    """The request cannot be read; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart body."""

    filename: str
    data: bytes


@dataclass(frozen=True)
class Raw:
    """A legacy reply sent exactly as given (plain text, pickle bytes, a file)."""

    body: bytes | str
    content_type: str = "text/plain"
    status: int = 200


@dataclass(frozen=True)
class Protocol:
    """A legacy dispatcher reply: a flat dict sent urlencoded, or JSON when the client asks for it."""

    data: dict[str, Any]
    json: bool | None = None  # None: follow the Accept header; True/False: always that form


def ok(data: Any = None, message: str = "") -> dict[str, Any]:
    return {"success": True, "message": message, "data": data}


def fail(message: str, data: Any = None) -> dict[str, Any]:
    return {"success": False, "message": message, "data": data}


# --- requests ----------------------------------------------------------------------------------------

def read_body(stream: Any, content_length: int | None, limit: int) -> bytes:
    """Read at most ``limit`` bytes; a longer body is refused before or while reading it."""
    if content_length is not None and content_length > limit:
        raise BadRequest(f"request body too large: {content_length} bytes > max_body_bytes {limit}", 413)
    if content_length == 0:
        return b""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(min(1 << 20, limit + 1 - size) if content_length is None else min(1 << 20, content_length - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"request body too large: more than max_body_bytes {limit} bytes", 413)
        if content_length is not None and size >= content_length:
            break
    return b"".join(chunks)


MAX_DEPTH = 32
ITEM_BYTES = 8  # what one decoded item (list element, dict key or value) is charged against the byte limit
_SEQUENCES = (list, tuple, set, frozenset)
_ATOMS = (str, bytes, int, float, bool, type(None))


def check_decoded(value: Any, limit: int, what: str = "request") -> Any:
    """Refuse a decoded value deeper than MAX_DEPTH or larger, fully expanded, than ``limit`` allows.

    Expanded means every shared reference counted again, as ``str()`` or the database would see it: a
    pickle can reuse one list a million times in a few bytes. Text counts its length, every other item
    ITEM_BYTES, so nothing decoded is bigger than a body of ``limit`` bytes written out in full could be.
    Walked level by level, so the cost stays linear in what is accepted: a level is charged as a whole
    before its items are looked at, and the limit is checked whenever the next level grows (a shared list
    expanded again), so no level ever holds more than ``limit / ITEM_BYTES`` items. Text only adds to the
    count, checked once the level is done (a submission's level is mostly short strings).
    """
    level, depth, size = [value], 0, 0
    while level:
        if depth > MAX_DEPTH:
            raise BadRequest(f"{what} is nested more than {MAX_DEPTH} levels deep")
        size += ITEM_BYTES * len(level)
        below: list[Any] = []
        for item in level:
            kind = type(item)
            if kind is str or kind is bytes:
                size += len(item)
                continue
            if kind in _SEQUENCES:
                below.extend(item)
            elif kind is dict:
                below.extend(item)
                below.extend(item.values())
            elif not isinstance(item, _ATOMS) and hasattr(kind, "__getstate__") and kind.__module__.startswith("pandasrv"):
                below.append(item.__getstate__())  # JobSpec / FileSpec
            else:
                continue
            if size + len(below) * ITEM_BYTES > limit:
                break
        if size + len(below) * ITEM_BYTES > limit:
            raise BadRequest(f"{what} is too large once decoded: more than max_body_bytes {limit} bytes", 413)
        level, depth = below, depth + 1
    return value


def loads_json(text: str | bytes, limit: int, what: str = "JSON") -> Any:
    """``json.loads`` bounded like every decoded value; deep nesting is a BadRequest, never a RecursionError."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise BadRequest(f"{what} is nested more than {MAX_DEPTH} levels deep") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"received invalid JSON : {what} is not valid JSON: {exc}") from None
    return check_decoded(data, limit, what)


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress with the same bound as raw bodies, so a small gzip bomb cannot blow up memory."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(data, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"received invalid gzip body: {exc}") from None
    if len(out) > limit or decompressor.unconsumed_tail:
        raise BadRequest(f"request body too large once decompressed: more than max_body_bytes {limit} bytes", 413)
    return out


def query_params(query: str) -> dict[str, Any]:
    """``parse_qsl`` with blanks kept; a key given several times becomes a list."""
    params: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="surrogateescape"):
        if key in params:
            previous = params[key]
            params[key] = previous + [value] if isinstance(previous, list) else [previous, value]
        else:
            params[key] = value
    return params


def _json_body(body: bytes, legacy: bool, limit: int) -> dict[str, Any]:
    if body.startswith(GZIP_MAGIC):
        body = gunzip(body, limit)
    if not body.strip():
        return {}
    data = loads_json(body, limit, "the JSON body")
    if not isinstance(data, dict):
        raise BadRequest("received invalid JSON : the body must be a JSON object")
    if legacy:
        data = {k: ("True" if v is True else "False" if v is False else v) for k, v in data.items()}
    return data


def _multipart(body: bytes, content_type: str) -> tuple[dict[str, Any], dict[str, Upload]]:
    params: dict[str, Any] = {}
    files: dict[str, Upload] = {}
    handler = MultipartFormHandler()
    try:
        form = handler.deserialize(io.BytesIO(body), content_type, len(body))
        for part in form:
            data = part.stream.read()
            name = part.name or ""
            if part.filename:
                files.setdefault(name, Upload(part.filename, data))
            else:
                params.setdefault(name, data.decode("utf-8", "surrogateescape"))
    except Exception as exc:  # falcon raises MediaMalformedError and friends
        raise BadRequest(f"received invalid multipart body: {getattr(exc, 'description', None) or exc}") from None
    return params, files


def decode_params(method: str, content_type: str, content_encoding: str, query: str, body: bytes,
                  legacy: bool, limit: int) -> tuple[dict[str, Any], dict[str, Upload], set[str]]:
    """All request parameters as one dict (query string first, body values win), uploaded files, and
    the names whose values came typed from a JSON body (the others are strings to be cast)."""
    params = query_params(query)
    files: dict[str, Upload] = {}
    json_keys: set[str] = set()
    if not body:
        return params, files, json_keys
    if "gzip" in content_encoding.lower():
        body = gunzip(body, limit)
    mime = content_type.split(";")[0].strip().lower()
    if mime == JSON_TYPE:
        decoded = _json_body(body, legacy, limit)
        params.update(decoded)
        json_keys.update(decoded)
    elif mime == "multipart/form-data":
        form, files = _multipart(body, content_type)
        params.update(form)
    elif method in ("POST", "PUT"):
        if body.startswith(GZIP_MAGIC):
            body = gunzip(body, limit)
        params.update(query_params(body.decode("utf-8", "surrogateescape")))
    return params, files, json_keys


# --- replies -------------------------------------------------------------------------------------------

def to_json(value: Any) -> bytes:
    return json.dumps(value, default=json_default).encode()


def _urlencoded(data: dict[str, Any]) -> bytes:
    return urlencode({k: str(v) for k, v in data.items()}).encode()


def encode_legacy(result: Any, accept_json: bool) -> tuple[int, str, bytes]:
    """(status, content type, body) of a legacy reply."""
    if isinstance(result, Protocol):
        as_json = accept_json if result.json is None else result.json
        if as_json:
            return 200, JSON_TYPE, to_json(result.data)
        return 200, "text/plain", _urlencoded(result.data)
    if isinstance(result, Raw):
        body = result.body.encode() if isinstance(result.body, str) else result.body
        return result.status, result.content_type, body
    if isinstance(result, bool):
        return 200, "text/plain", str(result).encode()
    if isinstance(result, bytes):
        return 200, "text/plain", result
    if isinstance(result, str):
        return 200, "text/plain", result.encode()
    return 200, JSON_TYPE, to_json(result)


def encode_v1(result: Any) -> tuple[int, str, bytes]:
    if isinstance(result, Raw):
        body = result.body.encode() if isinstance(result.body, str) else result.body
        return result.status, result.content_type, body
    return 200, JSON_TYPE, to_json(result)
