"""Real clients fetch credentials from pandasrv, on every backend.

- panda-client 2.2.0 keeps its user secrets (``Client.set_user_secret``, ``Client.get_user_secrets``: the v1
  ``creds/*`` calls with JSON nulls and the secrets as JSON text);
- pilot 3.7.0.36's own request code (``pilot.util.https.request``: curl with a config file of form fields,
  ``Accept: application/json``) with the data its proxy, key-pair and message-broker code sends.

The server runs as ``pandasrv serve`` (auth none: the local identity ``pandasrv`` is the caller, and is on
the proxy and key-pair lists) with a secrets key and credential folders; what the database holds afterwards
is checked to be sealed, never the value that was set."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import fresh_database, selected_backends
from tests.realclients import pilot_source, run_panda_client
from tests.web.conftest import RunningServer, start_server
from tests.web.helpers import make_job, submit, wait_status

VALUE = "broker pässword 😀"
PILOT_PROXY = "-----BEGIN CERTIFICATE-----\npilot proxy\n-----END CERTIFICATE-----\n"
# What pilot 3.7.0.36 sends, through its own request function (pilot/util/proxy.py, info/storagedata.py,
# util/activemq.py); the data dictionaries are the pilot's.
PILOT_CALLS = """
import json, sys
from pilot.util import https
from pilot.user.atlas.proxy import getproxy_dictionary
https._ctx.user_agent = "pilot/3.7.0.36"
url, port = sys.argv[1].rsplit(":", 1)
replies = [
    https.request(url + ":" + port + "/server/panda/getProxy", data=getproxy_dictionary("atlas")),
    https.request(url + ":" + port + "/server/panda/getKeyPair",
                  data={"privateKeyName": "s3-secret", "publicKeyName": "s3-access"}),
    https.request(https.get_server_command(url, int(port), cmd="set_user_secret"),
                  data={"key": "MB_USERNAME", "value": "atlpndpilot"}),
    https.request(https.get_server_command(url, int(port), cmd="get_user_secrets"),
                  data={"get_json": True, "keys": "MB_USERNAME,MB_PASSWORD"}),
]
print("@@RESULT@@" + json.dumps(replies))
"""


@pytest.fixture(scope="module", params=selected_backends())
def secrets_server(request: pytest.FixtureRequest, test_databases: Any,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    workdir = tmp_path_factory.mktemp("creds-client")
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    proxies, keys = workdir / "proxies", workdir / "keys"
    proxies.mkdir()
    keys.mkdir()
    (proxies / "atlpilo2:atlas").write_text(PILOT_PROXY)
    (keys / "s3-access").write_text("ACCESS")
    (keys / "s3-secret").write_text("SECRET")
    creds = {"secrets_key": key, "proxy_dir": str(proxies), "key_dir": str(keys), "proxy_users": ["pandasrv"],
             "key_pair_users": ["pandasrv"]}
    with fresh_database(test_databases, request.param, workdir) as db_url, \
            start_server(db_url, request.param, workdir, creds=creds) as running:
        running.add_queue("CREDS_QUEUE")
        yield running


def test_submission_is_set_up_with_a_secrets_key(secrets_server: RunningServer) -> None:
    """The Setupper helper (a child process that gets the settings as JSON) works with the key set."""
    ids = submit(secrets_server.url, [make_job("CREDS_QUEUE", "with-secrets-key")])
    wait_status(secrets_server.tb, ids, "activated")


def test_panda_client_sets_reads_and_deletes_its_secrets(secrets_server: RunningServer, tmp_path: Any) -> None:
    def client(body: str) -> Any:
        return run_panda_client(secrets_server.url, tmp_path, body)

    assert client(f"emit(Client.set_user_secret('MB_PASSWORD', {VALUE!r}))") == [0, [True, None]]
    assert client("emit(Client.set_user_secret('MB_USERNAME', 'broker user'))") == [0, [True, None]]
    assert client("emit(Client.get_user_secrets())") == [0, [True, {"MB_PASSWORD": VALUE, "MB_USERNAME": "broker user"}]]
    sealed, _ = secrets_server.tb.get_secret_row("pandasrv")
    assert VALUE not in sealed and "broker user" not in sealed and "MB_PASSWORD" not in sealed
    assert client("emit(Client.set_user_secret('MB_PASSWORD', None))") == [0, [True, None]]
    assert client("emit(Client.get_user_secrets())") == [0, [True, {"MB_USERNAME": "broker user"}]]
    assert client("emit(Client.set_user_secret(None, None))") == [0, [True, None]]
    assert client("emit(Client.get_user_secrets())") == [0, [True, {}]]
    assert secrets_server.tb.get_secret_row("pandasrv") is None
    assert VALUE not in secrets_server.log()


def test_the_pilots_own_request_code_gets_its_credentials(secrets_server: RunningServer, tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "PILOT_HOME": str(tmp_path),
           "PYTHONPATH": str(pilot_source())}
    proc = subprocess.run([sys.executable, "-c", PILOT_CALLS, secrets_server.url], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("@@RESULT@@")]
    assert lines, proc.stdout + proc.stderr
    proxy, key_pair, stored, secrets = json.loads(lines[0][len("@@RESULT@@"):])
    assert proxy == {"StatusCode": 0, "errorDialog": "", "userProxy": PILOT_PROXY}
    assert key_pair == {"StatusCode": 0, "publicKey": "ACCESS", "privateKey": "SECRET"}
    assert stored == [True, "OK"]
    assert secrets == [True, {"MB_USERNAME": "atlpndpilot"}]
    assert "atlpndpilot" not in secrets_server.tb.get_secret_row("pandasrv")[0]
