"""The v1 credential API (``/api/v1/creds/*``): proxies, access tokens, token keys, key pairs, user secrets.

Signatures, HTTP methods and reply shapes are those of PanDA's ``credential_management_api``: every call
needs a secure caller; what each caller may have is decided in ``logic/credentials.py`` (folders and
permission lists) and ``logic/secrets.py`` (the caller's own secrets, sealed at rest). A refusal is the
``{"success": false, "message": ...}`` envelope. Where PanDA's clients read another spelling of a field
(Harvester's ``userProxy``, ``publicKey``/``privateKey``) both are answered.
"""

from __future__ import annotations

import json
from typing import Any

from pandasrv.logic.credentials import CredentialRefused
from pandasrv.logic.secrets import SecretsError
from pandasrv.web.auth import bare_dn, clean_user_id
from pandasrv.web.codecs import fail, ok
from pandasrv.web.context import Call
from pandasrv.web.registry import endpoint


def proxy_target(call: Call, dn: str | None) -> str:
    """The owner name a proxy is filed under: the compact name of a DN (proxy extensions and trailing
    ``/CN=<digits>`` dropped, as PanDA's ``get_bare_dn``), a bare name as given (the pilot sends one), or the
    caller's own name."""
    if not dn:
        return call.user or ""
    return clean_user_id(bare_dn(dn, keep_digits=False)) if dn.startswith("/") else dn.strip()


@endpoint("creds/get_proxy", role="user", http=("GET",))
def get_proxy(call: Call, role: str | None = None, dn: str | None = None) -> dict[str, Any]:
    """The X.509 proxy of ``dn`` (default: the caller) with ``role``; needs the caller in ``creds.proxy_users``."""
    try:
        proxy = call.services.credentials.proxy(call.user, proxy_target(call, dn), role or None)
    except CredentialRefused as exc:
        return fail(str(exc))
    return ok({"user_proxy": proxy, "userProxy": proxy})


@endpoint("creds/get_access_token", role="user", http=("GET",))
def get_access_token(call: Call, client_name: str, token_key: str | None = None) -> dict[str, Any]:
    """The access token of ``client_name`` (with one of its token keys where the client requires one)."""
    try:
        token = call.services.credentials.access_token(call.user, client_name, token_key)
    except CredentialRefused as exc:
        return fail(str(exc))
    return ok({"user_proxy": token, "userProxy": token})


@endpoint("creds/get_token_key", role="user", http=("GET",))
def get_token_key(call: Call, client_name: str) -> dict[str, Any]:
    """The newest token key of ``client_name``; needs the caller in ``creds.token_key_users``."""
    try:
        key = call.services.credentials.token_key(call.user, client_name)
    except CredentialRefused as exc:
        return fail(str(exc))
    return ok({"tokenKey": key})


@endpoint("creds/get_key_pair", role="user", http=("GET",))
def get_key_pair(call: Call, public_key_name: str, private_key_name: str) -> dict[str, Any]:
    """A public and a private key by name; needs the caller in ``creds.key_pair_users``."""
    try:
        public, private = call.services.credentials.key_pair(call.user, public_key_name, private_key_name)
    except CredentialRefused as exc:
        return fail(str(exc))
    return ok({"public_key": public, "private_key": private, "publicKey": public, "privateKey": private})


@endpoint("creds/set_user_secrets", role="user", http=("POST",))
def set_user_secrets(call: Call, key: str | None = None, value: str | None = None) -> dict[str, Any]:
    """Set one of the caller's secrets; a null value deletes the key, a null key deletes all the caller's secrets."""
    try:
        call.services.secrets.set(call.tb, call.user or "", key, value)
    except SecretsError as exc:
        return fail(str(exc))
    return ok(message="OK")


@endpoint("creds/get_user_secrets", role="user", http=("GET",))
def get_user_secrets(call: Call, keys: list[str] | None = None) -> dict[str, Any]:
    """The caller's own secrets (only ``keys`` when given), as PanDA sends them: the dictionary as JSON text."""
    try:
        secrets = call.services.secrets.get(call.tb, call.user or "", keys)
    except SecretsError as exc:
        return fail(str(exc))
    return ok(json.dumps(secrets))
