"""Route handlers: parse, ask the runtime (without blocking the loop), render. One per endpoint.

Each handler is declared on the module's ``routes`` table with its path, name and role; its
query parameters and body are those of its entry in ``schemas.REQUESTS`` (checked before and
when it runs). The state handlers share lives in the app's ``Gateway`` (``request.app[GATEWAY]``).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from saga_journey.runtime.journeys import ID_PATTERN
from saga_journey.runtime.orchestrator import SagaOrchestrator
from saga_journey.runtime.retention import prune_round

from . import events
from .admission import Admission
from .auth import Principal
from .codec import dumps, read_body, render
from .hop import HOP_HEADER
from .problems import Problem
from .routing import HOP_MARGIN_S, LocalRouter, Router
from .routedef import Handler, RouteTable
from .schemas import FILTER_NAMES, parse_body, spec_of
from .settings import GatewaySettings

__all__ = ["GATEWAY", "Gateway", "Handler", "principal", "query", "routes", "set_principal", "set_query"]

_PRINCIPAL_KEY = web.RequestKey("principal", Principal)
_QUERY_KEY = web.RequestKey("query", dict)
MAX_PRUNE_COUNT = 1_000_000


class Gateway:
    """What the handlers share: the orchestrator (bound when the runtime context opens), the
    settings, admission control, the event feed and the readiness flag."""

    def __init__(
        self, orchestrator: SagaOrchestrator | None, settings: GatewaySettings, admission: Admission,
        *, openapi_body: bytes = b"", router: Router | None = None,
    ) -> None:
        """``openapi_body``: the document GET /openapi.json serves (built by ``create_app``);
        ``router``: where requests run (default: all here, one process)."""
        self.settings = settings
        self.router: Router = router or LocalRouter()
        self.admission = admission
        self.ready = True
        self.openapi_body = openapi_body
        self.orch: SagaOrchestrator = None  # type: ignore[assignment]
        self.tail: events.FeedTail = None  # type: ignore[assignment]
        if orchestrator is not None:
            self.bind(orchestrator)

    def bind(self, orchestrator: SagaOrchestrator) -> None:
        self.orch = orchestrator
        self.tail = events.FeedTail(orchestrator)

    async def body(self, request: web.Request) -> dict[str, Any]:
        raw = await read_body(request, self.settings.max_body_bytes, self.settings.body_timeout_s)
        return parse_body(spec_of(request), raw)


GATEWAY = web.AppKey("gateway", Gateway)
routes = RouteTable()


def gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY]


def principal(request: web.Request) -> Principal:
    return request[_PRINCIPAL_KEY]


def set_principal(request: web.Request, who: Principal) -> None:
    request[_PRINCIPAL_KEY] = who


def query(request: web.Request) -> dict[str, Any]:
    """The route's query parameters, parsed by the middleware from ``schemas.REQUESTS``."""
    return request[_QUERY_KEY]


def set_query(request: web.Request, values: dict[str, Any]) -> None:
    request[_QUERY_KEY] = values


def path_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not ID_PATTERN.fullmatch(value):
        # No saga or journey can have such an id: answer as for any unknown id.
        raise Problem(404, "not_found", f"{name} {value[:140]!r} not found")
    return value


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 0 < len(key) <= 255:
        raise Problem(422, "invalid_input", "Idempotency-Key must be 1-255 characters")
    return key


def _filters(q: dict[str, Any]) -> dict[str, Any]:
    """The list filters shared by GET /v1/sagas and GET /v1/events."""
    return {name: q[name] for name in FILTER_NAMES}


# --- service -------------------------------------------------------------------------------

@routes.get("/healthz", name="healthz", role=None)
async def healthz(request: web.Request) -> web.Response:
    return render(request, {"status": "ok"})


@routes.get("/readyz", name="readyz", role=None)
async def readyz(request: web.Request) -> web.Response:
    gw = gateway(request)
    if not gw.ready:
        raise Problem(503, "not_ready", "the gateway is starting or shutting down", headers={"Retry-After": "1"})
    if gw.router.peers() and HOP_HEADER not in request.headers:  # serve --workers: ready when all are
        down = [i for i, body in await gw.router.gather("/readyz") if body is None]
        if down:
            raise Problem(503, "not_ready", f"worker(s) {down} of this gateway are not serving yet",
                          headers={"Retry-After": "1"}, workers_down=down)
    return render(request, {"status": "ready"})


