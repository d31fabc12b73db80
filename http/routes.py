"""Route handlers: parse, ask the runtime (without blocking the loop), render. One per endpoint."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

from saga_journey.runtime.isotime import parse_time
from saga_journey.runtime.journeys import ID_PATTERN
from saga_journey.runtime.model import SAGA_STATES
from saga_journey.runtime.orchestrator import SagaOrchestrator

from . import events
from .admission import Admission
from .auth import Principal
from .codec import fields, read_body, render
from .openapi import build_openapi
from .problems import Problem
from .settings import GatewaySettings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_CURSOR = re.compile(r"^[A-Za-z0-9_-]+$")
_PRINCIPAL_KEY: Any = (
    web.RequestKey("principal", Principal) if hasattr(web, "RequestKey") else "saga_journey.principal"
)


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    role: str | None  # None: public, no credential needed
    name: str


def principal(request: web.Request) -> Principal:
    return request[_PRINCIPAL_KEY]


def set_principal(request: web.Request, who: Principal) -> None:
    request[_PRINCIPAL_KEY] = who


def path_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not ID_PATTERN.fullmatch(value):
        # No saga or journey can have such an id: answer as for any unknown id.
        raise Problem(404, "not_found", f"{name} {value[:140]!r} not found")
    return value


def _query_int(request: web.Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not lo <= value <= hi or not raw.lstrip("-").isdigit():
        raise Problem(422, "invalid_input", f"query parameter {name} must be an integer from {lo} to {hi}")
    return value


MAX_WAIT_S = 60.0


def _query_seconds(request: web.Request, name: str, hi: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= hi:  # also refuses nan
        raise Problem(422, "invalid_input", f"query parameter {name} must be a number of seconds from 0 to {hi:g}")
    return value


def _query_str(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    if value is not None and not ID_PATTERN.fullmatch(value):
        raise Problem(422, "invalid_input", f"query parameter {name} is not a valid identifier")
    return value


def _query_bool(request: web.Request, name: str) -> bool | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise Problem(422, "invalid_input", f"query parameter {name} must be true or false")
    return raw == "true"


def _query_time(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        if not 0 < len(raw) <= 64:
            raise ValueError(raw)
        return parse_time(raw)
    except (ValueError, OverflowError):
        raise Problem(422, "invalid_input", f"query parameter {name} must be epoch seconds or an ISO 8601 time") from None


def _query_status(request: web.Request) -> str | None:
    status = request.query.get("status")
    if status is not None and status not in SAGA_STATES:
        raise Problem(422, "invalid_input", f"status must be one of {list(SAGA_STATES)}")
    return status


def _filters(request: web.Request) -> dict[str, Any]:
    """The list filters shared by GET /v1/sagas and GET /v1/events."""
    return {
        "parked": _query_bool(request, "parked"),
        "journey_id": _query_str(request, "journey_id"),
        "user_id": _query_str(request, "user_id"),
        "updated_after": _query_time(request, "updated_after"),
        "updated_before": _query_time(request, "updated_before"),
    }


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 0 < len(key) <= 255:
        raise Problem(422, "invalid_input", "Idempotency-Key must be 1-255 characters")
    return key


def _typed(body: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    """The field's value if present (an explicit null is an error: no field is nullable)."""
    if name not in body:
        return None
    value = body[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise Problem(422, "invalid_input", f"{name} must be {what}")
    return value


class Gateway:
    """The endpoints, bound to one orchestrator."""

    def __init__(
        self, orchestrator: SagaOrchestrator, settings: GatewaySettings, admission: Admission,
        *, metrics: bool = False,
    ) -> None:
        """``metrics``: GET /metrics is mounted too (the OpenAPI document lists it)."""
        self.orch = orchestrator
        self.settings = settings
        self.admission = admission
        self.ready = True
        self.tail = events.FeedTail(orchestrator)
        self.openapi_body = json.dumps(build_openapi(self.routes(), metrics=metrics)).encode()

    async def _body(self, request: web.Request) -> Any:
        return await read_body(request, self.settings.max_body_bytes, self.settings.body_timeout_s)

    # --- journeys ----------------------------------------------------------------------

    async def templates(self, request: web.Request) -> web.Response:
        return render(request, {"templates": self.orch.journey_templates()})

    async def design_journey(self, request: web.Request) -> web.Response:
        body = fields(
            await self._body(request),
            required=("journey_type",),
            optional=("requirements", "compensation_handlers", "journey_id", "allow_unregistered_handlers"),
        )
        _typed(body, "journey_type", str, "a string")
        _typed(body, "requirements", dict, "an object")
        _typed(body, "compensation_handlers", dict, "an object mapping milestone ids to handler names")
        _typed(body, "journey_id", str, "a string")
        allow = _typed(body, "allow_unregistered_handlers", bool, "true or false") or False
        journey = await self.orch.design_saga_journey(
            body["journey_type"],
            body.get("requirements"),
            body.get("compensation_handlers"),
            principal(request).user_context(),
            journey_id=body.get("journey_id"),
            allow_unregistered_handlers=allow,
            idempotency_key=_idempotency_key(request),
        )
        location = f"/v1/journeys/{journey['journey_id']}"
        return render(request, journey, 201, {"Location": location})

    async def list_journeys(self, request: web.Request) -> web.Response:
        journeys = await self.orch.list_journeys(principal(request).user_context())
        return render(request, {"journeys": journeys})

    async def get_journey(self, request: web.Request) -> web.Response:
        journey_id = path_id(request, "journey_id")
        version = _query_int(request, "version", None, 1, 10**9)
        journey = await self.orch.get_journey(
            journey_id, principal(request).user_context(), version=version
        )
        return render(request, journey)

    # --- sagas -------------------------------------------------------------------------

    async def execute(self, request: web.Request) -> web.Response:
        body = fields(
            await self._body(request),
            required=("journey_id",),
            optional=("user_id", "context", "saga_id", "journey_version"),
        )
        _typed(body, "journey_id", str, "a string")
        _typed(body, "user_id", str, "a string")
        _typed(body, "context", dict, "an object")
        _typed(body, "saga_id", str, "a string")
        _typed(body, "journey_version", int, "an integer")
        who = principal(request)
        status = await self.orch.execute_saga_journey(
            body["journey_id"],
            body.get("user_id") or who.user_id,
            body.get("context"),
            who.user_context(),
            saga_id=body.get("saga_id"),
            journey_version=body.get("journey_version"),
            idempotency_key=_idempotency_key(request),
        )
        return render(request, status, 201, {"Location": f"/v1/sagas/{status['saga_id']}"})

    async def list_sagas(self, request: web.Request) -> web.Response:
        status = _query_status(request)
        cursor = request.query.get("cursor")
        if cursor is not None and not (0 < len(cursor) <= 1024 and _CURSOR.match(cursor)):
            raise Problem(422, "invalid_input", "cursor must be a value returned as next_cursor")
        order = request.query.get("order", "newest")
        if order not in ("newest", "oldest"):
            raise Problem(422, "invalid_input", "order must be newest or oldest")
        page = await self.orch.list_sagas(
            status,
            _query_str(request, "journey_type"),
            principal(request).user_context(),
            limit=_query_int(request, "limit", 100, 1, 1000),
            cursor=cursor,
            order=order,
            **_filters(request),
        )
        return render(request, page)

    async def events(self, request: web.Request) -> web.StreamResponse:
        """SSE of the tenant's committed events (filters as the list, plus repeated saga_id)."""
        tenant = principal(request).tenant_id
        saga_ids = request.query.getall("saga_id", [])
        for sid in saga_ids:
            if not ID_PATTERN.fullmatch(sid):
                raise Problem(422, "invalid_input", "query parameter saga_id is not a valid identifier")
        match = events.Filter(status=_query_status(request), journey_type=_query_str(request, "journey_type"),
                              saga_ids=frozenset(saga_ids), **_filters(request)).matches
        start = events.last_event_id(request)
        sub = events.Subscriber(events.scope_of(tenant), match, self.tail.queue_size)
        self.tail.subscribe(sub)  # before reading the start: nothing committed after it is missed
        if start is None:
            start = self.store_end()
        replay = events.global_replay(self.orch, tenant, match)
        return await events.stream(request, self.tail, sub, replay, start, per_saga=False)

    async def saga_events(self, request: web.Request) -> web.StreamResponse:
        """SSE of one saga's events; ids are its history seqs; without Last-Event-ID from seq 0."""
        saga_id = path_id(request, "saga_id")
        who = principal(request)
        await self.orch.get_saga_status(saga_id, who.user_context())  # 404 for unknown / other tenant
        start = events.last_event_id(request) or 0
        key = events.scope_of(who.tenant_id, saga_id)
        sub = events.Subscriber(key, lambda item: True, self.tail.queue_size)
        return await events.stream(request, self.tail, sub, events.saga_replay(self.orch, key), start, per_saga=True)

    def store_end(self) -> int:
        return self.orch.store.feed_end()

    async def backup(self, request: web.Request) -> web.Response:
        """A consistent compacted copy of the store in a server-side folder, while serving."""
        body = fields(await self._body(request), required=("dest",))
        dest = _typed(body, "dest", str, "a server-side folder path")
        if not dest or "\0" in dest or not os.path.isabs(dest):
            raise Problem(422, "invalid_input", "dest must be an absolute folder path on the server")
        result = await asyncio.get_running_loop().run_in_executor(None, backup_to, self.orch, dest)
        return render(request, result)

    async def get_saga(self, request: web.Request) -> web.Response:
        """The saga's status; with ``wait=SECONDS`` a long-poll: answered once the saga is
        terminal or (with ``version=N``) its version is greater than N, else at the timeout."""
        saga_id = path_id(request, "saga_id")
        who = principal(request).user_context()
        wait = _query_seconds(request, "wait", MAX_WAIT_S)
        version = _query_int(request, "version", None, 0, 10**12)
        if not wait:
            return render(request, await self.orch.get_saga_status(saga_id, who))
        status = await self.orch.wait_for_saga(
            saga_id, who, timeout=wait, version=version, return_on_timeout=True
        )
        return render(request, status)

    async def history(self, request: web.Request) -> web.Response:
        saga_id = path_id(request, "saga_id")
        events = await self.orch.get_saga_execution_history(
            saga_id,
            principal(request).user_context(),
            after_seq=_query_int(request, "after_seq", 0, 0, 10**12) or 0,
            limit=_query_int(request, "limit", None, 1, 10000),
        )
        return render(request, {"saga_id": saga_id, "events": events})

    async def advance(self, request: web.Request) -> web.Response:
        saga_id = path_id(request, "saga_id")
        body = fields(await self._body(request), required=("step_result",), optional=("journey_id",))
        _typed(body, "step_result", dict, "an object such as {\"status\": \"complete\"}")
        _typed(body, "journey_id", str, "a string")
        key = _idempotency_key(request)
        with self.admission.saga(principal(request).tenant_id, saga_id):
            status = await self.orch.advance_saga_step(
                saga_id,
                body.get("journey_id"),
                None,
                body["step_result"],
                principal(request).user_context(),
                idempotency_key=key,
            )
        return render(request, status)

    async def fail(self, request: web.Request) -> web.Response:
        saga_id = path_id(request, "saga_id")
        body = fields(await self._body(request), required=("error",), optional=("milestone_id", "result"))
        error = _typed(body, "error", str, "a string")
        if not error:
            raise Problem(422, "invalid_input", "error must be a non-empty string")
        _typed(body, "milestone_id", str, "a string")
        result = _typed(body, "result", dict, "an object") or {}
        step_result = {**result, "status": "failed", "error": error}
        if body.get("milestone_id") is not None:
            step_result["milestone_id"] = body["milestone_id"]
        key = _idempotency_key(request)
        with self.admission.saga(principal(request).tenant_id, saga_id):
            status = await self.orch.advance_saga_step(
                saga_id, None, None, step_result, principal(request).user_context(), idempotency_key=key
            )
        return render(request, status)

    async def compensate(self, request: web.Request) -> web.Response:
        saga_id = path_id(request, "saga_id")
        body = fields(await self._body(request), optional=("reason",))
        reason = _typed(body, "reason", str, "a string")
        if reason is not None and not reason:
            raise Problem(422, "invalid_input", "reason must be a non-empty string")
        key = _idempotency_key(request)
        with self.admission.saga(principal(request).tenant_id, saga_id):
            status = await self.orch.compensate_saga(
                saga_id, reason or "aborted by request", principal(request).user_context(), idempotency_key=key
            )
        return render(request, status)

    async def retry_compensation(self, request: web.Request) -> web.Response:
        saga_id = path_id(request, "saga_id")
        body = fields(await self._body(request), required=("reason",))
        reason = _typed(body, "reason", str, "a string")  # emptiness: the orchestrator's check
        with self.admission.saga(principal(request).tenant_id, saga_id):
            status = await self.orch.retry_compensation(saga_id, reason, principal(request).user_context())
        return render(request, status)

    async def skip_compensation(self, request: web.Request) -> web.Response:
        saga_id = path_id(request, "saga_id")
        body = fields(await self._body(request), required=("milestone_id", "reason"))
        milestone_id = _typed(body, "milestone_id", str, "a string")
        reason = _typed(body, "reason", str, "a string")  # content: the orchestrator's checks
        with self.admission.saga(principal(request).tenant_id, saga_id):
            status = await self.orch.skip_compensation(
                saga_id, milestone_id, reason, principal(request).user_context()
            )
        return render(request, status)

    # --- operations --------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return render(request, {"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        if not self.ready:
            raise Problem(503, "not_ready", "the gateway is starting or shutting down", headers={"Retry-After": "1"})
        return render(request, {"status": "ready"})

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self.openapi_body, content_type="application/json")

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/healthz", self.healthz, None, "healthz"),
            Route("GET", "/readyz", self.readyz, None, "readyz"),
            Route("GET", "/openapi.json", self.openapi, None, "openapi"),
            Route("GET", "/v1/journey-templates", self.templates, "read", "journey_templates"),
            Route("POST", "/v1/journeys", self.design_journey, "admin", "design_saga_journey"),
            Route("GET", "/v1/journeys", self.list_journeys, "read", "list_journeys"),
            Route("GET", "/v1/journeys/{journey_id}", self.get_journey, "read", "get_journey"),
            Route("POST", "/v1/sagas", self.execute, "write", "execute_saga_journey"),
            Route("GET", "/v1/sagas", self.list_sagas, "read", "list_sagas"),
            Route("GET", "/v1/sagas/{saga_id}", self.get_saga, "read", "get_saga_status"),
            Route("GET", "/v1/sagas/{saga_id}/history", self.history, "read", "get_saga_execution_history"),
            Route("GET", "/v1/sagas/{saga_id}/events", self.saga_events, "read", "saga_events"),
            Route("GET", "/v1/events", self.events, "read", "events"),
            Route("POST", "/v1/admin/backup", self.backup, "admin", "backup"),
            Route("POST", "/v1/sagas/{saga_id}/advance", self.advance, "write", "advance_saga_step"),
            Route("POST", "/v1/sagas/{saga_id}/fail", self.fail, "write", "fail_saga_step"),
            Route("POST", "/v1/sagas/{saga_id}/compensate", self.compensate, "write", "compensate_saga"),
            Route("POST", "/v1/sagas/{saga_id}/retry-compensation", self.retry_compensation, "admin", "retry_compensation"),
            Route("POST", "/v1/sagas/{saga_id}/skip-compensation", self.skip_compensation, "admin", "skip_compensation"),
        ]


def backup_to(orch: SagaOrchestrator, dest: str) -> dict[str, Any]:
    """Copy the store into ``dest`` (absent or empty); ``{"dest", "bytes", "seconds"}``."""
    if os.path.exists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
        raise Problem(409, "invalid_transition", f"backup destination {dest} exists and is not an empty folder")
    started = time.perf_counter()
    try:
        orch.store.backup(dest, compact=True)
    except OSError as exc:
        raise Problem(422, "invalid_input", f"cannot write a backup to {dest}: {exc.strerror}") from None
    size = sum(os.path.getsize(os.path.join(dest, name)) for name in os.listdir(dest))
    return {"dest": dest, "bytes": size, "seconds": round(time.perf_counter() - started, 6)}
