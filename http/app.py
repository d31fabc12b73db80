"""The aiohttp application: one middleware (observe, authenticate, admit, render errors) + routes."""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web

from saga_journey.runtime.errors import SagaError
from saga_journey.runtime.orchestrator import SagaOrchestrator

from .admission import Admission
from .auth import Authenticator, repeated_headers
from .docs import docs_routes
from .openapi import query_params
from .problems import Problem, from_problem, from_saga_error, problem_response
from .routes import Gateway, Handler, set_principal
from .settings import GatewaySettings

log = logging.getLogger("saga_journey.http")

GATEWAY = web.AppKey("gateway", Gateway)
_UNMATCHED = "unmatched"


def _check_query(request: web.Request, allowed: tuple[str, ...]) -> None:
    """Unknown query parameters are an error (422), as unknown body fields are: never ignored."""
    unknown = sorted({k for k in request.query if k not in allowed})
    if unknown:
        shown = [k[:64] for k in unknown[:20]]
        raise Problem(
            422, "invalid_input",
            f"unknown query parameters {shown}; allowed here: {list(allowed)}",
            unknown=shown, allowed=list(allowed),
        )


def create_app(
    orchestrator: SagaOrchestrator,
    settings: GatewaySettings,
    *,
    metrics_handler: Handler | None = None,
    authenticator: Authenticator | None = None,
) -> web.Application:
    """Build the gateway app. ``metrics_handler`` (optional) is mounted, unauthenticated, at GET /metrics."""
    auth = authenticator or Authenticator(settings.api_keys, insecure_dev=settings.insecure_dev)
    if not settings.insecure_dev and not settings.api_keys and authenticator is None:
        log.warning("no API keys are configured: every /v1 request will be answered 401")
    admission = Admission(settings.max_in_flight, settings.max_queued_per_saga, settings.retry_after_s)
    gateway = Gateway(orchestrator, settings, admission, metrics=metrics_handler is not None)
    routes = gateway.routes()
    roles: dict[Any, str | None] = {}
    queries = {r.handler: query_params(r.name) for r in routes}
    observer = orchestrator.observer
    retry_after = settings.retry_after_s
    unauthorized = {"WWW-Authenticate": 'Bearer realm="saga-journey"'}

    async def dispatch(request: web.Request, handler: Handler) -> web.StreamResponse:
        match = request.match_info
        exc = match.http_exception
        if exc is not None:
            if exc.status == 405:
                allow = exc.headers.get("Allow", "")
                return problem_response(
                    405, "method_not_allowed", f"{request.method} is not allowed here; allowed: {allow}",
                    headers={"Allow": allow},
                )
            return problem_response(404, "not_found", f"no endpoint at {request.path[:200]}")
        repeated = repeated_headers(request.headers)
        if repeated:
            return problem_response(
                400, "repeated_header",
                f"header {', '.join(repeated)} must appear at most once in a request",
            )
        role = roles.get(match.route.handler)
        if role is None:
            _check_query(request, queries.get(match.route.handler, ()))
            return await handler(request)
        who = auth.authenticate(request.headers.get("Authorization"))
        if who is None:
            return problem_response(
                401, "unauthorized", "a valid bearer token is required (Authorization: Bearer <token>)",
                headers=unauthorized,
            )
        if not who.can(role):
            return problem_response(403, "forbidden", f"this credential lacks the {role!r} role")
        _check_query(request, queries.get(match.route.handler, ()))
        set_principal(request, who)
        admission.enter()
        try:
            return await handler(request)
        finally:
            admission.leave()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        resource = request.match_info.route.resource
        template = resource.canonical if resource is not None else _UNMATCHED
        status = 500
        try:
            resp = await dispatch(request, handler)
        except Problem as p:
            resp = from_problem(p)
        except SagaError as e:
            resp = from_saga_error(e, retry_after)
        except web.HTTPException as e:
            resp = problem_response(e.status, "http_error", e.reason)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, template)
            resp = problem_response(500, "internal_error", "unexpected server error; see the server log")
        status = resp.status
        observer.on_http_request(template, status, time.perf_counter() - started)
        return resp

    app = web.Application(
        middlewares=[middleware],
        client_max_size=settings.max_body_bytes,
        # keepalive_timeout: aiohttp closes a connection whose next request's headers are not
        # complete this long after it opened or after its previous response (slow headers).
        # lingering_time: how long an unread (rejected) body is drained before closing.
        # max_line_size/max_field_size: room for long ids and query strings; past them aiohttp
        # itself answers 400 (plain text) before any handler runs.
        handler_args={
            "keepalive_timeout": settings.header_timeout_s,
            "lingering_time": 1.0,
            "max_line_size": 32768,
            "max_field_size": 32768,
        },
    )
    app[GATEWAY] = gateway
    for r in routes:
        app.router.add_route(r.method, r.path, r.handler, name=r.name)
        roles[r.handler] = r.role
    if metrics_handler is not None:
        app.router.add_get("/metrics", metrics_handler, name="metrics")
        roles[metrics_handler] = None
    for path, name, handler in docs_routes():  # public, like /openapi.json
        app.router.add_get(path, handler, name=name)
        roles[handler] = None

    async def on_shutdown(_: web.Application) -> None:
        gateway.ready = False
        gateway.tail.close()  # event streams end now, so they never hold up the shutdown

    async def event_feed(_: web.Application) -> Any:
        gateway.tail.start()
        yield
        gateway.tail.close()

    app.cleanup_ctx.append(event_feed)

    app.on_shutdown.append(on_shutdown)
    return app
