"""The aiohttp application: module-level middlewares, route tables, resources in ``cleanup_ctx``.

``create_app(orch, settings)`` serves an orchestrator the caller owns (tests, a host process).
``create_app(None, settings, runtime=ctx)`` lets the app own it: ``ctx(app)`` is an async
context (``cleanup_ctx`` style) that opens the runtime, yields the orchestrator and closes it;
``saga-journey serve`` passes one that also owns the webhook client session. Either way the
event feed's subscriptions are opened and closed in ``cleanup_ctx`` after (inside) the runtime.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager

from aiohttp import web

from saga_journey.runtime.orchestrator import SagaOrchestrator

from .admission import Admission
from .auth import Authenticator
from .docs import docs_routes
from .middlewares import AUTHENTICATOR, MIDDLEWARES, ROUTE_TABLES
from .openapi import build_openapi
from .routedef import Handler, Route, RouteTable
from .routes import GATEWAY, Gateway, routes
from .routing import Router
from .settings import GatewaySettings
from .ui_routes import console_routes, static_routes

__all__ = ["GATEWAY", "RuntimeContext", "create_app"]

log = logging.getLogger("saga_journey.http")

RuntimeContext = Callable[[web.Application], AbstractAsyncContextManager[SagaOrchestrator]]


def public_routes(metrics_handler: Handler | None) -> RouteTable:
    """GET /metrics (when served) and the /docs page: no credential, like /openapi.json."""
    table = RouteTable()
    if metrics_handler is not None:
        table.add(Route("GET", "/metrics", metrics_handler, None, "metrics", head=True))
    for path, name, handler in docs_routes() + static_routes():  # /docs and the console at /ui/
        table.add(Route("GET", path, handler, None, name, head=True))
    return table


def create_app(
    orchestrator: SagaOrchestrator | None,
    settings: GatewaySettings,
    *,
    metrics_handler: Handler | None = None,
    authenticator: Authenticator | None = None,
    runtime: RuntimeContext | None = None,
    extra_routes: Sequence[RouteTable] = (),
    router: Router | None = None,
) -> web.Application:
    """Build the gateway app. ``metrics_handler`` (optional) is mounted, unauthenticated, at GET /metrics;
    ``extra_routes``: more route tables (their roles are honoured like the gateway's own)."""
    if (orchestrator is None) == (runtime is None):
        raise ValueError("create_app needs exactly one of an orchestrator or a runtime context")
    auth = authenticator or Authenticator(settings.api_keys, insecure_dev=settings.insecure_dev)
    if not settings.insecure_dev and not settings.api_keys and authenticator is None:
        log.warning("no API keys are configured: every /v1 request will be answered 401")
    admission = Admission(settings.max_in_flight, settings.max_queued_per_saga, settings.retry_after_s)
    tables = (routes, console_routes, public_routes(metrics_handler), *extra_routes)
    document = build_openapi(routes.routes + console_routes.routes, metrics=metrics_handler is not None)
    gateway = Gateway(orchestrator, settings, admission, openapi_body=json.dumps(document).encode(), router=router)

    app = web.Application(
        middlewares=MIDDLEWARES,
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
    app[AUTHENTICATOR] = auth
    app[ROUTE_TABLES] = tables
    for table in tables:
        app.add_routes(table)

    if runtime is not None:
        async def owned_runtime(app: web.Application) -> AsyncIterator[None]:
            async with runtime(app) as orch:
                gateway.bind(orch)
                yield

        app.cleanup_ctx.append(owned_runtime)

    async def event_feed(_: web.Application) -> AsyncIterator[None]:
        gateway.tail.start()
        yield
        gateway.tail.close()

    async def on_shutdown(_: web.Application) -> None:
        gateway.ready = False
        gateway.tail.close()  # event streams end now, so they never hold up the shutdown

    async def hop_sessions(_: web.Application) -> AsyncIterator[None]:
        yield
        await gateway.router.close()

    app.cleanup_ctx.append(hop_sessions)

    app.cleanup_ctx.append(event_feed)
    app.on_shutdown.append(on_shutdown)
    return app
