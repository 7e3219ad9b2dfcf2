"""Identity and roles: x509 via a trusted front server's headers, OIDC tokens, bans, job ownership."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pandasrv.config import ConfigError, load_settings
from pandasrv.web.app import create_app
from pandasrv.web.auth import (
    OWNER_WIDTH,
    Authenticator,
    AuthError,
    Identity,
    check_loopback,
    clean_user_id,
    has_pilot_role,
    has_production_role,
    token_owner,
)
from tests.conftest import selected_backends
from tests.web.conftest import AUDIENCE, ISSUER, REPO, fresh_database, start_server
from tests.web.helpers import JSON_HEADERS, LocalClient, make_job, wait_status

ALICE = "/DC=ch/DC=cern/OU=Users/CN=alice/CN=123456"
BOB = "/DC=ch/DC=cern/OU=Users/CN=bob"
PROD = "/DC=ch/DC=cern/OU=Robots/CN=prodsys"
PILOT = "/DC=org/CN=pilot factory"
CAROL = "/DC=ch/CN=carol"


def as_user(dn: str, *fqans: str) -> dict[str, str]:
    headers = {"X-SSL-Client-S-DN": dn}
    for i, fqan in enumerate(fqans):
        headers[f"X-GRST-Cred-{i}"] = f"VOMS 0 0 {fqan}"
    return headers


ALICE_H = as_user(ALICE, "/myvo/Role=NULL")
BOB_H = as_user(BOB, "/myvo/Role=NULL")
PROD_H = as_user(PROD, "/myvo/Role=production")
PILOT_H = as_user(PILOT, "/osg/Role=pilot")


# --- pure rules ------------------------------------------------------------------------------------

def test_clean_user_id_rules():
    assert clean_user_id(ALICE) == "alice"
    assert clean_user_id("/DC=ch/DC=cern/OU=Users/CN=jdoe/CN=123456/CN=John Doe/CN=proxy/CN=proxy") == "John Doe"
    assert clean_user_id("/C=DE/O=GermanGrid/CN=Jane Roe 42") == "Jane Roe"
    assert clean_user_id("/CN=Jane Roe/CN=nickname:jroe") == "Jane Roe"
    assert clean_user_id("/CN=Robot: builder/CN=Ann (Bee) O'Neil/CN=limited proxy") == "Ann Bee ONeil"


def test_role_predicates():
    settings = load_settings(production_dns=["prodsys"], pilot_owners=["pilot factory"], production_vos=["myvo"])
    user = Identity(dn=ALICE, fqans=("/myvo/Role=NULL",), source="x509")
    assert not has_production_role(user, settings) and not has_pilot_role(user, settings)
    member = Identity(dn=ALICE, fqans=("/atlas/Role=NULL",), source="x509")
    assert not has_pilot_role(member, settings)  # the VOMS patch is off by default
    patched = load_settings(voms_patch_vos=["atlas"])
    assert has_pilot_role(member, patched) and not has_pilot_role(member, patched, voms_patch=False)
    pilot = Identity(dn="/CN=x", fqans=("/osg/Role=pilot/Capability=NULL",), source="x509")
    assert has_pilot_role(pilot, settings) and not has_production_role(pilot, settings)
    assert has_production_role(Identity(dn=PROD, source="x509"), settings)
    assert has_pilot_role(Identity(dn=PILOT, source="x509"), settings)
    assert has_production_role(Identity(dn="/CN=x", fqans=("/myvo/Role=production",), source="x509"), settings)


@pytest.mark.parametrize("fqan", ["/othervo/Role=production", "/myvo/sub/Role=production", "/myvofake/Role=production",
                                  "/atlas/Role=production-not", "/myvo/Role=NULL", "/myvo", "myvo/Role=productio"])
def test_production_role_is_only_the_configured_vos(fqan):
    settings = load_settings(production_vos=["myvo"], pilot_vos=["myvo"])
    identity = Identity(dn="/CN=x", fqans=(fqan,), source="x509")
    assert not has_production_role(identity, settings)
    assert not has_pilot_role(identity, settings)


@pytest.mark.parametrize("source", ["token", "local", "anonymous"])
def test_configured_dns_count_only_for_certificates(source):
    """A token's DN is made of names the user chose: it must never match production_dns or pilot_owners."""
    settings = load_settings(production_dns=["prodsys"], pilot_owners=["pilot factory"])
    for dn in (PROD, PILOT, "/CN=prodsys/CN=nickname:pilot factory"):
        identity = Identity(dn=dn, source=source)
        assert not has_production_role(identity, settings) and not has_pilot_role(identity, settings)


