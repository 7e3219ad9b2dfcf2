"""Legacy credential calls on ``/server/panda/<method>`` that pilot3 still makes, in PanDA's reply forms.

``getProxy`` and ``get_access_token`` always answer JSON (the pilot reads the token reply with
``ast.literal_eval``, so it never contains true, false or null); ``getKeyPair`` and ``get_token_key``
answer JSON only when asked for it; the secrets calls answer a JSON pair ``[ok, data or message]``.
Refusals carry the dispatcher's StatusCodes (50 invalid token key, 70 not allowed, 80 missing key,
90 not found). The rules are the v1 API's (``web/creds_api.py``, ``logic/credentials.py``).
"""

from __future__ import annotations

import json
from typing import Any

from pandasrv.logic.constants import SC_PERMS, SC_SUCCESS
from pandasrv.logic.credentials import CredentialRefused
from pandasrv.logic.secrets import SecretsError
from pandasrv.web.codecs import Protocol, Raw
from pandasrv.web.context import Call
from pandasrv.web.creds_api import proxy_target
from pandasrv.web.dispatch import is_true
from pandasrv.web.registry import endpoint

NO_DN = "SSL_CLIENT_S_DN is missing in HTTP request"


def _refusal(code: int, message: str, json_reply: bool | None) -> Protocol:
    return Protocol({"StatusCode": code, "errorDialog": message}, json=json_reply)


def _pair(success: bool, payload: Any) -> Raw:
    return Raw(json.dumps([success, payload]))


@endpoint("getProxy", role="user", denied=lambda m: _refusal(SC_PERMS, m, True))
def getProxy(call: Call, role: str | None = None, dn: str | None = None) -> Protocol:
    """The X.509 proxy of ``dn`` (default: the caller) with ``role``, as JSON ``userProxy``."""
    try:
        proxy = call.services.credentials.proxy(call.user, proxy_target(call, dn), role or None)
    except CredentialRefused as exc:
        return _refusal(exc.code, str(exc), True)
    return Protocol({"StatusCode": SC_SUCCESS, "errorDialog": "", "userProxy": proxy}, json=True)


@endpoint("get_access_token", role="user", denied=lambda m: _refusal(SC_PERMS, m, True))
def get_access_token(call: Call, client_name: str, token_key: str | None = None) -> Protocol:
    """The access token of ``client_name`` as JSON ``userProxy`` (pilot3's token refresh)."""
    try:
        token = call.services.credentials.access_token(call.user, client_name, token_key)
    except CredentialRefused as exc:
        return _refusal(exc.code, str(exc), True)
    return Protocol({"StatusCode": SC_SUCCESS, "errorDialog": "", "userProxy": token}, json=True)


@endpoint("get_token_key", role="user", denied=lambda m: _refusal(SC_PERMS, m, None))
def get_token_key(call: Call, client_name: str) -> Protocol:
    """The newest token key of ``client_name`` (``tokenKey``)."""
    try:
        key = call.services.credentials.token_key(call.user, client_name)
    except CredentialRefused as exc:
        return _refusal(exc.code, str(exc), None)
    return Protocol({"StatusCode": SC_SUCCESS, "tokenKey": key})


@endpoint("getKeyPair", role="user", denied=lambda m: _refusal(SC_PERMS, m, None))
def getKeyPair(call: Call, publicKeyName: str, privateKeyName: str) -> Protocol:
    """A public and a private key by name (``publicKey``, ``privateKey``)."""
    try:
        public, private = call.services.credentials.key_pair(call.user, publicKeyName, privateKeyName)
    except CredentialRefused as exc:
        return _refusal(exc.code, str(exc), None)
    return Protocol({"StatusCode": SC_SUCCESS, "publicKey": public, "privateKey": private})


@endpoint("set_user_secret", role="user", denied=lambda m: _pair(False, NO_DN))
def set_user_secret(call: Call, key: str | None = None, value: str | None = None) -> Raw:
    """Set one of the caller's secrets (a missing value deletes the key, a missing key all of them)."""
    try:
        call.services.secrets.set(call.tb, call.user or "", key, value)
    except SecretsError as exc:
        return _pair(False, str(exc))
    return _pair(True, "OK")


@endpoint("get_user_secrets", role="user", denied=lambda m: _pair(False, NO_DN))
def get_user_secrets(call: Call, keys: str | None = None, get_json: Any = None) -> Raw:
    """The caller's own secrets (``keys``: comma-separated names): ``[true, JSON text]``, or the dictionary
    itself with ``get_json=True`` (pilot3's message-broker credentials)."""
    try:
        secrets = call.services.secrets.get(call.tb, call.user or "", [keys] if keys else None)
    except SecretsError as exc:
        return _pair(False, str(exc))
    return _pair(True, secrets if is_true(get_json) else json.dumps(secrets))
