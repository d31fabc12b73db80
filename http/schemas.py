"""The one table of request schemas: per route name, its query parameters and its JSON body.

The same entries drive both sides: ``parse_query``/``parse_body`` validate a request against
them (unknown names are refused, types and bounds checked, clear 422s), and ``http/openapi.py``
generates the document's query parameters and request-body components from them. A parameter or
field added here is accepted, checked and documented at once; nothing is kept in parallel.

Body fields are checked for their JSON type (and strings for ``minLength``); the meaning of a
value (a known journey, a policy's bounds) is the orchestrator's check, which answers 422 too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from saga_journey.runtime.isotime import parse_time
from saga_journey.runtime.journeys import ID_PATTERN, template_names
from saga_journey.runtime.model import SAGA_STATES

from .codec import fields as check_fields
from .problems import Problem

ID = {"type": "string", "pattern": ID_PATTERN.pattern, "maxLength": 128}
_CURSOR = re.compile(r"^[A-Za-z0-9_-]+$")
_EVENT_ID = {"type": "string", "pattern": "^[0-9]{1,19}$"}
# the global stream of a sharded store: one feed position per shard, joined by "."
_FEED_EVENT_ID = {"type": "string", "maxLength": 8192, "pattern": "^[0-9]{1,20}(\\.[0-9]{1,20})*$"}
_TIME = {"type": "string", "minLength": 1, "maxLength": 64, "description": "epoch seconds or ISO 8601 (no zone: UTC)"}
_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str, "integer": int, "boolean": bool, "object": dict, "number": (int, float), "array": list,
}
_WHAT = {"string": "a string", "integer": "an integer", "boolean": "true or false", "object": "an object",
         "number": "a number", "array": "an array"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# ---- query parameters ---------------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    """One query parameter. ``kind`` says how it is parsed; bounds come from ``schema``."""

    name: str
    kind: str  # int | seconds | bool | id | time | choice | cursor | event_id
    schema: dict[str, Any]
    description: str
    example: Any
    default: Any = None
    multi: bool = False  # may repeat: parsed as a list
    choices: tuple[str, ...] = ()

    def doc(self) -> dict[str, Any]:
        return {"name": self.name, "in": "query", "required": False, "schema": self.schema,
                "description": self.description, "example": self.example}

    def parse(self, raw: str) -> Any:
        return _PARSERS[self.kind](self, raw)


def _bad(p: Param, what: str) -> Problem:
    return Problem(422, "invalid_input", f"query parameter {p.name} must be {what}")


def _int(p: Param, raw: str) -> int:
    lo, hi = p.schema["minimum"], p.schema["maximum"]
    try:
        value = int(raw) if raw.lstrip("-").isdigit() else None
    except ValueError:  # e.g. "--5" or a non-ASCII digit
        value = None
    if value is None or not lo <= value <= hi:
        raise _bad(p, f"an integer from {lo} to {hi}")
    return value


def _seconds(p: Param, raw: str) -> float:
    hi = p.schema["maximum"]
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= hi:  # also refuses nan
        raise _bad(p, f"a number of seconds from 0 to {hi:g}")
    return value


def _bool(p: Param, raw: str) -> bool:
    if raw not in ("true", "false"):
        raise _bad(p, "true or false")
    return raw == "true"


def _id(p: Param, raw: str) -> str:
    if not ID_PATTERN.fullmatch(raw):
        raise Problem(422, "invalid_input", f"query parameter {p.name} is not a valid identifier")
    return raw


def _time(p: Param, raw: str) -> float:
    try:
        if not 0 < len(raw) <= 64:
            raise ValueError(raw)
        return parse_time(raw)
    except (ValueError, OverflowError):
        raise _bad(p, "epoch seconds or an ISO 8601 time") from None


def _choice(p: Param, raw: str) -> str:
    if raw not in p.choices:
        raise Problem(422, "invalid_input", f"{p.name} must be one of {list(p.choices)}")
    return raw


def _cursor(p: Param, raw: str) -> str:
    if not (0 < len(raw) <= 1024 and _CURSOR.match(raw)):
        raise Problem(422, "invalid_input", f"{p.name} must be a value returned as next_cursor")
    return raw


def _event_id(p: Param, raw: str) -> str:
    return raw  # the header or this parameter: ``events.last_event_id`` checks whichever is sent


_PARSERS = {"int": _int, "seconds": _seconds, "bool": _bool, "id": _id, "time": _time,
            "choice": _choice, "cursor": _cursor, "event_id": _event_id}

FILTERS = (
    Param("status", "choice", _ref("SagaState"), "only sagas in this state", "FAILED", choices=tuple(SAGA_STATES)),
    Param("parked", "bool", {"type": "boolean"}, "only parked (true) or unparked (false) sagas", True),
    Param("journey_type", "id", ID, "only sagas of this journey type", "order_processing"),
    Param("journey_id", "id", ID, "only sagas of this journey", "orders"),
    Param("user_id", "id", ID, "only this user's sagas", "alice"),
    Param("updated_after", "time", _TIME, "updated at or after this time", "2026-01-01T00:00:00Z"),
    Param("updated_before", "time", _TIME, "updated before this time", "1767225600"),
)
FILTER_NAMES = ("parked", "journey_id", "user_id", "updated_after", "updated_before")
LAST_EVENT_ID = Param("last_event_id", "event_id", _EVENT_ID, "as the Last-Event-ID header", "42")
FEED_EVENT_ID = Param("last_event_id", "event_id", _FEED_EVENT_ID, "as the Last-Event-ID header", "42")


# ---- bodies -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    """One body field; ``kind``/``what`` default from the schema's JSON type."""

    name: str
    schema: dict[str, Any]
    required: bool = False
    type: str | None = None  # the JSON type when ``schema`` is a $ref
    what: str | None = None  # how the error names the expected value

    @property
    def json_type(self) -> str:
        return self.type or self.schema["type"]

    def check(self, value: Any) -> Any:
        kind = _JSON_TYPES[self.json_type]
        if not isinstance(value, kind) or (isinstance(value, bool) and self.json_type in ("integer", "number")):
            raise Problem(422, "invalid_input", f"{self.name} must be {self.what or _WHAT[self.json_type]}")
        if isinstance(value, str) and len(value) < self.schema.get("minLength", 0):
            raise Problem(422, "invalid_input", f"{self.name} must be a non-empty string")
        return value


