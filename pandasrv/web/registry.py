"""The one table of callable methods: routing whitelist, parameter binding and the OpenAPI document.

A handler is registered once with ``@endpoint(...)``; its Python signature is the parameter list
(names, types, defaults), so what the server accepts, what it casts and what it documents can never
drift apart. Anything not registered here is forbidden.
"""

from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

Role = Literal["any", "user", "production", "pilot"]
LEGACY = "panda"


@dataclass(frozen=True)
class Param:
    name: str
    annotation: Any
    default: Any
    required: bool


@dataclass(frozen=True)
class Method:
    """One entry of the whitelist. ``module`` is ``panda`` for ``/server/panda/<name>``."""

    module: str
    name: str
    handler: Callable[..., Any]
    params: tuple[Param, ...]
    role: Role
    http: tuple[str, ...]
    sync: bool
    summary: str
    denied: Callable[[str], Any] | None = None
    accepts_any: bool = False
    db: bool = True

    @property
    def legacy(self) -> bool:
        return self.module == LEGACY

    @property
    def path(self) -> str:
        return f"/server/panda/{self.name}" if self.legacy else f"/api/v1/{self.module}/{self.name}"


@dataclass
class Registry:
    methods: dict[tuple[str, str], Method] = field(default_factory=dict)

    def add(self, method: Method) -> None:
        key = (method.module, method.name)
        if key in self.methods:
            raise ValueError(f"method {method.path} registered twice")
        self.methods[key] = method

    def find(self, module: str, name: str) -> Method | None:
        return self.methods.get((module, name))

    def __iter__(self):
        return iter(sorted(self.methods.values(), key=lambda m: (m.module != LEGACY, m.module, m.name)))


REGISTRY = Registry()


def _params_of(handler: Callable[..., Any]) -> tuple[tuple[Param, ...], bool]:
    hints = typing.get_type_hints(handler)
    params: list[Param] = []
    accepts_any = False
    for index, p in enumerate(inspect.signature(handler).parameters.values()):
        if index == 0:
            continue  # the Call context
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            accepts_any = True
            continue
        required = p.default is inspect.Parameter.empty
        params.append(Param(p.name, hints.get(p.name, Any), None if required else p.default, required))
    return tuple(params), accepts_any


def endpoint(
    path: str,
    *,
    role: Role = "any",
    http: tuple[str, ...] = ("GET", "POST"),
    sync: bool = True,
    denied: Callable[[str], Any] | None = None,
    db: bool = True,
    registry: Registry = REGISTRY,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``handler(call, **params)`` under ``path`` = ``<legacyName>`` or ``<module>/<name>``.

    ``role`` is checked by the application before the handler runs; ``denied(message)`` builds the
    reply a refused caller gets when the method has its own refusal form (dispatcher StatusCode=60).
    A handler that takes ``**extra`` receives the undeclared parameters too (bulk pass-through).
    ``db=False`` marks a method that must work without the database (no ban lookup either).
    """

    def register(handler: Callable[..., Any]) -> Callable[..., Any]:
        module, _, name = path.rpartition("/")
        params, accepts_any = _params_of(handler)
        summary = (inspect.getdoc(handler) or "").split("\n\n")[0].replace("\n", " ")
        registry.add(Method(module or LEGACY, name, handler, params, role, tuple(http), sync, summary,
                            denied, accepts_any, db))
        return handler

    return register


# --- types ---------------------------------------------------------------------------------------

class ParamError(ValueError):
    """A parameter has the wrong type or cannot be cast; the message names the parameter."""


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """Return (inner type, optional?) for ``X | None``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _cast_scalar(name: str, kind: Any, value: Any) -> Any:
    if kind is Any or kind is object:
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no", ""):
            return False
        raise ParamError(f"Type error: {name} must be a boolean, got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise ParamError(f"Type error: {name} must be an integer, got {value!r}")
        try:
            return int(float(value)) if isinstance(value, str) else int(value)
        except (TypeError, ValueError):
            raise ParamError(f"Type error: {name} must be an integer, got {value!r}") from None
    if kind is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ParamError(f"Type error: {name} must be a number, got {value!r}") from None
    if kind is str:
        return value if isinstance(value, str) else str(value)
    return value


def cast_query(name: str, annotation: Any, value: Any) -> Any:
    """Cast a query-string value (or list of them) to the declared type, as v1 GET does."""
    kind, optional = _unwrap(annotation)
    if value == "None" and (optional or kind is not str):
        return None
    origin = typing.get_origin(kind)
    if origin is list:
        (item,) = typing.get_args(kind) or (Any,)
        values = value if isinstance(value, list) else [value]
        if len(values) == 1 and isinstance(values[0], str) and "," in values[0] and item is int:
            values = values[0].split(",")
        return [_cast_scalar(name, item, v) for v in values]
    if origin is dict or kind is dict:
        raise ParamError(f"Type error: {name} cannot be given in a query string")
    if isinstance(value, list):
        value = value[-1]
    return _cast_scalar(name, kind, value)


def check_json(name: str, annotation: Any, value: Any) -> Any:
    """A JSON body value must already have the declared type (ints are accepted for floats)."""
    kind, optional = _unwrap(annotation)
    if value is None:
        if optional:
            return None
        raise ParamError(f"Type error: {name} must not be null")
    origin = typing.get_origin(kind) or kind
    expected: dict[Any, tuple[type, ...]] = {
        int: (int,), float: (int, float), str: (str,), bool: (bool,), list: (list,), dict: (dict,)}
    if origin in expected:
        ok = isinstance(value, expected[origin]) and not (origin in (int, float) and isinstance(value, bool))
        if not ok:
            raise ParamError(f"Type error: {name} must be {_type_name(kind)}, got {type(value).__name__}")
        if origin is list:
            (item,) = typing.get_args(kind) or (Any,)
            for element in value:
                check_json(f"{name}[]", item, element)
    return value


def _type_name(kind: Any) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "a boolean"}.get(
        kind, "a list" if typing.get_origin(kind) is list else "an object")


def json_schema(annotation: Any) -> dict[str, Any]:
    kind, optional = _unwrap(annotation)
    origin = typing.get_origin(kind) or kind
    simple = {int: "integer", float: "number", str: "string", bool: "boolean", dict: "object"}
    if origin in simple:
        schema: dict[str, Any] = {"type": simple[origin]}
    elif origin is list:
        (item,) = typing.get_args(kind) or (Any,)
        schema = {"type": "array", "items": json_schema(item)}
    else:
        schema = {}
    if optional and schema:
        schema["nullable"] = True
    return schema
