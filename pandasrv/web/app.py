"""The ``panda`` WSGI entry: routing, decoding, identity, role checks, encoding and the access log.

No business logic lives here. ``/server/panda/<method>`` and ``/api/v1/<module>/<method>`` both go
through the registry, which is also the whitelist: an unregistered name is answered 403.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import falcon

from pandasrv import metrics
from pandasrv.config import Settings, load_settings
from pandasrv.taskbuffer.errors import DBError
from pandasrv.web import creds_api, harvester_api, job_dispatcher, legacy_creds, legacy_user_if, pilot_api, queues, user_if, utils  # noqa: F401  (registers)
from pandasrv.web.admission import Controller, Verdict, decide, exempt, limits, recorded, shed_body, waited
from pandasrv.web.auth import ANONYMOUS, Authenticator, AuthError, check_loopback
from pandasrv.web.codecs import JSON_TYPE, BadRequest, decode_params, encode_legacy, encode_v1, fail, read_body, to_json
from pandasrv.web.context import Call, Services
from pandasrv.web.metrics import MetricsResource, RequestMetrics, method_label
from pandasrv.web.monitor.resource import add_routes as add_monitor_routes
from pandasrv.web.openapi import openapi_document
from pandasrv.web.outage import RETRYABLE, OutageLog, Overloaded, reason
from pandasrv.web.registry import LEGACY, REGISTRY, Method, ParamError, convert

access_log = logging.getLogger("pandasrv.access")
log = logging.getLogger("pandasrv.web")
# Every 500 is logged with this text; the test suite fails any test whose requests produced it.
INTERNAL_ERROR = "internal error answered 500"


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _allowed(method: Method) -> tuple[str, ...]:
    """The HTTP methods a registered method answers (HEAD too wherever GET is); anything else is a 405."""
    verbs = ("GET", "POST") if method.legacy else method.http
    return verbs + (("HEAD",) if "GET" in verbs else ())


class ApiResource:
    """Serves every registered method, legacy and v1."""

    def __init__(self, services: Services, authenticator: Authenticator) -> None:
        self.services = services
        self.auth = authenticator
        self.outages = OutageLog()

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str, module: str | None = None) -> None:
        self.handle(req, resp, module or LEGACY, name, v1=module is not None)


    def handle(self, req: falcon.Request, resp: falcon.Response, module: str, name: str, v1: bool) -> None:
        started = time.perf_counter()
        legacy = not v1
        identity = ANONYMOUS
        retry = False
        try:
            method = REGISTRY.find(module, name)
            if method is None or method.legacy == v1:
                raise _Refused(403, f"method {name} is forbidden")
            try:
                identity = self.auth.identify(req.env)
            except AuthError as exc:
                raise _Refused(403, str(exc)) from None
            user = identity.user
            if method.db and user and user in self.services.banned_users():
                raise _Refused(403, f"{user} is banned")
            status, content_type, body = self.call(req, method, identity)
        except _Refused as exc:
            status, content_type, body = exc.status, "text/plain", f"ERROR : {exc}".encode()
        except BadRequest as exc:
            status, content_type, body = self._error(legacy, exc.status, str(exc))
        except RETRYABLE as exc:
            self.outages.failed(f"{module}/{name}", exc)
            retry = True
            status, content_type, body = self._error(legacy, 503, reason(exc))
        except DBError as exc:
            log.exception("%s (database error) in %s/%s", INTERNAL_ERROR, module, name)
            status, content_type, body = self._error(legacy, 500, f"database error ({exc.__class__.__name__})")
        except Exception as exc:
            log.exception("%s in %s/%s", INTERNAL_ERROR, module, name)
            status, content_type, body = self._error(legacy, 500, f"server error ({exc.__class__.__name__})")
        if retry:
            resp.set_header("Retry-After", str(self.services.settings.retry_after_seconds))
        elif status < 500:
            self.outages.served()
        if status == 405 and method is not None:
            resp.set_header("Allow", ", ".join(v for v in _allowed(method) if v != "HEAD"))
        resp.status = falcon.code_to_http_status(status)
        resp.content_type = content_type
        resp.data = body
        if self.services.settings.access_log:
            access_log.info("%s %s %s caller=%s status=%d time=%.1fms", req.method, module, name,
                            (identity.user or "-").replace(" ", "_"), status, (time.perf_counter() - started) * 1000)

    @staticmethod
    def _error(legacy: bool, status: int, message: str) -> tuple[int, str, bytes]:
        if legacy:
            return status, "text/plain", f"ERROR : {message}".encode()
        return status, JSON_TYPE, to_json(fail(message))

    def call(self, req: falcon.Request, method: Method, identity: Any) -> tuple[int, str, bytes]:
        settings = self.services.settings
        accept_json = JSON_TYPE in (req.get_header("Accept") or "")
        encode: Callable[[Any], tuple[int, str, bytes]] = (
            (lambda result: encode_legacy(result, accept_json)) if method.legacy else encode_v1)
        if req.method not in _allowed(method):
            message = f"expecting {'/'.join(method.http)}, received {req.method}"
            if method.legacy:
                return 405, "text/plain", f"ERROR : {message}".encode()
            return 405, JSON_TYPE, to_json(fail(message))
        chunked = "chunked" in (req.get_header("Transfer-Encoding") or "").lower()
        # A chunked body has no Content-Length: read the server-decoded stream to its end, within the limit.
        stream = req.stream if chunked and req.content_length is None else req.bounded_stream
        body = read_body(stream, req.content_length, settings.max_body_bytes)
        params, files, json_keys = decode_params(
            req.method, req.content_type or "", req.get_header("Content-Encoding") or "", req.query_string, body,
            method.legacy, settings.max_body_bytes)
        call = Call(identity, self.services, accept_json, files, req.env)
        refusal = self._check_role(method, call)
        if refusal:
            if method.denied:
                return encode(method.denied(refusal))
            if method.legacy:
                raise _Refused(403, refusal)
            return encode(fail(refusal))
        try:
            kwargs = bind(method, params, json_keys)
            return encode(method.handler(call, **kwargs))
        except ParamError as exc:
            if method.legacy:
                raise BadRequest(str(exc)) from None
            return encode(fail(str(exc)))
        except BadRequest as exc:
            if method.legacy or exc.status != 400:
                raise
            return encode(fail(str(exc)))

    @staticmethod
    def _check_role(method: Method, call: Call) -> str | None:
        if method.role == "any":
            return None
        if not call.identity.secure:
            return "SSL secure connection or a verified token is required"
        if method.role == "production" and not call.is_production():
            return "production role is required"
        if method.role == "pilot" and not call.is_pilot():
            return "production or pilot role is required"
        return None


for _verb in falcon.constants.COMBINED_METHODS:  # every verb reaches handle(), which answers the unknown ones 405
    setattr(ApiResource, f"on_{_verb.lower()}", ApiResource.on_get)


def bind(method: Method, params: dict[str, Any], json_keys: set[str]) -> dict[str, Any]:
    """Keep the declared parameters (extras are ignored), check required ones, convert every value.

    Every value goes through ``registry.convert``: v1 JSON values must have their declared JSON type;
    legacy JSON scalars are read as the strings old clients would have form-encoded.
    """
    kwargs: dict[str, Any] = {}
    for param in method.params:
        if param.name not in params:
            if param.required:
                raise ParamError(f"Argument error: missing required parameter {param.name}")
            continue
        value = params[param.name]
        if value is None and method.legacy and not param.required:
            continue  # old clients send null for "not given"
        typed = param.name in json_keys
        if typed and method.legacy and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value, typed = str(value), False
        kwargs[param.name] = convert(param.name, param.annotation, value, typed)
    if method.accepts_any:
        declared = {p.name for p in method.params}
        kwargs.update({k: v for k, v in params.items() if k not in declared})
    return kwargs


class OpenApiResource:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = JSON_TYPE
        resp.media = openapi_document(REGISTRY, f"{req.scheme}://{req.netloc}")


def _forbidden_sink(req: falcon.Request, resp: falcon.Response, **_: Any) -> None:
    resp.status = falcon.HTTP_403
    resp.content_type = "text/plain"
    resp.data = b"ERROR : method  is forbidden"


def _internal_error(req: falcon.Request, resp: falcon.Response, exc: Exception, params: dict[str, Any]) -> None:
    """Any exception that escapes a resource outside the API (cache files, monitor pages): a logged 500."""
    log.error("%s for %s %s", INTERNAL_ERROR, req.method, req.path, exc_info=exc)
    resp.status = falcon.HTTP_500
    resp.content_type = "text/plain"
    resp.data = f"ERROR : server error ({exc.__class__.__name__})".encode()


class Admission:
    """Falcon middleware: sheds a request before its route runs, with a 503 + ``Retry-After`` in the protocol's
    form (v1 JSON under /api/, ``ERROR : ...`` text elsewhere), when the front server shed it
    (``pandasrv serve``), when this process's controller does not admit it (a mod_wsgi daemon process under
    ``pandasrv apache``), or when it waited longer than ``queue_timeout`` for a thread. Exempt paths are
    neither shed nor counted. In-process tests have neither front server, so nothing is shed there."""

    def __init__(self, settings: Settings, outages: OutageLog) -> None:
        self.settings = settings
        self.outages = outages
        self.controller = Controller(limits(settings.threads, settings.db_connections))

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if exempt(req.path):
            return
        verdict = recorded()
        if verdict is None and req.env.get("mod_wsgi.process_group"):
            verdict = decide(req.path, self.controller)
            req.context.admission_counted = verdict is Verdict.ADMITTED
        shed = verdict.value if verdict is not None and verdict.shed else None
        age = waited(req.env)
        if shed is None and age is not None and age > self.settings.queue_timeout:
            shed = f"waited {age:.2f} s for a web thread (limit {self.settings.queue_timeout:g} s)"
        if shed is not None:
            self._shed(req, resp, Overloaded(shed))

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        if req.context.get("admission_counted"):
            self.controller.done()

    def shed_outside(self, path: str, why: str) -> None:
        """A request the front server answered 503 itself (``ShedWorker``): logged and counted like the rest."""
        self.outages.failed(path, Overloaded(why))
        if self.settings.monitor.metrics:
            metrics.HTTP_REQUESTS.labels(method_label(path), "503").inc()

    def _shed(self, req: falcon.Request, resp: falcon.Response, exc: Overloaded) -> None:
        self.outages.failed(req.path, exc)
        resp.status = falcon.HTTP_503
        resp.set_header("Retry-After", str(self.settings.retry_after_seconds))
        resp.content_type, resp.data = shed_body(req.path.startswith("/api/"), exc)
        resp.complete = True


class PandaApp(falcon.App[falcon.Request, falcon.Response]):
    """The falcon app plus the per-process services it serves from (for the worker hooks) and its admission."""

    services: Services
    admission: Admission


def create_app(settings: Settings) -> PandaApp:
    """Build the WSGI application for ``settings``; no database work happens until the first request."""
    check_loopback(settings)
    logging.getLogger("pandasrv").setLevel(settings.log_level.upper())
    services = Services(settings)
    authenticator = Authenticator(settings)
    api = ApiResource(services, authenticator)
    middleware: list[Any] = [RequestMetrics()] if settings.monitor.metrics else []
    admission = Admission(settings, api.outages)
    app = PandaApp(cors_enable=False, middleware=[*middleware, admission])
    app.req_options.strip_url_path_trailing_slash = False
    app.add_route("/server/panda/{name}", api)
    app.add_route("/api/v1/{module}/{name}", api)
    app.add_route("/api/v1/openapi.json", OpenApiResource(settings))
    app.add_route("/cache/{name}", utils.CacheFile(services))
    app.add_route("/cache/schedconfig/{name}", queues.SchedconfigFile(services))
    app.add_sink(_forbidden_sink, r"/(server|api)/")
    app.add_error_handler(Exception, _internal_error)
    if settings.monitor.enable:
        add_monitor_routes(app, services, authenticator)
    if settings.monitor.enable and settings.monitor.metrics:
        app.add_route("/metrics", MetricsResource(services))
    app.services = services
    app.admission = admission
    return app


_application: PandaApp | None = None


def application(environ: dict[str, Any], start_response: Any) -> Any:
    """``pandasrv.web.app:application``: settings from the environment / PANDASRV_CONFIG, built on first call."""
    global _application
    if _application is None:
        _application = create_app(load_settings())
    return _application(environ, start_response)
