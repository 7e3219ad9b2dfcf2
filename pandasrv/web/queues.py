"""Queues as the pilot sees them: the schedconfig JSON at ``/cache/schedconfig/<NAME>.all.json``.

A queue row keeps only what the operator set (site, status, and a JSON ``data`` of overrides such as
storages and limits); the full description is rendered from defaults modelled on the pilot's
queuedata so that a queue added with just a name is usable by a generic pilot with local storage.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import falcon

from pandasrv.web.codecs import ok
from pandasrv.web.context import Call, Services
from pandasrv.web.registry import endpoint

QUEUE_STATUSES = ("online", "offline", "test", "brokeroff")
DEFAULT_STORAGE = "LOCAL_DISK"
_ACTIVITIES = ("pr", "pw", "pl")

_DEFAULTS: dict[str, Any] = {
    "state": "ACTIVE", "type": "unified", "resource_type": "grid", "catchall": "", "environ": "",
    "platform": "", "container_type": "", "container_options": "", "maxwdir": 20000, "maxrss": 4000,
    "maxinputsize": 10000, "maxtime": 7200, "timefloor": 0, "corecount": 1, "is_cvmfs": False,
    "pilot_version": "current", "copytools": {"mv": {"setup": ""}},
    "acopytools": {a: ["mv"] for a in _ACTIVITIES}, "aprotocols": {}, "params": {},
    "direct_access_lan": False, "direct_access_wan": False,
}


def storages_for(storage: str) -> dict[str, list[str]]:
    return {activity: [storage] for activity in _ACTIVITIES}


def describe(queue: dict[str, Any]) -> dict[str, Any]:
    """The pilot's queuedata for a queue row: defaults, then the stored overrides, then name/site/status."""
    data = queue.get("data") or {}
    site = queue.get("site") or queue["name"]
    description = copy.deepcopy(_DEFAULTS)
    description["astorages"] = storages_for(DEFAULT_STORAGE)
    description.update(copy.deepcopy(data))
    description.update(name=queue["name"], nickname=queue["name"], resource=site, site=site,
                       status=queue["status"], panda_resource=data.get("panda_resource", queue["name"]),
                       atlas_site=data.get("atlas_site", site))
    return description


def parse_setting(text: str) -> tuple[str, Any]:
    """``key=value`` from the command line; the value is JSON when it parses, else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ValueError(f"expected key=value, got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    if key == "storage":
        return "astorages", storages_for(str(value))
    return key, value


class SchedconfigFile:
    """GET ``/cache/schedconfig/<NAME>.all.json`` (or ``.pilot.json``): one queue's description."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        for suffix in (".all.json", ".pilot.json"):
            if name.endswith(suffix):
                queue = self.services.queue(name[: -len(suffix)])
                break
        else:
            raise falcon.HTTPNotFound(title=f"{name} is not a queue description (<NAME>.all.json)")
        if queue is None:
            raise falcon.HTTPNotFound(title=f"no queue named {name[: -len(suffix)]}")
        resp.content_type = "application/json"
        resp.data = json.dumps(describe(queue), indent=1).encode()


@endpoint("metaconfig/get_site_specs", http=("GET",))
def get_site_specs(call: Call) -> dict[str, Any]:
    """The description of every queue, by name."""
    return ok({queue["name"]: describe(queue) for queue in call.tb.list_queues()})
