"""The credential calls (``creds/*``), on every backend: each identity x each call, secrets, file sources.

The role x call matrix is generated from the registry (a new credential call without a case here fails
``test_every_credential_call_has_a_case``) and the permission table below, which mirrors PanDA's
``USERS.GRIDPREF`` letters: p for proxies and access tokens, k for key pairs, t for token keys, and any
secure caller for its own secrets. The secrets tests are generative: any key and value round-trip, every
bad one is refused with a clear message and leaves the stored row exactly as it was, and what the database
holds is never the plaintext.
"""

from __future__ import annotations

import ast
import base64
import gzip
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pandasrv.config import ConfigError, load_settings, show
from pandasrv.logic.secrets import Secrets, SecretsError, new_key
from pandasrv.taskbuffer.wrapped_cursor import connect
from pandasrv.web.auth import clean_user_id
from pandasrv.web.registry import REGISTRY
from tests.conftest import fresh_database, selected_backends
from tests.web.authz import ALICE, BOB, PILOT, PROD, token_world
from tests.web.inproc import InProcess, in_process_app

VO = "myvo"
SECRETS_KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()
MAX_SECRETS_BYTES = 64 * 1024
OWNERS = {"alice": clean_user_id(ALICE), "bob": clean_user_id(BOB), "pilot": clean_user_id(PILOT),
          "production": clean_user_id(PROD)}
DNS = {"alice": ALICE, "bob": BOB, "pilot": PILOT, "production": PROD}
FQANS = {"alice": f"/{VO}/Role=NULL", "bob": f"/{VO}/Role=NULL", "pilot": f"/{VO}/Role=pilot",
         "production": f"/{VO}/Role=production"}
# who is in which GRIDPREF list: the pilot gets proxies, tokens and key pairs; production proxies and token keys
PERMITTED = {"p": {"pilot", "production"}, "k": {"pilot"}, "t": {"production"}}
PROXY = "-----BEGIN CERTIFICATE-----\nproxy of alice\n-----END CERTIFICATE-----\n"
TOKEN = "eyJ.access-token.of-pilot_server"
TOKEN_KEYS = ("newest-key", "older-key")


def environ(name: str) -> dict[str, Any]:
    """The WSGI variables a trusted TLS front sets for ``name`` (anonymous: none; limited: a limited proxy)."""
    if name == "anonymous":
        return {}
    if name == "limited":
        return {"SSL_CLIENT_S_DN": ALICE + "/CN=limited proxy", "GRST_CRED_0": f"VOMS 0 0 /{VO}/Role=production"}
    return {"SSL_CLIENT_S_DN": DNS[name], "GRST_CRED_0": f"VOMS 0 0 {FQANS[name]}"}


IDENTITIES = ("anonymous", "limited", "alice", "bob", "pilot", "production")


@dataclass
class World:
    app: InProcess
    folders: dict[str, Path]

    def v1(self, verb: str, name: str, who: str, **params: Any) -> dict[str, Any]:
        path = f"/api/v1/creds/{name}"
        if verb == "GET":
            reply = self.app.request("GET", path, params=params, extras=environ(who))
        else:
            reply = self.app.request("POST", path, json=params, extras=environ(who))
        assert reply.status_code == 200, reply.text
        return reply.json

    def legacy(self, name: str, who: str, **params: Any) -> Any:
        """A legacy call as a form POST asking for JSON; the reply decoded."""
        reply = self.app.request("POST", f"/server/panda/{name}", params=params, extras=environ(who),
                                 headers={"Accept": "application/json"})
        assert reply.status_code == 200, reply.text
        return json.loads(reply.text)

    def row(self, who: str) -> tuple[str, int] | None:
        row = self.app.tb.get_secret_row(OWNERS[who])
        return None if row is None else (row[0], int(row[1]))


