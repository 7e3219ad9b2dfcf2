"""The store interface is whole: every DBProxy method callers may use is in the Store protocol, and the
ConBridge and the TaskBuffer forward each one with its signature.

mypy checks the same statically (``_implements_store`` in each module); this catches a method added to a
mixin but not to the protocol, which mypy cannot see, and runs where mypy does not.
"""

from __future__ import annotations

import inspect

import pytest

from pandasrv.taskbuffer.con_bridge import ConBridge
from pandasrv.taskbuffer.db_proxy import DBProxy
from pandasrv.taskbuffer.store import Store
from pandasrv.taskbuffer.task_buffer import TaskBuffer

# Public DBProxy members that belong to one session in this process and are never forwarded.
IN_PROCESS_ONLY = frozenset({"backend", "connect", "terminate_session"})


def _public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


STORE_METHODS = sorted(_public(Store))


def test_every_public_dbproxy_method_is_in_the_store_protocol():
    assert _public(DBProxy) - IN_PROCESS_ONLY == set(STORE_METHODS)


@pytest.mark.parametrize("name", STORE_METHODS)
def test_dbproxy_has_the_protocol_signature(name):
    assert inspect.signature(getattr(DBProxy, name)) == inspect.signature(getattr(Store, name))


@pytest.mark.parametrize("forwarder", [ConBridge, TaskBuffer])
def test_the_bridge_and_the_task_buffer_forward_every_store_method(forwarder):
    assert set(STORE_METHODS) <= _public(forwarder)
