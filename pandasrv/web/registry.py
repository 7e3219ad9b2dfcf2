"""The one table of callable methods: routing whitelist, parameter binding and the OpenAPI document.

A handler is registered once with ``@endpoint(...)``; its Python signature is the parameter list
(names, types, defaults), so what the server accepts, what it casts and what it documents can never
drift apart. Anything not registered here is forbidden.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Iterator, Literal, TypeVar

from pandasrv.taskbuffer.wire import INT64

Role = Literal["any", "user", "production", "pilot"]
LEGACY = "panda"
H = TypeVar("H", bound=Callable[..., Any])  # a handler keeps its own type when registered


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

    def __iter__(self) -> Iterator[Method]:
        return iter(sorted(self.methods.values(), key=lambda m: (m.module != LEGACY, m.module, m.name)))


REGISTRY = Registry()


def _params_of(handler: Callable[..., Any]) -> tuple[tuple[Param, ...], bool]:
    hints = typing.get_type_hints(handler, include_extras=True)
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
) -> Callable[[H], H]:
    """Register ``handler(call, **params)`` under ``path`` = ``<legacyName>`` or ``<module>/<name>``.

    ``role`` is checked by the application before the handler runs; ``denied(message)`` builds the
    reply a refused caller gets when the method has its own refusal form (dispatcher StatusCode=60).
    A handler that takes ``**extra`` receives the undeclared parameters too (bulk pass-through).
    ``db=False`` marks a method that must work without the database (no ban lookup either).
    """

    def register(handler: H) -> H:
        module, _, name = path.rpartition("/")
        params, accepts_any = _params_of(handler)
        summary = (inspect.getdoc(handler) or "").split("\n\n")[0].replace("\n", " ")
        registry.add(Method(module or LEGACY, name, handler, params, role, tuple(http), sync, summary,
                            denied, accepts_any, db))
        return handler

    return register


# --- types: the one place where request values become handler arguments -------------------------

class ParamError(ValueError):
    """A parameter has the wrong type or cannot be cast; the message names the parameter."""


INT64_MIN, INT64_MAX = INT64
LOOSE = "loose"
# PanDA's pilot numbers: a non-number (``""``, ``NULL``) means "not given", but a number must fit 64 bits.
LooseInt = Annotated[int | None, LOOSE]
_INTEGER = re.compile(r"[+-]?[0-9]+")


@functools.lru_cache(maxsize=1024)
def _unwrap(annotation: Any) -> tuple[Any, bool, bool]:
    """Return (inner type, optional?, loose?) for ``Annotated[X | None, LOOSE]`` and plain ``X | None``.

    Cached: handlers' annotations are few and hashable, and taking them apart on every parameter of every
    request was about half of ``bind`` (≈ 7 µs per parameter, 25 parameters for a getJob)."""
    loose = False
    if typing.get_origin(annotation) is Annotated:
        loose = LOOSE in annotation.__metadata__
        annotation = annotation.__origin__
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = tuple(a for a in typing.get_args(annotation) if a is not type(None))
        optional = len(args) < len(typing.get_args(annotation))
        if len(args) == 1:
            return args[0], optional, loose
        return typing.Union[args], optional, loose  # noqa: UP007 - a runtime union of the remaining types
    return annotation, False, loose


def _type_name(kind: Any) -> str:
    return {int: "a 64-bit integer", float: "a finite number", str: "a string", bool: "a boolean",
            dict: "an object"}.get(kind, "a list" if typing.get_origin(kind) is list else "a value")


def _refuse(name: str, kind: Any, value: Any) -> ParamError:
    shown = repr(value) if isinstance(value, (str, int, float, bool)) else type(value).__name__
    return ParamError(f"Type error: {name} must be {_type_name(kind)}, got {shown[:100]}")


def _text(name: str, value: str) -> str:
    """Text that every database can store: no NUL character and no lone surrogate (undecodable bytes)."""
    if "\x00" in value:
        raise ParamError(f"Type error: {name} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ParamError(f"Type error: {name} must be valid UTF-8 text") from None
    return value


def _int(name: str, value: Any, typed: bool) -> int:
    if isinstance(value, bool) or (typed and not isinstance(value, int)):
        raise _refuse(name, int, value)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii():
        text = value.strip()
        if _INTEGER.fullmatch(text):
            number = int(text)
        else:  # PanDA's int(float(x)) for "1.0" and "1e3"
            try:
                real = float(text)
            except ValueError:
                raise _refuse(name, int, value) from None
            if not math.isfinite(real):
                raise _refuse(name, int, value)
            number = int(real)
    else:
        raise _refuse(name, int, value)
    if not INT64_MIN <= number <= INT64_MAX:
        raise _refuse(name, int, value)
    return number


def _float(name: str, value: Any, typed: bool) -> float:
    if isinstance(value, bool) or (typed and not isinstance(value, (int, float))):
        raise _refuse(name, float, value)
    if isinstance(value, str) and not value.isascii():
        raise _refuse(name, float, value)
    try:
        real = float(value)
    except (TypeError, ValueError, OverflowError):
        raise _refuse(name, float, value) from None
    if not math.isfinite(real):
        raise _refuse(name, float, value)
    return real


def _bool(name: str, value: Any, typed: bool) -> bool:
    if isinstance(value, bool):
        return value
    if not typed and isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no", ""):
            return False
    raise _refuse(name, bool, value)


def _str(name: str, value: Any, typed: bool) -> str:
    if not isinstance(value, str):
        raise _refuse(name, str, value)
    return _text(name, value)


_SCALARS: dict[Any, Callable[[str, Any, bool], Any]] = {int: _int, float: _float, bool: _bool, str: _str}


def convert(name: str, annotation: Any, value: Any, typed: bool) -> Any:
    """Convert and range-check one request value against its declared type, or raise ParamError.

    ``typed`` values come from a JSON body and must already have the declared JSON type; the others are
    query or form strings (a list of them when a key is repeated). Integers are 64-bit and written in
    ASCII digits, numbers are finite, strings are storable text; ``Any`` passes through unchanged.
    """
    kind, optional, loose = _unwrap(annotation)
    if value is None or (not typed and value == "None" and (optional or kind is not str)):
        if optional or kind is Any:
            return None
        raise ParamError(f"Type error: {name} must not be null")
    if kind is Any or kind is object:
        return value
    origin = typing.get_origin(kind) or kind
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(kind):
            try:
                return convert(name, member, value, typed)
            except ParamError:
                continue
        raise ParamError(f"Type error: {name} has an unexpected type ({type(value).__name__})")
    if origin is list:
        (item,) = typing.get_args(kind) or (Any,)
        if typed:
            if not isinstance(value, list):
                raise _refuse(name, kind, value)
            values = value
        else:
            values = value if isinstance(value, list) else [value]
            if len(values) == 1 and isinstance(values[0], str) and "," in values[0] and item is int:
                values = values[0].split(",")
        return [convert(f"{name}[]", item, v, typed) for v in values]
    if origin is dict:
        if not (typed and isinstance(value, dict)):
            raise ParamError(f"Type error: {name} must be an object in a JSON body")
        return value
    if not typed and isinstance(value, list):
        value = value[-1]  # a repeated query key: the last one wins
    scalar = _SCALARS.get(origin)
    if scalar is None:
        return value
    if loose and not typed and origin is int:
        try:
            return _int(name, value, typed)
        except ParamError:
            if isinstance(value, str) and _looks_numeric(value):
                raise
            return None
    return scalar(name, value, typed)


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def json_schema(annotation: Any) -> dict[str, Any]:
    """The OpenAPI schema of a declared type, with the bounds ``convert`` enforces."""
    kind, optional, loose = _unwrap(annotation)
    origin = typing.get_origin(kind) or kind
    if origin is int:
        schema: dict[str, Any] = {"type": "integer", "format": "int64", "minimum": INT64_MIN, "maximum": INT64_MAX}
    elif origin in (float, str, bool, dict):
        schema = {"type": {float: "number", str: "string", bool: "boolean", dict: "object"}[origin]}
    elif origin is list:
        (item,) = typing.get_args(kind) or (Any,)
        schema = {"type": "array", "items": json_schema(item)}
    elif origin in (typing.Union, types.UnionType):
        schema = {"anyOf": [json_schema(member) for member in typing.get_args(kind)]}
    else:
        schema = {}
    if optional and schema:
        schema["nullable"] = True
    return schema
