"""The OpenAPI 3 document, generated from the registry so it always matches what is served."""

from __future__ import annotations

from typing import Any

from pandasrv.web.registry import Method, Registry, json_schema

_ENVELOPE = {
    "type": "object",
    "properties": {"success": {"type": "boolean"}, "message": {"type": "string"}, "data": {}},
    "required": ["success", "message", "data"],
}


_MODE = {True: "Synchronous", False: "Asynchronous: answers once the request is stored"}


_TEXT = {"text/plain": {"schema": {"type": "string"}}}
_ERRORS = {
    "400": "the request cannot be read or a parameter has the wrong type or range",
    "413": "the body is larger than max_body_bytes, before or after decompression or decoding",
    "500": "a server bug (logged; the test suite fails on any)",
    "503": "the database is unavailable or the server is busy; retry after the Retry-After seconds",
}


def _responses(method: Method, reply: dict[str, Any]) -> dict[str, Any]:
    """Every status the application answers with, in the form it uses: legacy errors are ``ERROR : ...``
    text, v1 errors the JSON envelope; refusals before the method runs (403) are text in both."""
    errors = _TEXT if method.legacy else {"application/json": {"schema": _ENVELOPE}}
    responses: dict[str, Any] = {"200": {"description": "reply", "content": reply},
                                 "403": {"description": "forbidden method, failed authentication or banned user",
                                         "content": _TEXT}}
    responses.update({code: {"description": text, "content": errors} for code, text in _ERRORS.items()})
    responses["405"] = {"description": "HTTP method not supported (only those listed here are)", "content": errors}
    return responses


def _operation(method: Method, http: str) -> dict[str, Any]:
    security = {"any": "none", "user": "an identified caller", "production": "production role",
                "pilot": "pilot or production role"}[method.role]
    operation: dict[str, Any] = {
        "operationId": f"{method.module}_{method.name}_{http}",
        "summary": method.summary,
        "description": f"Requires {security}. {_MODE[method.sync]}.",
        "tags": [method.module],
    }
    if method.legacy:
        reply = {"text/plain": {"schema": {"type": "string"}}, "application/json": {"schema": {}}}
    else:
        reply = {"application/json": {"schema": _ENVELOPE}}
    operation["responses"] = _responses(method, reply)
    schemas = {p.name: json_schema(p.annotation) for p in method.params}
    if http == "get":
        operation["parameters"] = [
            {"name": p.name, "in": "query", "required": p.required, "schema": schemas[p.name]}
            for p in method.params]
    else:
        body = {"type": "object", "properties": schemas,
                "required": [p.name for p in method.params if p.required]}
        content = {"application/json": {"schema": body}}
        if method.legacy or method.module == "file_server":
            content["multipart/form-data"] = {"schema": body}
            content["application/x-www-form-urlencoded"] = {"schema": body}
        operation["requestBody"] = {"required": bool(body["required"]), "content": content}
    return operation


def openapi_document(registry: Registry, server_url: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for method in registry:
        verbs = ("GET", "POST") if method.legacy else method.http
        paths[method.path] = {verb.lower(): _operation(method, verb.lower()) for verb in verbs}
    return {
        "openapi": "3.0.3",
        "info": {"title": "pandasrv PanDA server API", "version": "1",
                 "description": "Legacy /server/panda methods (pilots, old clients) and the v1 JSON API."},
        "servers": [{"url": server_url}],
        "paths": paths,
    }
