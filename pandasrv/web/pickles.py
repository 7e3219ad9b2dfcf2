"""Legacy pickle protocol 0, read through an allow-list and written under PanDA's class names.

Old clients send JobSpecs and id lists as protocol-0 pickles and unpickle our replies with their own
``pandaserver.taskbuffer.JobSpec`` classes. Unpickling runs code named by the data, so only the few
globals below are ever resolved; anything else is refused before it is imported.
"""

from __future__ import annotations

import _codecs
import copyreg
import datetime
import io
import pickle
from decimal import Decimal
from typing import Any

from pandasrv.config import Settings
from pandasrv.taskbuffer.file_spec import FileSpec
from pandasrv.taskbuffer.job_spec import JobSpec
from pandasrv.web.codecs import BadRequest, check_decoded

_JOB_NAMES = ("pandaserver.taskbuffer.JobSpec", "taskbuffer.JobSpec", "pandasrv.taskbuffer.job_spec")
_FILE_NAMES = ("pandaserver.taskbuffer.FileSpec", "taskbuffer.FileSpec", "pandasrv.taskbuffer.file_spec")

ALLOWED: dict[tuple[str, str], Any] = {
    **{(m, "JobSpec"): JobSpec for m in _JOB_NAMES},
    **{(m, "FileSpec"): FileSpec for m in _FILE_NAMES},
    ("copy_reg", "_reconstructor"): copyreg._reconstructor,  # type: ignore[attr-defined]  # private, not in the stubs
    ("copyreg", "_reconstructor"): copyreg._reconstructor,  # type: ignore[attr-defined]
    ("__builtin__", "object"): object,
    ("builtins", "object"): object,
    ("datetime", "datetime"): datetime.datetime,
    ("__builtin__", "set"): set,
    ("builtins", "set"): set,
    ("_codecs", "encode"): _codecs.encode,  # how Python 3 writes bytes (datetime state) in protocol 0
}


class PickleRefused(ValueError):
    """The data is not a pickle we accept."""


class _AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise PickleRefused(f"forbidden class in pickle: {module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise PickleRefused("persistent references are not accepted")


DEFAULT_LIMIT: int = Settings.model_fields["max_body_bytes"].default


def loads(data: bytes | str, limit: int = DEFAULT_LIMIT) -> Any:
    """Unpickle client data through the allow-list, bounded like every decoded value (shared references
    counted again, see ``codecs.check_decoded``); every failure is a PickleRefused."""
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    try:
        value = _AllowListUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except PickleRefused:
        raise
    except Exception as exc:  # truncated or corrupt data raises many different types (RecursionError too)
        raise PickleRefused(f"invalid pickle: {exc.__class__.__name__}: {exc}") from None
    try:
        return check_decoded(value, limit, "the pickle")
    except BadRequest as exc:
        raise PickleRefused(str(exc)) from None


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


_RENAMES = (
    (b"cpandasrv.taskbuffer.job_spec\nJobSpec\n", b"cpandaserver.taskbuffer.JobSpec\nJobSpec\n"),
    (b"cpandasrv.taskbuffer.file_spec\nFileSpec\n", b"cpandaserver.taskbuffer.FileSpec\nFileSpec\n"),
)


def dumps(value: Any) -> bytes:
    """Protocol 0, with our classes written under PanDA's module names.

    In protocol 0 a global is the text ``c<module>\\n<name>\\n``; string values are written with their
    newlines escaped, so the two-line pattern can only be an opcode and the rename cannot touch data.
    """
    if isinstance(value, list):
        value = [_plain(v) for v in value]
    body = pickle.dumps(value, protocol=0)
    for ours, theirs in _RENAMES:
        body = body.replace(ours, theirs)
    return body
