"""DBProxy: one database session; every public method is one transaction.

The methods live in feature mixins under ``db_proxy_mods/``; this module only composes them. A feature
area adds its module there and its class to the bases below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pandasrv.taskbuffer.db_proxy_mods.adder import AdderMixin
from pandasrv.taskbuffer.db_proxy_mods.base import BaseProxy
from pandasrv.taskbuffer.db_proxy_mods.cache import CacheMixin
from pandasrv.taskbuffer.db_proxy_mods.daemon import DaemonMixin
from pandasrv.taskbuffer.db_proxy_mods.harvester import HarvesterMixin
from pandasrv.taskbuffer.db_proxy_mods.jobs_claim import JobsClaimMixin
from pandasrv.taskbuffer.db_proxy_mods.jobs_insert import JobsInsertMixin
from pandasrv.taskbuffer.db_proxy_mods.jobs_kill import JobsKillMixin
from pandasrv.taskbuffer.db_proxy_mods.jobs_requeue import JobsRequeueMixin
from pandasrv.taskbuffer.db_proxy_mods.jobs_update import JobsUpdateMixin
from pandasrv.taskbuffer.db_proxy_mods.locks import LocksMixin
from pandasrv.taskbuffer.db_proxy_mods.meta import MetaMixin
from pandasrv.taskbuffer.db_proxy_mods.monitor import MonitorMixin
from pandasrv.taskbuffer.db_proxy_mods.output_reports import OutputReportsMixin
from pandasrv.taskbuffer.db_proxy_mods.retention import RetentionMixin
from pandasrv.taskbuffer.db_proxy_mods.secrets import SecretsMixin
from pandasrv.taskbuffer.db_proxy_mods.watcher import WatcherMixin
from pandasrv.taskbuffer.store import Store


class DBProxy(
    JobsInsertMixin,
    JobsClaimMixin,
    JobsRequeueMixin,
    JobsKillMixin,
    HarvesterMixin,
    WatcherMixin,
    AdderMixin,
    JobsUpdateMixin,
    OutputReportsMixin,
    LocksMixin,
    RetentionMixin,
    DaemonMixin,
    MetaMixin,
    MonitorMixin,
    CacheMixin,
    SecretsMixin,
    BaseProxy,
):
    """The composed proxy; see docs/internals.md §4 for the method contract."""


if TYPE_CHECKING:
    _implements_store: type[Store] = DBProxy