@routes.get("/openapi.json", name="openapi", role=None)
async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=gateway(request).openapi_body, content_type="application/json")


# --- journeys ------------------------------------------------------------------------------

@routes.get("/v1/journey-templates", name="journey_templates", role="read")
async def templates(request: web.Request) -> web.Response:
    return render(request, {"templates": gateway(request).orch.journey_templates()})


@routes.post("/v1/journeys", name="design_saga_journey", role="admin")
async def design_journey(request: web.Request) -> web.Response:
    gw = gateway(request)
    body = await gw.body(request)
    journey = await gw.orch.design_saga_journey(
        body["journey_type"],
        body.get("requirements"),
        body.get("compensation_handlers"),
        principal(request).user_context(),
        journey_id=body.get("journey_id"),
        allow_unregistered_handlers=body.get("allow_unregistered_handlers", False),
        idempotency_key=_idempotency_key(request),
    )
    return render(request, journey, 201, {"Location": f"/v1/journeys/{journey['journey_id']}"})


@routes.get("/v1/journeys", name="list_journeys", role="read")
async def list_journeys(request: web.Request) -> web.Response:
    found = await gateway(request).orch.list_journeys(principal(request).user_context())
    return render(request, {"journeys": found})


@routes.get("/v1/journeys/{journey_id}", name="get_journey", role="read")
async def get_journey(request: web.Request) -> web.Response:
    journey_id = path_id(request, "journey_id")
    journey = await gateway(request).orch.get_journey(
        journey_id, principal(request).user_context(), version=query(request)["version"]
    )
    return render(request, journey)


# --- sagas ---------------------------------------------------------------------------------

@routes.post("/v1/sagas", name="execute_saga_journey", role="write")
async def execute(request: web.Request) -> web.Response:
    gw = gateway(request)
    body = await gw.body(request)
    who = principal(request)
    target = gw.router.create_target(who.tenant_id, body.get("saga_id"), _idempotency_key(request)) \
        if gw.router.peers() and HOP_HEADER not in request.headers else None
    if target is not None:  # its id (or its Idempotency-Key) is in another worker's shard
        return await gw.router.forward(request, target, dumps(body), timeout_s=gw.settings.reply_timeout_s + HOP_MARGIN_S,
                                       content_type="application/json")
    status = await gw.orch.execute_saga_journey(
        body["journey_id"],
        body.get("user_id") or who.user_id,
        body.get("context"),
        who.user_context(),
        saga_id=body.get("saga_id"),
        journey_version=body.get("journey_version"),
        idempotency_key=_idempotency_key(request),
    )
    return render(request, status, 201, {"Location": f"/v1/sagas/{status['saga_id']}"})


@routes.get("/v1/sagas", name="list_sagas", role="read")
async def list_sagas(request: web.Request) -> web.Response:
    q = query(request)
    page = await gateway(request).orch.list_sagas(
        q["status"], q["journey_type"], principal(request).user_context(),
        limit=q["limit"], cursor=q["cursor"], order=q["order"], **_filters(q),
    )
    return render(request, page)


@routes.get("/v1/sagas/{saga_id}", name="get_saga_status", role="read")
async def get_saga(request: web.Request) -> web.Response:
    """The saga's status; with ``wait=SECONDS`` a long-poll: answered once the saga is
    terminal or (with ``version=N``) its version is greater than N, else at the timeout."""
    saga_id = path_id(request, "saga_id")
    who = principal(request).user_context()
    q, orch = query(request), gateway(request).orch
    if not q["wait"]:
        return render(request, await orch.get_saga_status(saga_id, who))
    status = await orch.wait_for_saga(saga_id, who, timeout=q["wait"], version=q["version"], return_on_timeout=True)
    return render(request, status)


@routes.get("/v1/sagas/{saga_id}/history", name="get_saga_execution_history", role="read")
async def history(request: web.Request) -> web.Response:
    saga_id = path_id(request, "saga_id")
    q = query(request)
    found = await gateway(request).orch.get_saga_execution_history(
        saga_id, principal(request).user_context(), after_seq=q["after_seq"], limit=q["limit"],
    )
    return render(request, {"saga_id": saga_id, "events": found})


