"""A property-based fuzzer for the legacy ``/server/panda/*`` methods, in process: for every registered
legacy method, values drawn from each parameter's declared type and from every other JSON shape, sent
form-encoded and as (sometimes gzipped) JSON. Nothing may be answered 5xx (the INTERNAL_ERROR guard of
tests/conftest.py applies too). ``PANDASRV_FUZZ_EXAMPLES`` scales it (``make fuzz``)."""

from __future__ import annotations

import gzip
import json
import os
import typing
from typing import Any, Iterator
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from pandasrv.web.registry import REGISTRY, _unwrap
from tests.conftest import selected_backends
from tests.web.inproc import InProcess, in_process_app

EXAMPLES = 5 * int(os.environ.get("PANDASRV_FUZZ_EXAMPLES", "8"))
LEGACY = [method for method in REGISTRY if method.legacy]

_numbers = st.one_of(st.integers(), st.integers(min_value=2**63 - 2, max_value=2**80), st.floats(),
                     st.sampled_from(["1e999", "nan", "-0", "\u00b9", "\u0661", "0x10", " 7 ", "NULL", ""]))
_text = st.one_of(st.text(max_size=40), st.sampled_from(["NULL", "None", "\x00", "\udcff", "[1]", "(lp0\nI1\na.", "{}"]))
_json_values = st.recursive(st.one_of(st.none(), st.booleans(), _numbers, _text),
                            lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                    st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                            max_leaves=12)


def _values_for(annotation: Any) -> st.SearchStrategy[Any]:
    kind, _, _ = _unwrap(annotation)
    origin = typing.get_origin(kind) or kind
    typed = {int: _numbers, float: _numbers, str: _text, bool: st.sampled_from(["True", "False", "maybe", 1])}
    return st.one_of(typed.get(origin, _text), _json_values)


def _requests(method) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={p.name: _values_for(p.annotation) for p in method.params})


@pytest.fixture(scope="module", params=[b for b in selected_backends() if b in ("sqlite", "postgresql")])
def app(request, test_databases, tmp_path_factory) -> Iterator[InProcess]:
    with in_process_app(test_databases, request.param, tmp_path_factory.mktemp("legacy-fuzz")) as running:
        yield running


def _as_form(values: dict[str, Any]) -> str:
    return urlencode({k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()},
                     errors="surrogateescape")


@pytest.mark.parametrize("method", LEGACY, ids=[m.name for m in LEGACY])
def test_legacy_fuzz(app, method):
    @seed(20261202)
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(values=_requests(method), transport=st.sampled_from(["form", "json", "gzip-json", "query"]))
    def check(values: dict[str, Any], transport: str) -> None:
        if transport == "query":
            result = app.request("GET", method.path, query_string=_as_form(values))
        elif transport == "form":
            result = app.request("POST", method.path, body=_as_form(values),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
        else:
            body = json.dumps(values).encode("utf-8", "surrogatepass")
            result = app.request("POST", method.path, body=gzip.compress(body) if transport == "gzip-json" else body,
                                 headers={"Content-Type": "application/json"})
        assert result.status_code < 500, (method.name, transport, values, result.text[:300])

    check()
