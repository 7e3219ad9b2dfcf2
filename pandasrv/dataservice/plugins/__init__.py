"""Plugin points of the agents: experiment-specific behaviour chosen per job VO from ``settings.plugins``.

PanDA configures ``adder_plugins = vo:module:Class,...`` with ``any`` as the catch-all; here each agent has a
table ``[plugins.<agent>]`` mapping a VO (or ``any``) to ``module:Class``. A plugin class is built once per
process as ``Class(task_buffer, settings)``; the generic plugins (``generic.py``) apply when nothing matches.
"""

from __future__ import annotations

import importlib
from typing import Any

from pandasrv.config import Settings
from pandasrv.taskbuffer.store import Store

GENERIC = "pandasrv.dataservice.plugins.generic"
AGENTS = {"setupper": "SetupperPlugin", "activator": "ActivatorPlugin", "adder": "AdderPlugin",
          "finisher": "FinisherPlugin", "closer": "CloserPlugin"}


class PluginError(Exception):
    """A configured plugin cannot be loaded."""


class Plugins:
    """The plugins of one agent, loaded lazily and cached per VO."""

    def __init__(self, agent: str, task_buffer: Store, settings: Settings) -> None:
        self.agent = agent
        self.task_buffer = task_buffer
        self.settings = settings
        self._table: dict[str, str] = getattr(settings.plugins, agent)
        self._loaded: dict[str, Any] = {}

    def for_vo(self, vo: str | None) -> Any:
        key = vo if vo in self._table else "any" if "any" in self._table else ""
        if key not in self._loaded:
            path = self._table.get(key) or f"{GENERIC}:{AGENTS[self.agent]}"
            self._loaded[key] = load_class(path)(self.task_buffer, self.settings)
        return self._loaded[key]


def load_class(path: str) -> type:
    module_name, _, class_name = path.partition(":")
    try:
        plugin: type = getattr(importlib.import_module(module_name), class_name)
        return plugin
    except (ImportError, AttributeError, ValueError) as exc:
        raise PluginError(f"cannot load plugin {path!r}: {exc}") from None