@hypothesis_settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=80), st.text(min_size=1, max_size=80))
def test_token_owners_are_unique_and_fit(sub_a, sub_b):
    owner_a, owner_b = token_owner(ISSUER, sub_a), token_owner(ISSUER, sub_b)
    assert len(owner_a) <= OWNER_WIDTH and owner_a == token_owner(ISSUER, sub_a)
    assert (owner_a == owner_b) == (sub_a == sub_b)
    assert token_owner("https://other.test", sub_a) != owner_a


@pytest.mark.parametrize("peer", [None, "", "10.0.0.7", "192.168.1.1", "::ffff:10.0.0.1", "2001:db8::1", "localhost"])
def test_auth_none_refuses_remote_peers(peer):
    auth = Authenticator(load_settings(auth="none"))
    with pytest.raises(AuthError, match="loopback"):
        auth.identify({"REMOTE_ADDR": peer} if peer is not None else {})
    behind_proxy = Authenticator(load_settings(auth="none", auth_none_behind_proxy=True))
    assert behind_proxy.identify({"REMOTE_ADDR": peer}).source == "local"


@pytest.mark.parametrize("peer", ["127.0.0.1", "127.3.4.5", "::1", "::ffff:127.0.0.1"])
def test_auth_none_serves_loopback_peers(peer):
    identity = Authenticator(load_settings(auth="none")).identify({"REMOTE_ADDR": peer})
    assert identity.source == "local" and identity.secure and identity.dn == load_settings().local_dn


def test_auth_none_refusal_through_the_app(tmp_path):
    app = create_app(load_settings(auth="none", db_url=f"sqlite:///{tmp_path}/x.db"))
    remote = LocalClient(app).simulate_get("/api/v1/system/get_attributes", remote_addr="10.9.8.7")
    assert remote.status_code == 403 and "loopback" in remote.text
    local = LocalClient(app).simulate_get("/api/v1/system/get_attributes")
    assert local.status_code == 200 and local.json["data"]["production"] is True
    page = LocalClient(app).simulate_get("/monitor/", remote_addr="10.9.8.7")
    assert page.status_code == 403


def test_proxy_headers_are_ignored_unless_trusted():
    environ = {"HTTP_X_SSL_CLIENT_S_DN": ALICE, "HTTP_X_GRST_CRED_0": "VOMS 0 0 /myvo/Role=production"}
    assert Authenticator(load_settings(auth="x509")).identify(environ).dn is None
    trusted = Authenticator(load_settings(auth="x509", trust_proxy_headers=True)).identify(environ)
    assert (trusted.dn, trusted.fqans) == (ALICE, ("/myvo/Role=production",))
    direct = Authenticator(load_settings(auth="x509")).identify({"SSL_CLIENT_S_DN": BOB, "GRST_CONN_1": "fqan:/v/x"})
    assert (direct.dn, direct.fqans) == (BOB, ("/v/x",))