@routes.get("/v1/sagas/{saga_id}/events", name="saga_events", role="read")
async def saga_events(request: web.Request) -> web.StreamResponse:
    """SSE of one saga's events; ids are its history seqs; without Last-Event-ID from seq 0."""
    saga_id = path_id(request, "saga_id")
    who, gw = principal(request), gateway(request)
    await gw.orch.get_saga_status(saga_id, who.user_context())  # 404 for unknown / other tenant
    start = events.SeqPosition(events.last_event_id(request) or 0)
    key = events.scope_of(who.tenant_id, saga_id)
    sub = events.Subscriber(key, lambda item: True, gw.tail.queue_size)
    return await events.stream(request, gw.tail, sub, events.saga_replay(gw.orch, key), start)


@routes.get("/v1/events", name="events", role="read")
async def all_events(request: web.Request) -> web.StreamResponse:
    """SSE of the tenant's committed events (filters as the list, plus repeated saga_id)."""
    tenant, gw, q = principal(request).tenant_id, gateway(request), query(request)
    match = events.Filter(status=q["status"], journey_type=q["journey_type"],
                          saga_ids=frozenset(q["saga_id"]), **_filters(q)).matches
    start = events.last_feed_id(request, gw.orch)
    if start is not None:
        events.check_resumable(gw.orch, start)  # 410 before anything is subscribed
    sub = events.Subscriber(events.scope_of(tenant), match, gw.tail.queue_size)
    gw.tail.subscribe(sub)  # before reading the start: nothing committed after it is missed
    if start is None:
        start = events.feed_end(gw.orch)
    replay = events.global_replay(gw.orch, tenant, match)
    return await events.stream(request, gw.tail, sub, replay, events.FeedPosition(start))


async def _write(request: web.Request, saga_id: str, call: Callable[[], Awaitable[Any]]) -> web.Response:
    """Run a saga write holding one of the saga's queue slots (taken before the call starts)."""
    with gateway(request).admission.saga(principal(request).tenant_id, saga_id):
        status = await call()
    return render(request, status)


@routes.post("/v1/sagas/{saga_id}/advance", name="advance_saga_step", role="write")
async def advance(request: web.Request) -> web.Response:
    saga_id, gw = path_id(request, "saga_id"), gateway(request)
    body = await gw.body(request)
    return await _write(request, saga_id, lambda: gw.orch.advance_saga_step(
        saga_id, body.get("journey_id"), None, body["step_result"], principal(request).user_context(),
        idempotency_key=_idempotency_key(request),
    ))


@routes.post("/v1/sagas/{saga_id}/fail", name="fail_saga_step", role="write")
async def fail(request: web.Request) -> web.Response:
    saga_id, gw = path_id(request, "saga_id"), gateway(request)
    body = await gw.body(request)
    step_result = {**body.get("result", {}), "status": "failed", "error": body["error"]}
    if body.get("milestone_id") is not None:
        step_result["milestone_id"] = body["milestone_id"]
    return await _write(request, saga_id, lambda: gw.orch.advance_saga_step(
        saga_id, None, None, step_result, principal(request).user_context(), idempotency_key=_idempotency_key(request)
    ))


@routes.post("/v1/sagas/{saga_id}/compensate", name="compensate_saga", role="write")
async def compensate(request: web.Request) -> web.Response:
    saga_id, gw = path_id(request, "saga_id"), gateway(request)
    body = await gw.body(request)
    return await _write(request, saga_id, lambda: gw.orch.compensate_saga(
        saga_id, body.get("reason") or "aborted by request", principal(request).user_context(),
        idempotency_key=_idempotency_key(request),
    ))


@routes.post("/v1/sagas/{saga_id}/retry-compensation", name="retry_compensation", role="admin")
async def retry_compensation(request: web.Request) -> web.Response:
    saga_id, gw = path_id(request, "saga_id"), gateway(request)
    body = await gw.body(request)
    return await _write(request, saga_id, lambda: gw.orch.retry_compensation(
        saga_id, body["reason"], principal(request).user_context()))


@routes.post("/v1/sagas/{saga_id}/skip-compensation", name="skip_compensation", role="admin")
async def skip_compensation(request: web.Request) -> web.Response:
    saga_id, gw = path_id(request, "saga_id"), gateway(request)
    body = await gw.body(request)
    return await _write(request, saga_id, lambda: gw.orch.skip_compensation(
        saga_id, body["milestone_id"], body["reason"], principal(request).user_context()))


