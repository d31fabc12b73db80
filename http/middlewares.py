"""The gateway's middlewares, module-level as aiohttp intends; they read their state from the app.

``problems`` (outermost) times every request for the metrics and renders every error as
problem+json; ``access`` turns an unmatched path or method into a problem, refuses repeated
identity headers, authenticates and checks the matched route's role (declared on the route),
parses its query parameters (``schemas.REQUESTS``) and holds an admission slot while it runs;
``to_owner`` (innermost) sends a request that belongs to another worker of ``serve --workers``
to it (``routing``), so that handlers only ever see requests for this process.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from saga_journey.runtime.errors import SagaError

from .auth import Authenticator, repeated_headers
from .problems import Problem, from_problem, from_saga_error, problem_response
from .routedef import Handler, RouteTable, role_of
from .hop import HOP_HEADER, WORKER_HEADER
from .routing import HOP_MARGIN_S
from .routes import GATEWAY, principal, query, set_principal, set_query
from .schemas import parse_query, spec_of

log = logging.getLogger("saga_journey.http")

AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
ROUTE_TABLES = web.AppKey("route_tables", tuple)  # the RouteTables registered on the app
_UNMATCHED = "unmatched"
_UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="saga-journey"'}


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    resource = request.match_info.route.resource
    template = resource.canonical if resource is not None else _UNMATCHED
    gateway = request.app[GATEWAY]
    try:
        resp = await handler(request)
    except Problem as p:
        resp = from_problem(p)
    except SagaError as e:
        resp = from_saga_error(e, gateway.settings.retry_after_s)
    except web.HTTPException as e:
        resp = problem_response(e.status, "http_error", e.reason)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, template)
        resp = problem_response(500, "internal_error", "unexpected server error; see the server log")
    if gateway.router.peers():
        if not resp.prepared:
            resp.headers.setdefault(WORKER_HEADER, str(gateway.router.index))  # a forwarded answer names its owner
        if HOP_HEADER in request.headers:
            return resp  # counted by the worker it reached first (which timed the whole round trip)
    if gateway.orch is not None:
        gateway.orch.observer.on_http_request(template, resp.status, time.perf_counter() - started)
    return resp


@web.middleware
async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
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
            400, "repeated_header", f"header {', '.join(repeated)} must appear at most once in a request",
        )
    tables: tuple[RouteTable, ...] = request.app[ROUTE_TABLES]
    _, role = role_of(tables, match.route.name)
    if role is None:  # public
        set_query(request, parse_query(spec_of(request), request.query))
        return await handler(request)
    who = request.app[AUTHENTICATOR].authenticate(request.headers.get("Authorization"))
    if who is None:
        return problem_response(
            401, "unauthorized", "a valid bearer token is required (Authorization: Bearer <token>)",
            headers=_UNAUTHORIZED,
        )
    if not who.can(role):
        return problem_response(403, "forbidden", f"this credential lacks the {role!r} role")
    set_query(request, parse_query(spec_of(request), request.query))
    set_principal(request, who)
    admission = request.app[GATEWAY].admission
    admission.enter()
    try:
        return await handler(request)
    finally:
        admission.leave()


# Requests that change one saga: they run in its owner (path parameter ``saga_id``).
SAGA_WRITES = frozenset({"advance_saga_step", "fail_saga_step", "compensate_saga", "retry_compensation",
                         "skip_compensation"})


@web.middleware
async def to_owner(request: web.Request, handler: Handler) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    router = gateway.router
    if not router.peers() or HOP_HEADER in request.headers or request.match_info.http_exception is not None:
        return await handler(request)
    name = request.match_info.route.name
    target: int | None = None
    timeout_s = gateway.settings.reply_timeout_s + HOP_MARGIN_S
    if name in SAGA_WRITES:
        target = router.saga_target(principal(request).tenant_id, request.match_info["saga_id"])
    elif name == "get_saga_status" and query(request).get("wait"):
        # a wait is woken by the owner's commits
        target = router.saga_target(principal(request).tenant_id, request.match_info["saga_id"])
        timeout_s += float(query(request)["wait"])
    elif name == "design_saga_journey":
        target = router.journey_target()
    if target is None:
        router.stats.local += 1
        return await handler(request)
    body = await request.read() if request.body_exists else None
    return await router.forward(request, target, body, timeout_s=timeout_s)


MIDDLEWARES = (problems, access, to_owner)