def test_auth_none_only_on_loopback():
    with pytest.raises(ConfigError, match="loopback"):
        check_loopback(load_settings(auth="none", host="0.0.0.0"))
    check_loopback(load_settings(auth="x509", host="0.0.0.0"))
    env = {**os.environ, "PANDASRV_AUTH": "none", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "pandasrv.cli", "serve", "--host", "0.0.0.0", "--no-daemon"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "loopback" in proc.stderr


# --- x509 server behind a trusted front server -------------------------------------------------------

@pytest.fixture(scope="module", params=selected_backends())
def x509_server(request, test_databases, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("x509")
    with fresh_database(test_databases, request.param, workdir) as db_url, \
            start_server(db_url, request.param, workdir, auth="x509", trust_proxy_headers=True,
                         production_dns=["prodsys"], pilot_owners=["pilot factory"], production_vos=["myvo"]) as running:
        running.add_queue(running.queue)
        yield running


def _v1(server, path, data, headers, method="POST"):
    if method == "GET":
        return httpx.get(f"{server.url}/api/v1/{path}", params=data, headers={**JSON_HEADERS, **headers}).json()
    return httpx.post(f"{server.url}/api/v1/{path}", json=data, headers={**JSON_HEADERS, **headers}).json()


def _submit(server, headers, site, *names, label="user"):
    jobs = json.dumps([make_job(site, name, label=label).to_state() for name in names])
    reply = _v1(server, "job/submit", {"jobs": jobs}, headers)
    assert reply["success"], reply
    ids = [item[0] for item in reply["data"]]
    wait_status(server.tb, ids, "activated")
    return ids


def test_anonymous_callers_are_refused_secure_calls(x509_server):
    url = x509_server.url
    assert httpx.get(f"{url}/server/panda/isAlive").text == "alive=yes"
    reply = _v1(x509_server, "job/submit", {"jobs": "[]"}, {})
    assert reply["success"] is False and "secure" in reply["message"]
    assert httpx.post(f"{url}/server/panda/submitJobs", data={"jobs": "[]"}).text == "False"
    assert httpx.post(f"{url}/server/panda/putFile", files={"file": ("a", b"b")}).text.startswith("ERROR: ")
    role = httpx.post(f"{url}/server/panda/getJob", data={"siteName": x509_server.queue},
                      headers={"Accept": "application/json"}).json()
    assert role["StatusCode"] == 60
    as_user_label = httpx.post(f"{url}/server/panda/getJob", data={"siteName": x509_server.queue, "prodSourceLabel": "user"},
                               headers={"Accept": "application/json"}).json()
    assert as_user_label["StatusCode"] == 60


def test_owner_checks(x509_server):
    site = x509_server.add_queue()
    alice_job, alice_job2 = _submit(x509_server, ALICE_H, site, "a1", "a2")
    assert x509_server.tb.peek_jobs([alice_job])[0].prodUserName == "alice"
    assert _v1(x509_server, "job/kill", {"job_ids": [alice_job]}, BOB_H)["data"] == [False]
    assert _v1(x509_server, "job/reassign", {"job_ids": [alice_job]}, BOB_H)["data"] == [False]
    debug = _v1(x509_server, "job/set_debug_mode", {"job_id": alice_job, "mode": True}, BOB_H)
    assert debug["success"] is False and "another user" in debug["message"]
    assert _v1(x509_server, "job/set_debug_mode", {"job_id": alice_job, "mode": True}, ALICE_H)["success"]
    assert _v1(x509_server, "job/kill", {"job_ids": [alice_job]}, ALICE_H)["data"] == [True]
    assert _v1(x509_server, "job/kill", {"job_ids": [alice_job2]}, PROD_H)["data"] == [True]
    command = _v1(x509_server, "job/set_command", {"job_id": alice_job2, "command": "x"}, ALICE_H)
    assert command["success"] is False and "production role" in command["message"]


def test_managed_jobs_need_production_role(x509_server):
    jobs = json.dumps([make_job(x509_server.queue, "m", label="managed").to_state()])
    refused = _v1(x509_server, "job/submit", {"jobs": jobs}, ALICE_H)
    assert refused["success"] is False and "production role" in refused["message"]
    assert _v1(x509_server, "job/submit", {"jobs": jobs}, PROD_H)["success"]


def test_dispatcher_roles(x509_server):
    site = x509_server.add_queue()
    (alice_job,) = _submit(x509_server, ALICE_H, site, "mine")
    (bob_job,) = _submit(x509_server, BOB_H, site, "theirs")

    def get_job(headers, label):
        return httpx.post(f"{x509_server.url}/server/panda/getJob", data={"siteName": site, "prodSourceLabel": label},
                          headers={"Accept": "application/json", **headers}).json()

    assert get_job(ALICE_H, "managed")["StatusCode"] == 60
    assert get_job(ALICE_H, "user")["PandaID"] == alice_job  # a plain user only ever gets own jobs
    assert get_job(ALICE_H, "user")["StatusCode"] == 20
    update = httpx.post(f"{x509_server.url}/server/panda/updateJob", data={"jobId": alice_job, "state": "running"},
                        headers={"Accept": "application/json", **ALICE_H}).json()
    assert update["StatusCode"] == 60
    refused = _v1(x509_server, "pilot/acquire_jobs", {"site_name": site, "prod_source_label": "user"}, PILOT_H)
    assert refused["success"] is False and "production role" in refused["message"]
    assert get_job(PILOT_H, "user")["PandaID"] == bob_job
    pilot_owner = as_user(PILOT)
    update = httpx.post(f"{x509_server.url}/server/panda/updateJob", data={"jobId": bob_job, "state": "running"},
                        headers={"Accept": "application/json", **pilot_owner}).json()
    assert update == {"StatusCode": 0, "command": "NULL"}


def test_banned_users_get_403(x509_server):
    carol = as_user(CAROL, "/myvo/Role=NULL")
    assert _v1(x509_server, "job/get_description", {"job_ids": [1]}, carol)["success"]
    x509_server.tb.set_user_status("carol", "banned")
    try:
        reply = httpx.post(f"{x509_server.url}/api/v1/job/get_description", json={"job_ids": [1]}, headers=carol)
        assert (reply.status_code, reply.text) == (403, "ERROR : carol is banned")
        legacy = httpx.post(f"{x509_server.url}/server/panda/getJob", data={"siteName": "X"}, headers=carol)
        assert legacy.status_code == 403
        assert _v1(x509_server, "metaconfig/get_banned_users", {}, ALICE_H, "GET")["data"] == ["carol"]
    finally:
        x509_server.tb.set_user_status("carol", None)
    assert _v1(x509_server, "job/get_description", {"job_ids": [1]}, carol)["success"]


# --- OIDC tokens -------------------------------------------------------------------------------------

def token(key, **claims):
    """A signed token; a claim given as None is left out."""
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u-1", "name": "test user", "preferred_username": "tester",
            "groups": ["myvo", "myvo/production"], "iat": now, "exp": now + 600, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm="RS256", headers={"kid": "k1"})


def _attributes(server, headers):
    return httpx.get(f"{server.url}/api/v1/system/get_attributes", headers=headers)


def bearer(key, origin="myvo", **claims):
    return {"Authorization": f"Bearer {token(key, **claims)}", "Origin": origin}


def test_token_identity_and_roles(token_server, signing_key):
    good = {"Authorization": f"Bearer {token(signing_key)}"}
    data = _attributes(token_server, {**good, "Origin": "myvo:production"}).json()["data"]
    assert data["dn"] == "/CN=Test User/CN=nickname:tester" and data["user"] == "u-1@issuer.test"
    assert data["fqans"] == ["/myvo/Role=production"] and data["production"] is True
    plain = _attributes(token_server, {**good, "Origin": "myvo"}).json()["data"]
    assert plain["fqans"] == ["/myvo/Role=NULL"] and plain["production"] is False
    assert _attributes(token_server, {**good, "Origin": "myvo.production"}).json()["data"]["production"] is True
    jobs = json.dumps([make_job(token_server.queue, "tok").to_state()])
    submitted = _v1(token_server, "job/submit", {"jobs": jobs}, {**good, "Origin": "myvo"})
    assert token_server.tb.peek_jobs([submitted["data"][0][0]])[0].prodUserName == "u-1@issuer.test"
    assert _attributes(token_server, {}).json()["data"]["dn"] is None


def test_token_ownership_is_issuer_and_subject(token_server, signing_key):
    """Same display name, or a DN-shaped username, never makes another account the owner."""
    alice = bearer(signing_key, sub="alice-id", name="A Smith")
    (alice_job,) = _submit(token_server, alice, token_server.add_queue(), "own")
    owner = token_server.tb.peek_jobs([alice_job])[0].prodUserName
    assert owner == "alice-id@issuer.test"
    impostors = [bearer(signing_key, sub="mallory-1", name="a smith"),
                 bearer(signing_key, sub="mallory-2", name=None, preferred_username="m/CN=A Smith"),
                 bearer(signing_key, sub="mallory-3", name="x/CN=A Smith", preferred_username="alice-id")]
    for headers in impostors:
        data = _attributes(token_server, headers).json()["data"]
        assert data["user"] != owner and data["dn"].count("/") == 2  # names are values, never DN structure
        assert _v1(token_server, "job/kill", {"job_ids": [alice_job]}, headers)["data"] == [False]
    assert _v1(token_server, "job/kill", {"job_ids": [alice_job]}, alice)["data"] == [True]


def test_plain_vo_tokens_get_no_pilot_role(token_server, signing_key):
    """Group ``atlas`` alone (the old VOMS patch) is not a pilot: no getJob of others' jobs, no updateJob."""
    site = token_server.add_queue()
    (job,) = _submit(token_server, bearer(signing_key, sub="owner-1"), site, "victim")
    member = bearer(signing_key, "atlas", sub="member-1", groups=["atlas"])
    got = httpx.post(f"{token_server.url}/server/panda/getJob", data={"siteName": site, "prodSourceLabel": "user"},
                     headers={"Accept": "application/json", **member}).json()
    assert got["StatusCode"] == 20  # served, but only own jobs (none)
    refused = httpx.post(f"{token_server.url}/server/panda/getJob", data={"siteName": site},
                         headers={"Accept": "application/json", **member}).json()
    assert refused["StatusCode"] == 60
    update = httpx.post(f"{token_server.url}/server/panda/updateJob", data={"jobId": job, "state": "failed"},
                        headers={"Accept": "application/json", **member}).json()
    assert update["StatusCode"] == 60
    assert token_server.tb.get_job_status([job])[job][0] == "activated"


@pytest.mark.parametrize("case", ["other-key", "audience", "expired", "group", "no-origin", "garbage", "no-exp",
                                  "future-nbf", "future-iat", "foreign-issuer", "no-sub", "empty-sub", "none-alg"])
def test_bad_tokens_are_refused(token_server, signing_key, case):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    later = int(time.time()) + 3600
    bearer_token = {
        "other-key": lambda: token(other), "audience": lambda: token(signing_key, aud="someone-else"),
        "expired": lambda: token(signing_key, exp=int(time.time()) - 100),
        "group": lambda: token(signing_key, groups=["othervo"]),
        "no-origin": lambda: token(signing_key), "garbage": lambda: "not.a.jwt",
        "no-exp": lambda: token(signing_key, exp=None), "future-nbf": lambda: token(signing_key, nbf=later),
        "future-iat": lambda: token(signing_key, iat=later),
        "foreign-issuer": lambda: token(signing_key, iss="https://elsewhere.test"),
        "no-sub": lambda: token(signing_key, sub=None), "empty-sub": lambda: token(signing_key, sub=""),
        "none-alg": lambda: jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": later,
                                        "groups": ["myvo"]}, None, algorithm="none"),
    }[case]()
    headers = {"Authorization": f"Bearer {bearer_token}"}
    if case != "no-origin":
        headers["Origin"] = "myvo"
    reply = _attributes(token_server, headers)
    assert reply.status_code == 403 and reply.text.startswith("ERROR : Token authentication failed.")