@dataclass(frozen=True)
class Body:
    component: str  # the name of its schema in the OpenAPI document
    fields: tuple[Field, ...]
    examples: Mapping[str, Any]
    optional: bool = False  # the whole body may be absent

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "object"}
        required = [f.name for f in self.fields if f.required]
        if required:
            out["required"] = required
        out["properties"] = {f.name: f.schema for f in self.fields}
        out["additionalProperties"] = False
        return out


@dataclass(frozen=True)
class RequestSpec:
    query: tuple[Param, ...] = ()
    body: Body | None = None
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(sorted(p.name for p in self.query)))


def _examples(**named: Any) -> dict[str, Any]:
    return {name: {"summary": name.replace("_", " "), "value": value} for name, value in named.items()}


_REASON = {"type": "string", "minLength": 1, "pattern": "\\S"}
_POSITIVE = {"type": "number", "exclusiveMinimum": 0}

REQUESTS: dict[str, RequestSpec] = {
    "get_journey": RequestSpec(query=(
        Param("version", "int", {"type": "integer", "minimum": 1, "maximum": 10**9}, "a specific version", 1),
    )),
    "design_saga_journey": RequestSpec(body=Body("DesignRequest", (
        Field("journey_type", {**ID, "description": f"a template ({', '.join(template_names())}) or a custom type "
                                                    "with requirements.milestones"},
              required=True),
        Field("requirements", _ref("DesignRequirements"), type="object"),
        Field("compensation_handlers", _ref("DesignHandlerMap"), type="object",
              what="an object mapping milestone ids to handler names"),
        Field("journey_id", ID),
        Field("allow_unregistered_handlers", {"type": "boolean"}),
    ), _examples(
        template={"journey_type": "order_processing", "journey_id": "orders"},
        custom={"journey_type": "onboarding", "allow_unregistered_handlers": True, "requirements": {
            "milestones": ["create_account", {"id": "send_welcome", "timeout_s": 30}],
            "retry": {"max_attempts": 3}}},
    ))),
    "execute_saga_journey": RequestSpec(body=Body("ExecuteRequest", (
        Field("journey_id", ID, required=True),
        Field("user_id", {**ID, "description": "the saga's user; default: the credential's user"}),
        Field("context", _ref("SagaContext"), type="object"),
        Field("saga_id", {**ID, "description": "choose the id (must be new); default: generated"}),
        Field("journey_version", {"type": "integer", "minimum": 1, "maximum": 10**9}),
    ), _examples(start={"journey_id": "orders", "saga_id": "order-1001", "context": {"order_id": "1001"}}))),
    "list_sagas": RequestSpec(query=(
        *FILTERS,
        Param("order", "choice", _ref("ListOrder"), "by updated_at: newest first (default) or oldest first",
              "newest", default="newest", choices=("newest", "oldest")),
        Param("limit", "int", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size (default 100)", 50,
              default=100),
        Param("cursor", "cursor", {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": "^[A-Za-z0-9_-]+$"},
              "next_cursor of the previous page", "b3JkZXItMTAwMQ"),
    )),
    "get_saga_status": RequestSpec(query=(
        Param("wait", "seconds", {"type": "number", "minimum": 0, "maximum": 60},
              "long-poll: answer once the saga is COMPLETED or FAILED (or its version passes `version`), at the "
              "latest after this many seconds, with the status then", 30, default=0.0),
        Param("version", "int", {"type": "integer", "minimum": 0, "maximum": 10**12},
              "with wait: answer as soon as the saga's version is greater than this", 4),
    )),
    "get_saga_execution_history": RequestSpec(query=(
        Param("after_seq", "int", {"type": "integer", "minimum": 0, "maximum": 10**12},
              "only events after this sequence number", 0, default=0),
        Param("limit", "int", {"type": "integer", "minimum": 1, "maximum": 10000}, "at most this many events", 100),
    )),
    "events": RequestSpec(query=(
        *FILTERS, Param("saga_id", "id", ID, "only this saga (repeat for several)", "order-1001", multi=True),
        FEED_EVENT_ID,
    )),
    "saga_events": RequestSpec(query=(LAST_EVENT_ID,)),
    "advance_saga_step": RequestSpec(body=Body("AdvanceRequest", (
        Field("step_result", _ref("StepResult"), required=True, type="object",
              what="an object such as {\"status\": \"complete\"}"),
        Field("journey_id", ID),
    ), _examples(
        complete={"step_result": {"status": "complete", "milestone_id": "create_order"}},
        failed={"step_result": {"status": "failed", "error": "out of stock"}},
    ))),
    "fail_saga_step": RequestSpec(body=Body("FailRequest", (
        Field("error", {"type": "string", "minLength": 1}, required=True),
        Field("milestone_id", ID),
        Field("result", _ref("FailureResult"), type="object"),
    ), _examples(declined={"error": "card declined", "result": {"decline_code": "insufficient_funds"}}))),
    "compensate_saga": RequestSpec(body=Body("CompensateRequest", (
        Field("reason", {"type": "string", "minLength": 1}),
    ), _examples(abort={"reason": "customer cancelled"}), optional=True)),
    "retry_compensation": RequestSpec(body=Body("RetryCompensationRequest", (
        Field("reason", _REASON, required=True),
    ), _examples(retry={"reason": "payment gateway is back"}))),
    "skip_compensation": RequestSpec(body=Body("SkipCompensationRequest", (
        Field("milestone_id", ID, required=True),
        Field("reason", _REASON, required=True),
    ), _examples(skip={"milestone_id": "process_payment", "reason": "refunded by hand, ticket 4711"}))),
    "backup": RequestSpec(body=Body("BackupRequest", (
        Field("dest", {"type": "string", "minLength": 1, "pattern": "^/",
                       "description": "an absolute folder path on the server; absent or empty"},
              required=True, what="a server-side folder path"),
    ), _examples(backup={"dest": "/var/backups/saga-journey/2026-01-01"}))),
    "prune": RequestSpec(body=Body("PruneRequest", (
        Field("older_than_s", {**_POSITIVE, "maximum": 100 * 366 * 86400,
                               "description": "remove finished sagas that finished longer ago than this"},
              required=True, what="a number of seconds greater than 0"),
        Field("limit", {"type": "integer", "minimum": 1, "maximum": 10000,
                        "description": "at most this many sagas in this call (default 500); `more` says whether "
                                       "expired ones remain"}),
        Field("dry_run", {"type": "boolean", "description": "only count the expired sagas (up to 1,000,000)"}),
    ), _examples(prune={"older_than_s": 2592000, "limit": 500}, count={"older_than_s": 2592000, "dry_run": True}))),
}

NO_PARAMS = RequestSpec()


def spec_of(request: web.Request) -> RequestSpec:
    return REQUESTS.get(request.match_info.route.name or "", NO_PARAMS)


def parse_query(spec: RequestSpec, query: Any) -> dict[str, Any]:
    """Every declared parameter, parsed (absent: its default); unknown ones are a 422, never ignored."""
    unknown = sorted({k for k in query if k not in spec.names})
    if unknown:
        shown = [k[:64] for k in unknown[:20]]
        raise Problem(
            422, "invalid_input", f"unknown query parameters {shown}; allowed here: {list(spec.names)}",
            unknown=shown, allowed=list(spec.names),
        )
    out: dict[str, Any] = {}
    for p in spec.query:
        if p.multi:
            out[p.name] = [p.parse(v) for v in query.getall(p.name, [])]
        else:
            raw = query.get(p.name)
            out[p.name] = p.default if raw is None else p.parse(raw)
    return out


def parse_body(spec: RequestSpec, raw: Any) -> dict[str, Any]:
    """The body checked against its fields: an object with only declared keys, each of its type.
    An explicit null is an error (no field is nullable)."""
    body_spec = spec.body
    assert body_spec is not None, "parse_body on a route without a body"
    body = check_fields(raw, required=[f.name for f in body_spec.fields if f.required],
                        optional=[f.name for f in body_spec.fields if not f.required])
    for f in body_spec.fields:
        if f.name in body:
            f.check(body[f.name])
    return body


def request_components() -> dict[str, Any]:
    """The request-body schemas, by component name, for the OpenAPI document."""
    return {s.body.component: s.body.schema() for s in REQUESTS.values() if s.body is not None}
