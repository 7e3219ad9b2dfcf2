"""Falcon resources of ``/monitor/``: access check, query parsing, HTML (Jinja2, autoescaped) or JSON.

Every page is GET only (HEAD too); nothing can change state. Bad input is answered with the page's
error form (HTML or JSON) and a 4xx status, never a 500.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from typing import Any, Callable

import falcon
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from pandasrv.taskbuffer.errors import DBError, DBTimeout, PoolTimeout
from pandasrv.web.auth import Authenticator, AuthError, has_production_role
from pandasrv.web.context import Services
from pandasrv.web.monitor.pages import STATE_ORDER, MonitorData, PageError, Viewer, check_params
from pandasrv.web.monitor.plots import queue_chart, timeline_chart

log = logging.getLogger("pandasrv.web.monitor")

NAV = (("overview", "/monitor/"), ("jobs", "/monitor/jobs"), ("queues", "/monitor/queues"),
       ("users", "/monitor/users"), ("plots", "/monitor/plots"), ("daemon", "/monitor/daemon"))
# No inline scripts or styles are used: the policy lets a hostile job field do nothing even if escaping failed.
CSP = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"


def _json_default(value: Any) -> Any:
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    return str(value)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, _dt.datetime) else ("" if value is None else str(value))


def build_environment() -> Environment:
    env = Environment(loader=PackageLoader("pandasrv.web.monitor", "templates"),
                      autoescape=select_autoescape(["html"]), undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["when"] = _when
    env.globals.update(nav=NAV, state_order=STATE_ORDER, timeline_chart=timeline_chart,
                       queue_chart=queue_chart)
    return env


class MonitorPages:
    """One resource for every page; ``page`` is chosen by the route's suffix."""

    def __init__(self, services: Services, authenticator: Authenticator) -> None:
        self.services = services
        self.auth = authenticator
        self.data = MonitorData(services)
        self.templates = build_environment()

    # --- routes ------------------------------------------------------------------------------------
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._serve(req, resp, "overview", lambda viewer: self.data.overview(viewer))

    def on_get_jobs(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._serve(req, resp, "jobs", lambda viewer: self.data.jobs(_query(req), viewer))

    def on_get_job(self, req: falcon.Request, resp: falcon.Response, panda_id: str) -> None:
        def build(viewer: Viewer) -> dict[str, Any]:
            if not panda_id.isdigit() or len(panda_id) > 18:
                raise PageError(400, f"a PandaID is a whole number, not {panda_id!r}")
            return self.data.job(int(panda_id), viewer)

        self._serve(req, resp, "job", build)

    def on_get_queues(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._serve(req, resp, "queues", lambda viewer: self.data.queues(viewer))

    def on_get_users(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._serve(req, resp, "users", lambda viewer: self.data.users(viewer))

    def on_get_plots(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._serve(req, resp, "plots", lambda viewer: self.data.plots(_query(req), viewer))

    def on_get_daemon(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._serve(req, resp, "daemon", lambda viewer: self.data.daemon(viewer))

    # --- machinery ----------------------------------------------------------------------------------
    def _serve(self, req: falcon.Request, resp: falcon.Response, page: str,
               build: Callable[[Viewer], dict[str, Any]]) -> None:
        fmt = req.get_param("format") or "html"
        as_json = fmt == "json"
        try:
            if fmt not in ("html", "json"):
                raise PageError(400, f"format must be html or json, not {fmt!r}")
            check_params(page, _query(req))
            data = build(self._viewer(req))
            status = 200
        except PageError as exc:
            status, data = exc.status, {"page": page, "error": str(exc)}
        except (DBTimeout, PoolTimeout) as exc:
            status, data = 503, {"page": page, "error": f"database busy, retry later ({exc.__class__.__name__})"}
        except DBError as exc:
            log.exception("monitor %s: database error", page)
            status, data = 500, {"page": page, "error": f"database error ({exc.__class__.__name__})"}
        resp.status = falcon.code_to_http_status(status)
        resp.set_header("Cache-Control", "no-store")
        resp.set_header("X-Content-Type-Options", "nosniff")
        if as_json:
            resp.content_type = "application/json"
            resp.data = json.dumps(data, default=_json_default).encode()
            return
        resp.set_header("Content-Security-Policy", CSP)
        resp.content_type = "text/html; charset=utf-8"
        template = "error.html" if "error" in data else f"{page}.html"
        resp.data = self.templates.get_template(template).render(d=data, page=page, query=req.params).encode()

    def _viewer(self, req: falcon.Request) -> Viewer:
        """Who asks, under the configured identity mode (see docs/monitor.md, Access)."""
        settings = self.services.settings
        try:
            identity = self.auth.identify(req.env)
        except AuthError as exc:
            raise PageError(403, f"authentication failed: {exc}") from None
        if settings.auth == "none":
            return Viewer()
        if not identity.secure:
            if not settings.monitor.anonymous:
                raise PageError(403, "the monitor needs a verified token or certificate")
            if settings.monitor.own_jobs_only:
                raise PageError(403, "the monitor shows only your own jobs: sign in with a token or certificate")
            return Viewer(see_private=False)
        if settings.monitor.own_jobs_only and not has_production_role(identity, settings):
            return Viewer(only_user=identity.user)
        return Viewer()


def _query(req: falcon.Request) -> dict[str, str]:
    """The query string with one value per name (the last one given)."""
    return {k: v if isinstance(v, str) else v[-1] for k, v in req.params.items()}


STATIC_TYPES = {"monitor.css": "text/css", "favicon.svg": "image/svg+xml"}


class StaticFile:
    """The monitor's style sheet and icon, shipped in the package (the icon spares browsers a 404 on
    /favicon.ico, which they report as a console error)."""

    def __init__(self, name: str) -> None:
        from importlib.resources import files

        self.content_type = STATIC_TYPES[name]
        self.body = files("pandasrv.web.monitor").joinpath(f"static/{name}").read_bytes()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = self.content_type
        resp.set_header("Cache-Control", "max-age=3600")
        resp.data = self.body


class _ToIndex:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPMovedPermanently("/monitor/")


def add_routes(app: falcon.App[falcon.Request, falcon.Response], services: Services, authenticator: Authenticator) -> None:
    pages = MonitorPages(services, authenticator)
    app.add_route("/monitor", _ToIndex())
    app.add_route("/monitor/", pages)
    app.add_route("/monitor/jobs", pages, suffix="jobs")
    app.add_route("/monitor/jobs/{panda_id}", pages, suffix="job")
    app.add_route("/monitor/queues", pages, suffix="queues")
    app.add_route("/monitor/users", pages, suffix="users")
    app.add_route("/monitor/plots", pages, suffix="plots")
    app.add_route("/monitor/daemon", pages, suffix="daemon")
    for name in STATIC_TYPES:
        app.add_route(f"/monitor/static/{name}", StaticFile(name))
    app.add_route("/favicon.ico", StaticFile("favicon.svg"))  # what a browser asks for on a JSON page
