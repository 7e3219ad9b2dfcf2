"""The credential calls under ``pandasrv apache``: the mod_wsgi daemon processes (unprivileged when started as
root, in a private mount namespace) read the credential folders and share the sealed secrets in the database.

The folders lie below the test's temporary directory (``/tmp/pytest-of-<user>``, mode 700), so when the
tests run as root they are visible to the daemon processes only through the namespace's bind mounts."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import httpx

from tests.deploy.conftest import start_apache
from tests.waiting import wait_for

PROXY = "-----BEGIN CERTIFICATE-----\napache proxy\n-----END CERTIFICATE-----\n"


def test_proxy_and_secrets_through_apache(pg_url: str, tmp_path: Path) -> None:
    proxies = tmp_path / "creds" / "proxies"
    proxies.mkdir(parents=True)
    (proxies / "atlpilo2:atlas").write_text(PROXY)
    creds = {"proxy_dir": str(proxies), "proxy_users": ["pandasrv"],
             "secrets_key": base64.urlsafe_b64encode(os.urandom(32)).decode()}
    with start_apache(pg_url, tmp_path, creds=json.dumps(creds)) as apache:
        def v1(verb: str, name: str, **params: Any) -> Any:
            kwargs: dict[str, Any] = {"json": params} if verb == "POST" else {"params": params}
            return httpx.request(verb, f"{apache.url}/api/v1/creds/{name}", timeout=30, **kwargs).json()

        assert v1("GET", "get_proxy", dn="atlpilo2", role="atlas")["data"]["user_proxy"] == PROXY
        legacy = httpx.post(f"{apache.url}/server/panda/getProxy", data={"dn": "atlpilo2", "role": "atlas"}, timeout=30)
        assert legacy.json() == {"StatusCode": 0, "errorDialog": "", "userProxy": PROXY}
        assert v1("POST", "set_user_secrets", key="MB_PASSWORD", value="through apache")["success"]
        for _ in range(4):  # answered by either daemon process, the secret is the same
            assert json.loads(v1("GET", "get_user_secrets")["data"]) == {"MB_PASSWORD": "through apache"}
        # the pilot's token refresh sends its token key in the query string: Apache's access log leaves it out
        httpx.get(f"{apache.url}/server/panda/get_access_token", timeout=30,
                  params={"client_name": "pilot_server", "token_key": "do-not-log-me"})
        access = apache.run_dir / "logs" / "access.log"
        wait_for(lambda: "get_access_token" in access.read_text(), 30)  # written after the reply has gone out
        assert "GET /server/panda/get_access_token HTTP/1.1" in access.read_text()
        assert "do-not-log-me" not in access.read_text()
