"""schemathesis against ``/api/v1/openapi.json``, in process (WSGI), on SQLite and PostgreSQL.

Fixed seed, derandomized, a bounded number of cases per operation (``PANDASRV_FUZZ_EXAMPLES``, 8 in CI,
more with ``make fuzz``), every check schemathesis has: no 5xx, statuses, content types and bodies as
documented, unsupported methods answered 405. The INTERNAL_ERROR guard of tests/conftest.py applies too.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, seed, settings
from schemathesis import checks
from schemathesis.specs.openapi import checks as _openapi_checks  # noqa: F401  (registers the OpenAPI checks)

from tests.conftest import TestDatabases, selected_backends
from tests.web.inproc import InProcess, in_process_app

EXAMPLES = int(os.environ.get("PANDASRV_FUZZ_EXAMPLES", "8"))
BACKENDS = [b for b in selected_backends() if b in ("sqlite", "postgresql")]
_apps: dict[str, InProcess] = {}
# Every check but the two that want the schema to decide 400s: parameters typed Any (pickled or JSON ids,
# job states) are refused for content no OpenAPI schema can express, and that refusal is correct.
_JUDGES_400 = {"positive_data_acceptance", "negative_data_rejection"}
CHECKS = [check for check in checks.CHECKS.get_all() if check.__name__ not in _JUDGES_400]


@pytest.fixture(scope="module", autouse=True)
def apps(test_databases: TestDatabases, tmp_path_factory: pytest.TempPathFactory):
    import contextlib

    with contextlib.ExitStack() as stack:
        for backend in BACKENDS:
            _apps[backend] = stack.enter_context(in_process_app(test_databases, backend,
                                                                tmp_path_factory.mktemp(f"fuzz-{backend}")))
        yield _apps
    _apps.clear()


def _wsgi(environ, start_response):
    """Dispatch to the app of the backend under test (schemathesis needs the app when the module loads)."""
    return _apps[environ.get("HTTP_X_FUZZ_BACKEND", BACKENDS[0])].app(environ, start_response)


def _schema_text() -> dict:
    import falcon.testing

    from pandasrv.config import load_settings
    from pandasrv.web.app import create_app

    app = create_app(load_settings(access_log=False))
    return falcon.testing.TestClient(app).simulate_get("/api/v1/openapi.json").json


schema = schemathesis.openapi.from_dict(_schema_text())
schema.app = _wsgi  # noqa: B010 - from_dict + app: every case is called in process


@pytest.mark.parametrize("backend", BACKENDS)
@schema.parametrize()
@seed(20261202)
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_openapi_fuzz(case, backend):
    case.headers = {**(case.headers or {}), "X-Fuzz-Backend": backend}
    response = case.call(app=_wsgi, environ_overrides={"REMOTE_ADDR": "127.0.0.1"})
    case.validate_response(response, checks=CHECKS)
