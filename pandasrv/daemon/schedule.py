"""The daemon's schedule: the ``[daemon.scripts.<name>]`` tables resolved into complete entries.

PanDA's master fills the same defaults (module = name, timeout = min(3 × period, period + 1 h)) and drops
disabled entries before it starts; doing it once here keeps the master and the workers in agreement.
"""

from __future__ import annotations

from dataclasses import dataclass

from pandasrv.config import Settings
from pandasrv.taskbuffer.owners import LEASE_PREFIX

SCRIPT_PACKAGE = "pandasrv.daemon.scripts"


@dataclass(frozen=True)
class Script:
    name: str
    module: str
    period: int
    timeout: int
    sync: bool
    loop: bool
    arguments: tuple[str, ...]

    @property
    def lease_component(self) -> str:
        """The ``process_locks`` row that makes a sync script run on one machine at a time."""
        return LEASE_PREFIX + self.name


def load_schedule(settings: Settings) -> dict[str, Script]:
    """Every enabled script with its defaults filled in, by name."""
    schedule: dict[str, Script] = {}
    for name, entry in settings.daemon.scripts.items():
        if not entry.enable:
            continue
        schedule[name] = Script(
            name=name,
            module=entry.module or f"{SCRIPT_PACKAGE}.{name}",
            period=entry.period,
            timeout=entry.timeout or min(3 * entry.period, entry.period + 3600),
            sync=entry.sync,
            loop=entry.loop,
            arguments=tuple(entry.arguments),
        )
    return schedule
