"""ProxyPool: C database proxies shared by the threads of one process.

``with pool.get() as proxy:`` waits at most ``db_pool_wait`` seconds for a free proxy. The health check
on checkout costs nothing on the hot path: a proxy is pinged only after it failed or sat idle long
enough for a firewall or the server to have dropped its session.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator

from pandasrv import metrics
from pandasrv.taskbuffer import errors
from pandasrv.taskbuffer.con_bridge import ConBridge
from pandasrv.taskbuffer.db_proxy import DBProxy
from pandasrv.taskbuffer.store import Store

if TYPE_CHECKING:
    from pandasrv.config import Settings

log = logging.getLogger(__name__)

# A proxy idle for longer than this is pinged (and reconnected if need be) before use.
PING_AFTER_IDLE = 30.0

# Errors that say nothing about the session's health: the caller's fault or the data's.
_HARMLESS = (errors.IntegrityError, ValueError)


@dataclass
class _Slot:
    proxy: DBProxy | ConBridge
    last_used: float = field(default_factory=time.monotonic)
    suspect: bool = False


def make_proxy(settings: Settings) -> DBProxy | ConBridge:
    """A ConBridge (``db_bridge``) or an in-process DBProxy; neither connects until first used."""
    if settings.db_bridge:
        return ConBridge(settings)
    return DBProxy(settings.db_url)


class ProxyPool:
    def __init__(self, settings: Settings, *, factory: Callable[[Settings], DBProxy | ConBridge] = make_proxy,
                 ping_after_idle: float = PING_AFTER_IDLE) -> None:
        self.size = int(settings.db_connections)
        self.wait = float(settings.db_pool_wait)
        self.ping_after_idle = ping_after_idle
        # LIFO: the most recently used proxy is the one most likely to be alive and warm.
        self._idle: queue.LifoQueue[_Slot] = queue.LifoQueue()
        self._slots = [_Slot(factory(settings)) for _ in range(self.size)]
        for slot in self._slots:
            if isinstance(slot.proxy, ConBridge):
                slot.proxy.start()  # children boot in the background; the first call does not pay for it
            self._idle.put(slot)
        self._closed = False

    @contextlib.contextmanager
    def get(self) -> Iterator[Store]:
        """Check out a proxy for the duration of the block; PoolTimeout if none frees up in time."""
        if self._closed:
            raise errors.PoolTimeout("the proxy pool is closed")
        waited = time.perf_counter()
        try:
            slot = self._idle.get(timeout=self.wait)
        except queue.Empty:
            metrics.POOL_TIMEOUTS.inc()
            raise errors.PoolTimeout(f"no free DB proxy within db_pool_wait={self.wait:g}s") from None
        checked_out = time.perf_counter()
        metrics.POOL_WAIT.observe(checked_out - waited)
        try:
            self._check(slot)
            yield slot.proxy
        except _HARMLESS:
            raise
        except Exception:
            slot.suspect = True
            raise
        finally:
            metrics.POOL_CHECKOUT.observe(time.perf_counter() - checked_out)
            slot.last_used = time.monotonic()
            if self._closed:
                slot.proxy.close()
            self._idle.put(slot)

    def _check(self, slot: _Slot) -> None:
        if slot.suspect or time.monotonic() - slot.last_used > self.ping_after_idle:
            if not slot.proxy.ping():
                log.warning("DB proxy failed its health check; the call will try to reconnect")
                slot.proxy.close()
            slot.suspect = False

    def close(self) -> None:
        """Close every proxy (ConBridge children stop); proxies checked out close when returned."""
        self._closed = True
        while True:
            try:
                slot = self._idle.get_nowait()
            except queue.Empty:
                break
            slot.proxy.close()