# --- operations ----------------------------------------------------------------------------

@routes.post("/v1/admin/backup", name="backup", role="admin")
async def backup(request: web.Request) -> web.Response:
    """A consistent compacted copy of the store in a server-side folder, while serving."""
    gw = gateway(request)
    dest = (await gw.body(request))["dest"]
    if not dest or "\0" in dest or not os.path.isabs(dest):
        raise Problem(422, "invalid_input", "dest must be an absolute folder path on the server")
    result = await asyncio.get_running_loop().run_in_executor(None, backup_to, gw.orch, dest)
    return render(request, result)


@routes.post("/v1/admin/prune", name="prune", role="admin")
async def prune(request: web.Request) -> web.Response:
    """One bounded round of pruning (or, with ``dry_run``, a count), while serving.

    Store-wide, like backup: every tenant's finished sagas older than ``older_than_s`` (a
    journey's own retention wins for its sagas). Parked sagas are never removed."""
    gw = gateway(request)
    body = await gw.body(request)
    older, limit = body["older_than_s"], body.get("limit", 500)
    if not 0 < older <= 100 * 366 * 86400:
        raise Problem(422, "invalid_input", "older_than_s must be a number of seconds from 0 (exclusive) to 100 years")
    if not 1 <= limit <= 10000:
        raise Problem(422, "invalid_input", "limit must be an integer from 1 to 10000")
    orch, loop = gw.orch, asyncio.get_running_loop()
    now = orch.clock.now()
    if body.get("dry_run", False):
        count = await loop.run_in_executor(None, orch.store.count_expired, now, older, MAX_PRUNE_COUNT)
        return render(request, await _prune_everywhere(request, body, {
            "expired": count, "pruned": 0, "records": 0, "more": count > 0, "dry_run": True}))
    result = await loop.run_in_executor(None, prune_round, orch.store, orch.observer, orch.config, now, older, limit)
    answer = {"pruned": result.sagas, "records": result.records, "more": result.more,
              "by_journey_type": dict(result.pruned), "dry_run": False}
    return render(request, await _prune_everywhere(request, body, answer))


async def _prune_everywhere(request: web.Request, body: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """serve --workers: each worker prunes its own shards (up to ``limit`` each); this one asks
    the others and adds their answers up. A worker that does not answer makes it a 503."""
    router = gateway(request).router
    if not router.peers() or HOP_HEADER in request.headers:
        return answer
    parts = await router.gather("/v1/admin/prune", method="POST", body=dumps(body), timeout_s=120.0, headers={
        "Authorization": request.headers.get("Authorization", ""), "Content-Type": "application/json"})
    missing = [i for i, part in parts if part is None]
    if missing:
        raise Problem(503, "owner_unavailable", f"worker(s) {missing} did not prune (restarting?): their "
                      "shards are untouched; retry", headers={"Retry-After": "1"}, workers=missing)
    out = dict(answer)
    for _, raw in parts:
        other = json.loads(raw or b"{}")
        for k in ("pruned", "records", "expired"):
            if k in other:
                out[k] = out.get(k, 0) + other[k]
        out["more"] = out["more"] or other["more"]
        if "by_journey_type" in other:
            for t, n in other["by_journey_type"].items():
                out["by_journey_type"][t] = out["by_journey_type"].get(t, 0) + n
    return out


def backup_to(orch: SagaOrchestrator, dest: str) -> dict[str, Any]:
    """Copy the store into ``dest`` (absent or empty); ``{"dest", "bytes", "seconds"}``."""
    if os.path.exists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
        raise Problem(409, "invalid_transition", f"backup destination {dest} exists and is not an empty folder")
    started = time.perf_counter()
    try:
        orch.store.backup(dest, compact=True)
    except OSError as exc:
        raise Problem(422, "invalid_input", f"cannot write a backup to {dest}: {exc.strerror}") from None
    size = sum(os.path.getsize(os.path.join(top, name)) for top, _, names in os.walk(dest) for name in names)
    return {"dest": dest, "bytes": size, "seconds": round(time.perf_counter() - started, 6)}
