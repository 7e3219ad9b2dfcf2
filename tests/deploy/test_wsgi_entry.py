"""The WSGI entry of ``pandasrv apache``: an application that cannot be built answers 503 in the protocol's form
(never mod_wsgi's HTML 500), logs why, and is built again once its settings are repaired."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pandasrv.config import load_settings
from pandasrv.deploy import wsgi
from pandasrv.metrics_dir import VARIABLE
from tests.web.helpers import write_jwks


def call(app: Any, path: str) -> tuple[str, dict[str, str], bytes]:
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer.update(status=status, headers=dict(headers))

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
               "SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(),
               "wsgi.errors": io.StringIO(), "SERVER_PROTOCOL": "HTTP/1.1"}
    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], body


def test_an_unbuildable_application_answers_503_until_it_can_be_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(VARIABLE, str(tmp_path / "metrics"))  # build() chooses it; restored after the test
    jwks = tmp_path / "missing" / "jwks.json"
    settings = load_settings(db_url=f"sqlite:///{tmp_path / 'db.sqlite'}", auth="token", token_issuer="https://i.test",
                             token_audience="a", token_jwks_file=str(jwks))
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(settings.model_dump_json())
    with caplog.at_level(logging.ERROR, logger="pandasrv.deploy.wsgi"):
        app = wsgi.load(str(settings_file))
    (line,) = [r.getMessage() for r in caplog.records if r.name == "pandasrv.deploy.wsgi"]
    assert "FileNotFoundError" in line and str(jwks) in line

    status, headers, body = call(app, "/server/panda/isAlive")
    assert status.startswith("503") and headers["Retry-After"] and body == f"ERROR : {wsgi.UNAVAILABLE}".encode()
    assert str(jwks) not in body.decode()  # the reason is for the operator's log, not for callers
    status, headers, body = call(app, "/api/v1/system/is_alive")
    assert status.startswith("503") and json.loads(body) == {"success": False, "message": wsgi.UNAVAILABLE, "data": None}

    jwks.parent.mkdir()
    write_jwks(jwks, rsa.generate_private_key(public_exponent=65537, key_size=2048), "k")
    assert call(app, "/server/panda/isAlive")[0].startswith("503")  # not retried within RETRY_SECONDS
    monkeypatch.setattr(wsgi, "RETRY_SECONDS", 0.0)
    status, _, body = call(app, "/server/panda/isAlive")
    assert status.startswith("200") and body == b"alive=yes"