@pytest.fixture(scope="module", params=selected_backends())
def world(request: pytest.FixtureRequest, test_databases: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("creds")
    folders = {kind: root / kind for kind in ("proxies", "tokens", "keys", "token_keys")}
    for folder in folders.values():
        folder.mkdir()
    (folders["proxies"] / OWNERS["alice"]).write_text(PROXY)
    (folders["proxies"] / f"{OWNERS['alice']}:production").write_text(PROXY + "with role production\n")
    (folders["proxies"] / "atlpilo2:production").write_text("pilot proxy")
    (folders["tokens"] / "pilot_server").write_text(TOKEN + "\n")
    (folders["tokens"] / "plain_client").write_text("plain-token")
    (folders["token_keys"] / "pilot_server").write_text("\n".join(TOKEN_KEYS) + "\n")
    (folders["keys"] / "pub").write_text("PUBLIC KEY")
    (folders["keys"] / "priv").write_text("PRIVATE KEY")
    creds = {"proxy_dir": str(folders["proxies"]), "token_dir": str(folders["tokens"]),
             "key_dir": str(folders["keys"]), "token_key_dir": str(folders["token_keys"]),
             "token_key_clients": ["pilot_server"], "secrets_key": SECRETS_KEY, "max_secrets_bytes": MAX_SECRETS_BYTES,
             **{f"{kind}_users": [OWNERS[n] for n in PERMITTED[letter]]
                for kind, letter in (("proxy", "p"), ("key_pair", "k"), ("token_key", "t"))}}
    with in_process_app(test_databases, request.param, root / "app", auth="x509", production_vos=[VO],
                        pilot_vos=[VO], creds=creds) as app:
        yield World(app, folders)


# --- the role x call matrix ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One credential call: its HTTP verb, good parameters, who may (a GRIDPREF letter or "own") and the
    data a permitted caller gets."""

    verb: str
    params: dict[str, Any]
    letter: str
    data: Callable[[str], Any]


V1_CASES = {
    "get_proxy": Case("GET", {"dn": ALICE + "/CN=proxy/CN=12345"}, "p",
                      lambda who: {"user_proxy": PROXY, "userProxy": PROXY}),
    "get_access_token": Case("GET", {"client_name": "pilot_server", "token_key": TOKEN_KEYS[1]}, "p",
                             lambda who: {"user_proxy": TOKEN, "userProxy": TOKEN}),
    "get_token_key": Case("GET", {"client_name": "pilot_server"}, "t", lambda who: {"tokenKey": TOKEN_KEYS[0]}),
    "get_key_pair": Case("GET", {"public_key_name": "pub", "private_key_name": "priv"}, "k",
                         lambda who: {"public_key": "PUBLIC KEY", "private_key": "PRIVATE KEY",
                                      "publicKey": "PUBLIC KEY", "privateKey": "PRIVATE KEY"}),
    "set_user_secrets": Case("POST", {"key": "matrix", "value": "v"}, "own", lambda who: None),
    "get_user_secrets": Case("GET", {"keys": ["matrix"]}, "own", lambda who: json.dumps({"matrix": "v"})),
}


LEGACY_CASES = {
    "getProxy": Case("POST", {"dn": ALICE}, "p",
                     lambda who: {"StatusCode": 0, "errorDialog": "", "userProxy": PROXY}),
    "get_access_token": Case("POST", {"client_name": "pilot_server", "token_key": TOKEN_KEYS[0]}, "p",
                             lambda who: {"StatusCode": 0, "errorDialog": "", "userProxy": TOKEN}),
    "get_token_key": Case("POST", {"client_name": "pilot_server"}, "t",
                          lambda who: {"StatusCode": 0, "tokenKey": TOKEN_KEYS[0]}),
    "getKeyPair": Case("POST", {"publicKeyName": "pub", "privateKeyName": "priv"}, "k",
                       lambda who: {"StatusCode": 0, "publicKey": "PUBLIC KEY", "privateKey": "PRIVATE KEY"}),
    "set_user_secret": Case("POST", {"key": "matrix", "value": "legacy"}, "own", lambda who: [True, "OK"]),
    "get_user_secrets": Case("POST", {"keys": "matrix"}, "own", lambda who: [True, json.dumps({"matrix": "legacy"})]),
}
LEGACY_CREDENTIAL_CALLS = {"getProxy", "get_access_token", "get_token_key", "getKeyPair", "set_user_secret",
                           "get_user_secrets"}


def test_every_credential_call_has_a_case() -> None:
    registered = {m.name for m in REGISTRY if m.module == "creds"}
    assert registered == set(V1_CASES)
    for name, case in V1_CASES.items():
        assert REGISTRY.find("creds", name).http == (case.verb,)
    assert set(LEGACY_CASES) == LEGACY_CREDENTIAL_CALLS
    assert all(REGISTRY.find("panda", name) for name in LEGACY_CASES)


def test_each_identity_against_each_v1_call(world: World) -> None:
    """A caller gets a credential exactly when its name is in the call's list (any secure caller for its
    own secrets); an insecure caller is refused by the role check, a secure one by the permission list."""
    wrong: list[str] = []
    for who in IDENTITIES:
        secure = who not in ("anonymous", "limited")
        for name in ("set_user_secrets", *(n for n in V1_CASES if n != "set_user_secrets")):
            case = V1_CASES[name]
            reply = world.v1(case.verb, name, who, **case.params)
            permitted = secure and (case.letter == "own" or who in PERMITTED[case.letter])
            if permitted:
                expected = {"success": True, "message": "OK" if name == "set_user_secrets" else "",
                            "data": case.data(who)}
                if reply != expected:
                    wrong.append(f"{who} {name}: {reply} != {expected}")
            elif not secure:
                if reply != {"success": False, "data": None,
                             "message": "SSL secure connection or a verified token is required"}:
                    wrong.append(f"{who} {name}: not refused as insecure: {reply}")
            elif reply["success"] or f"'{OWNERS[who]}' is not authorized with '{case.letter}'" not in reply["message"]:
                wrong.append(f"{who} {name}: not refused by the {case.letter} list: {reply}")
    assert wrong == [], "\n".join(wrong)


def test_each_identity_against_each_legacy_call(world: World) -> None:
    """The same permission table in the legacy forms: a StatusCode 70 refusal, or ``[false, ...]``."""
    wrong: list[str] = []
    for who in IDENTITIES:
        secure = who not in ("anonymous", "limited")
        for name in ("set_user_secret", *(n for n in LEGACY_CASES if n != "set_user_secret")):
            case = LEGACY_CASES[name]
            reply = world.legacy(name, who, **case.params)
            permitted = secure and (case.letter == "own" or who in PERMITTED[case.letter])
            if permitted:
                if reply != case.data(who):
                    wrong.append(f"{who} {name}: {reply} != {case.data(who)}")
            elif case.letter == "own":
                if reply != [False, "SSL_CLIENT_S_DN is missing in HTTP request"]:
                    wrong.append(f"{who} {name}: not refused: {reply}")
            elif not secure:
                if reply != {"StatusCode": 70, "errorDialog": "SSL secure connection or a verified token is required"}:
                    wrong.append(f"{who} {name}: not refused as insecure: {reply}")
            elif reply.get("StatusCode") != 70 or "is not authorized" not in reply["errorDialog"]:
                wrong.append(f"{who} {name}: not refused by the {case.letter} list: {reply}")
    assert wrong == [], "\n".join(wrong)


def test_legacy_calls_in_the_pilots_own_forms(world: World) -> None:
    """pilot3's requests: getProxy as a gzipped JSON body without Content-Encoding, the token refresh as a GET
    read with ``ast.literal_eval``, the broker credentials with ``get_json``; urlencoded where not asked for JSON."""
    body = gzip.compress(json.dumps({"role": "production", "dn": "atlpilo2"}).encode())
    reply = world.app.request("POST", "/server/panda/getProxy", body=body, extras=environ("pilot"),
                              headers={"Content-Type": "application/json"})
    assert reply.json == {"StatusCode": 0, "errorDialog": "", "userProxy": "pilot proxy"}
    reply = world.app.request("GET", "/server/panda/get_access_token", extras=environ("pilot"),
                              query_string=f"client_name=pilot_server&token_key={TOKEN_KEYS[1]}")
    assert ast.literal_eval(reply.text) == {"StatusCode": 0, "errorDialog": "", "userProxy": TOKEN}
    refused = world.app.request("GET", "/server/panda/get_access_token", extras=environ("pilot"),
                                query_string="client_name=pilot_server&token_key=forged")
    assert ast.literal_eval(refused.text) == {"StatusCode": 50,
                                              "errorDialog": "failed since token key is invalid for pilot_server"}
    missing = world.app.request("GET", "/server/panda/get_access_token", extras=environ("pilot"),
                                query_string="client_name=nobody")
    assert ast.literal_eval(missing.text)["StatusCode"] == 90
    for key, value in (("MB_USERNAME", "broker user"), ("MB_PASSWORD", "p@ss")):
        assert world.legacy("set_user_secret", "pilot", key=key, value=value) == [True, "OK"]
    assert world.legacy("get_user_secrets", "pilot", get_json="True", keys="MB_USERNAME,MB_PASSWORD") == \
        [True, {"MB_USERNAME": "broker user", "MB_PASSWORD": "p@ss"}]
    plain = world.app.request("POST", "/server/panda/getKeyPair", extras=environ("pilot"),
                              params={"publicKeyName": "pub", "privateKeyName": "nope"})
    assert plain.text == "StatusCode=80&errorDialog=failed+for+%27pilot+one%27+since+nope+is+missing"


def test_refusals_name_what_is_missing(world: World) -> None:
    assert world.v1("GET", "get_proxy", "pilot", dn="/DC=x/CN=nobody")["message"] == "'proxy' not found for nobody"
    assert world.v1("GET", "get_proxy", "pilot", dn=ALICE, role="pilot")["message"] == \
        "'proxy' not found for alice with role pilot"
    assert world.v1("GET", "get_proxy", "pilot", dn=ALICE, role="production")["data"]["user_proxy"].endswith(
        "with role production\n")
    assert world.v1("GET", "get_access_token", "pilot", client_name="pilot_server")["message"] == \
        "failed since token key is invalid for pilot_server"
    assert world.v1("GET", "get_access_token", "pilot", client_name="pilot_server", token_key="forged")["message"] == \
        "failed since token key is invalid for pilot_server"
    assert world.v1("GET", "get_access_token", "pilot", client_name="plain_client")["data"]["user_proxy"] == "plain-token"
    assert world.v1("GET", "get_access_token", "pilot", client_name="nobody")["message"] == "'token' not found for nobody"
    assert world.v1("GET", "get_token_key", "production", client_name="nobody")["message"] == \
        "token key is missing for 'nobody'"
    missing = world.v1("GET", "get_key_pair", "pilot", public_key_name="pub", private_key_name="gone")
    assert missing == {"success": False, "message": "failed for 'pilot one' since gone is missing", "data": None}
    assert world.v1("GET", "get_access_token", "pilot")["message"] == \
        "Argument error: missing required parameter client_name"


def test_token_identities_are_listed_by_their_owner_name(test_databases: Any, tmp_path: Path) -> None:
    """Under tokens the lists hold ``sub@issuer`` owners: the listed pilot token gets the proxy, a user token
    with the same display name as someone listed does not, and each token owner has its own secrets."""
    folder = tmp_path / "proxies"
    folder.mkdir()
    (folder / "atlpilo2:atlas").write_text("pilot proxy")
    pilot_owner = "pilot-sub@issuer.test"
    with fresh_database(test_databases, "sqlite", tmp_path) as db_url:
        creds = {"proxy_dir": str(folder), "secrets_key": SECRETS_KEY, "proxy_users": [pilot_owner]}
        with token_world(db_url, tmp_path, creds=creds) as made:
            def call(who: str, verb: str, name: str, **params: Any) -> dict[str, Any]:
                kwargs = made.request_kwargs(who)
                kwargs["json" if verb == "POST" else "params"] = params
                return made.client.simulate_request(verb, f"/api/v1/creds/{name}", **kwargs).json

            assert made.owners["pilot"] == pilot_owner
            assert call("pilot", "GET", "get_proxy", dn="atlpilo2", role="atlas")["data"]["userProxy"] == "pilot proxy"
            refused = call("alice", "GET", "get_proxy", dn="atlpilo2", role="atlas")
            assert refused["success"] is False and f"'{made.owners['alice']}' is not authorized" in refused["message"]
            assert call("alice", "POST", "set_user_secrets", key="k", value="alice")["success"]
            assert call("bob", "POST", "set_user_secrets", key="k", value="bob")["success"]
            assert json.loads(call("alice", "GET", "get_user_secrets")["data"]) == {"k": "alice"}
            assert json.loads(call("bob", "GET", "get_user_secrets")["data"]) == {"k": "bob"}


# --- file sources ------------------------------------------------------------------------------------------

def test_names_never_leave_their_folder(world: World) -> None:
    """Path-like, hidden and role-like names find nothing, even where a file of that path exists."""
    (world.folders["proxies"].parent / "outside").write_text("OUTSIDE-CONTENT")
    (world.folders["proxies"] / ".hidden").write_text("HIDDEN-CONTENT")
    for name in ("../outside", "..", ".hidden", "a/b", "", "x" * 300, "alice:production", "nul\x00"):
        reply = world.v1("GET", "get_proxy", "pilot", dn=name)
        assert reply["success"] is False and "data" in reply, (name, reply)
        assert "-CONTENT" not in json.dumps(reply), (name, reply)
    for name in ("../outside", ".hidden", "../keys/pub"):
        assert world.v1("GET", "get_key_pair", "pilot", public_key_name=name, private_key_name="priv")["success"] is False
    assert world.v1("GET", "get_proxy", "pilot", dn=ALICE, role="../x")["success"] is False


def test_files_are_reread_when_they_change(world: World) -> None:
    """A renewed proxy is served at once (rewritten in place or replaced by a rename); a removed one is gone."""
    folder = world.folders["proxies"]
    (folder / "renewed").write_text("first")
    assert world.v1("GET", "get_proxy", "production", dn="renewed")["data"]["user_proxy"] == "first"
    (folder / "renewed").write_text("second, longer")
    assert world.v1("GET", "get_proxy", "production", dn="renewed")["data"]["user_proxy"] == "second, longer"
    (folder / "renewed.tmp").write_text("third")
    os.replace(folder / "renewed.tmp", folder / "renewed")
    assert world.v1("GET", "get_proxy", "production", dn="renewed")["data"]["user_proxy"] == "third"
    (folder / "renewed").unlink()
    assert world.v1("GET", "get_proxy", "production", dn="renewed")["message"] == "'proxy' not found for renewed"
    keys = world.folders["token_keys"] / "rotated"
    keys.write_text("k1\n")
    assert world.v1("GET", "get_token_key", "production", client_name="rotated")["data"] == {"tokenKey": "k1"}
    keys.write_text("k2\nk1\n")
    assert world.v1("GET", "get_token_key", "production", client_name="rotated")["data"] == {"tokenKey": "k2"}


# --- user secrets ---------------------------------------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=200)
KEYS = TEXT.filter(lambda k: k and "," not in k)


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=KEYS, value=TEXT | st.text(max_size=4000, alphabet="xyzé€😀"))
def test_any_secret_round_trips_and_is_stored_sealed(world: World, key: str, value: str) -> None:
    """Any key and value (unicode, empty values, kilobytes) come back as set, to their owner only, and the
    stored row contains neither."""
    assert world.v1("POST", "set_user_secrets", "bob", key=key, value=value) == \
        {"success": True, "message": "OK", "data": None}
    reply = world.v1("GET", "get_user_secrets", "bob", keys=[key])
    assert reply["success"] and json.loads(reply["data"]) == {key: value}
    assert key in json.loads(world.v1("GET", "get_user_secrets", "bob")["data"])
    assert key not in json.loads(world.v1("GET", "get_user_secrets", "alice")["data"])
    stored, _ = world.row("bob")
    for text in (key, value, json.dumps(key), json.dumps(value)):
        assert len(text) < 4 or text not in stored


BAD_VALUES = st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                       st.lists(st.text(max_size=3), max_size=3),
                       st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2))


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=BAD_VALUES, field=st.sampled_from(["key", "value"]))
def test_bad_types_are_refused_and_change_nothing(world: World, bad: Any, field: str) -> None:
    world.v1("POST", "set_user_secrets", "alice", key="kept", value="as it was")
    before = world.row("alice")
    params = {"key": "kept", "value": "new", field: bad}
    reply = world.v1("POST", "set_user_secrets", "alice", **params)
    assert reply["success"] is False and reply["message"].startswith(f"Type error: {field} must be a string"), reply
    assert world.row("alice") == before


@pytest.mark.parametrize("params, message", [
    ({"key": "", "value": "x"}, "key must not be empty"),
    ({"key": "k" * 1025, "value": "x"}, "key is longer than 1024 characters"),
    ({"key": "big", "value": "x" * MAX_SECRETS_BYTES}, "more than creds.max_secrets_bytes"),
    ({"key": "nul", "value": "a\x00b"}, "Type error: value must not contain NUL characters"),
])
def test_bad_secrets_are_refused_and_change_nothing(world: World, params: dict[str, Any], message: str) -> None:
    world.v1("POST", "set_user_secrets", "alice", key="kept", value="as it was")
    before = world.row("alice")
    reply = world.v1("POST", "set_user_secrets", "alice", **params)
    assert reply["success"] is False and message in reply["message"], reply
    assert "x" * 100 not in reply["message"]
    assert world.row("alice") == before


def test_null_value_deletes_a_key_and_null_key_deletes_all(world: World) -> None:
    world.v1("POST", "set_user_secrets", "production")
    for key in ("a", "b", "___file___:c"):
        world.v1("POST", "set_user_secrets", "production", key=key, value="1")
    world.v1("POST", "set_user_secrets", "production", key="a")
    world.v1("POST", "set_user_secrets", "production", key="c", value=None)
    assert json.loads(world.v1("GET", "get_user_secrets", "production")["data"]) == {"b": "1"}
    assert json.loads(world.v1("GET", "get_user_secrets", "production", keys=["a,b"])["data"]) == {"b": "1"}
    assert world.v1("POST", "set_user_secrets", "production") == {"success": True, "message": "OK", "data": None}
    assert world.row("production") is None
    assert world.v1("GET", "get_user_secrets", "production") == {"success": True, "message": "", "data": "{}"}


def test_a_row_moved_to_another_owner_does_not_open(world: World) -> None:
    """The owner is part of the sealed message: a ciphertext copied under another owner is refused."""
    world.v1("POST", "set_user_secrets", "alice", key="mine", value="alice's")
    sealed, _ = world.row("alice")
    world.v1("POST", "set_user_secrets", "pilot", key="x", value="y")
    conn = connect(world.app.db_url)
    try:
        conn.begin()
        conn.cursor().execute("UPDATE user_secrets SET data = :data WHERE owner = :owner",
                              {"data": sealed, "owner": OWNERS["pilot"]})
        conn.commit()
    finally:
        conn.close()
    reply = world.v1("GET", "get_user_secrets", "pilot")
    assert reply == {"success": False, "data": None,
                     "message": "the stored secrets of pilot one do not open with the configured keys"}
    world.v1("POST", "set_user_secrets", "pilot")  # key null: deletes the damaged row


def test_concurrent_changes_of_one_owner_all_land(world: World) -> None:
    secrets = world.app.app.services.secrets
    tb = world.app.tb
    owner = "concurrent owner"
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(4):
                secrets.set(tb, owner, f"w{n}-{i}", str(i))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert secrets.get(tb, owner) == {f"w{n}-{i}": str(i) for n in range(2) for i in range(4)}


def test_secrets_off_without_a_key() -> None:
    off = Secrets(load_settings().creds)
    with pytest.raises(SecretsError, match="creds.secrets_key is not set"):
        off.set(None, "someone", "k", "v")
    with pytest.raises(SecretsError, match="creds.secrets_key is not set"):
        off.get(None, "someone")


def test_the_key_is_checked_and_never_shown() -> None:
    settings = load_settings(creds={"secrets_key": SECRETS_KEY, "secrets_old_keys": [SECRETS_KEY]})
    shown = json.dumps(show(settings), default=str)
    assert SECRETS_KEY not in shown and SECRETS_KEY not in repr(settings)
    assert show(settings)["creds"]["secrets_key"] == "***"
    assert load_settings(creds={"secrets_key": new_key()}).creds.secrets_key.get_secret_value() != SECRETS_KEY
    # child processes (daemon master, Setupper helper, mod_wsgi daemon processes) get the settings as JSON
    child = type(settings).model_validate_json(settings.model_dump_json())
    assert child.creds.secrets_key.get_secret_value() == SECRETS_KEY
    assert [k.get_secret_value() for k in child.creds.secrets_old_keys] == [SECRETS_KEY]
    for bad in ("short", "x" * 44, base64.urlsafe_b64encode(b"16 bytes only!!!").decode()):
        with pytest.raises(ConfigError, match="creds.secrets_key: .*urlsafe base64 of 32 bytes"):
            load_settings(creds={"secrets_key": bad})


def test_apache_started_as_root_sees_the_credential_folders(tmp_path: Path) -> None:
    """Started as root, Apache runs in a private mount namespace that shows only the paths the application
    reads: the credential folders are among them."""
    from pandasrv.deploy.apache import Layout, needed_paths

    folders = {name: str(tmp_path / name) for name in ("proxy_dir", "token_dir", "token_key_dir", "key_dir")}
    settings = load_settings(db_url=f"sqlite:///{tmp_path / 'db.sqlite'}", creds=folders)
    paths = needed_paths(settings, Layout(tmp_path / "run"))
    assert {str(p) for p in paths} >= set(folders.values())
