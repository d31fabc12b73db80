"""The OpenAPI 3.1 document of the gateway, generated from the route table (paths, roles), the
request schemas of ``schemas.REQUESTS`` (query parameters, request bodies) and the response
schemas below.

Written for client generators as much as for validators: every request and response body and
every nested object or enum is a named component (generators turn anonymous ones into
``..._type_0`` models), nullable objects and arrays are ``anyOf: [X, {"type": "null"}]`` (not
``"type": ["object", "null"]``), every error response is the Problem schema, and each operation
carries examples (checked against their schemas by the tests).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from saga_journey.runtime.model import SAGA_STATES

from .problems import PROBLEM_JSON, PROBLEM_TYPE, TITLES
from .schemas import ID, NO_PARAMS, REQUESTS, request_components

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
from .ui_routes import UI_OPERATIONS, UI_SCHEMAS

NULLABLE_STR = {"type": ["string", "null"]}
NULLABLE_NUM = {"type": ["number", "null"]}
STR_LIST = {"type": "array", "items": {"type": "string"}}
POSITIVE = {"type": "number", "exclusiveMinimum": 0}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    """``schema`` or null, in the style generators understand."""
    out: dict[str, Any] = {"anyOf": [schema, {"type": "null"}]}
    if description:
        out["description"] = description
    return out


def _free_object(description: str) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": True, "description": description}


def _object(required: Sequence[str], properties: dict[str, Any], *, closed: bool = False, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", **extra}
    if required:
        schema["required"] = list(required)
    schema["properties"] = properties
    if closed:
        schema["additionalProperties"] = False
    return schema


SCHEMAS: dict[str, Any] = {
    "Problem": _object(
        ["type", "title", "status", "detail", "code"],
        {
            "type": {"type": "string", "description": f"`{PROBLEM_TYPE}` + code"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string"},
            "instance": {"type": "string"},
        },
        additionalProperties=True,
        description="RFC 9457 problem details; `code` is the machine-readable error code. Some "
        "problems carry extra members (for example `unknown`, `missing` or `limit`).",
    ),
    "RetryPolicy": _object(
        [],
        {
            "max_attempts": {"type": "integer", "minimum": 1, "maximum": 1000},
            "initial_delay_s": {"type": "number", "minimum": 0},
            "backoff": {"type": "number", "minimum": 1},
            "max_delay_s": {"type": "number", "minimum": 0},
            "jitter": {"type": "number", "minimum": 0, "maximum": 1},
            "handler_timeout_s": {**POSITIVE, "description": "abandon one attempt after this long (absent: the runtime's default)"},
        },
        closed=True,
    ),
    "Milestone": _object(
        ["id", "name", "compensation_handler", "timeout_s", "retry"],
        {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "compensation_handler": NULLABLE_STR,
            "timeout_s": NULLABLE_NUM,
            "retry": _ref("RetryPolicy"),
            "forward_retry": _ref("RetryPolicy"),
        },
    ),
    "HandlerMap": {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "description": "milestone id -> compensation handler name",
    },
    "JourneyRequirements": _free_object("the requirements the journey was designed with"),
    "Journey": _object(
        ["journey_id", "version", "journey_type", "tenant_id", "milestones",
         "compensation_handlers", "requirements", "created_at"],
        {
            "journey_id": {"type": "string"},
            "version": {"type": "integer", "minimum": 1},
            "journey_type": {"type": "string"},
            "tenant_id": {"type": "string"},
            "milestones": {"type": "array", "items": _ref("Milestone")},
            "compensation_handlers": _ref("HandlerMap"),
            "requirements": _ref("JourneyRequirements"),
            "created_at": {"type": "number"},
            "deadline_s": NULLABLE_NUM,
            "compensation_deadline_s": NULLABLE_NUM,
            "retention_s": {"type": "number", "description": "finished sagas are pruned this long after they finish"},
            "missing_handlers": {**STR_LIST, "description": "handlers named but not registered"},
            "replayed": {"type": "boolean"},
        },
    ),
    "JourneyList": _object(["journeys"], {"journeys": {"type": "array", "items": _ref("Journey")}}),
    "Template": _object(
        ["journey_type", "milestones", "compensation_handlers"],
        {"journey_type": {"type": "string"}, "milestones": STR_LIST, "compensation_handlers": _ref("HandlerMap")},
    ),
    "TemplateList": _object(["templates"], {"templates": {"type": "array", "items": _ref("Template")}}),
    "SagaState": {"type": "string", "enum": list(SAGA_STATES)},
    "ListOrder": {"type": "string", "enum": ["newest", "oldest"]},
    "CompensationStatus": {"type": "string", "enum": ["none", "running", "succeeded", "failed"]},
    "FailureKind": {"type": "string", "enum": ["milestone_failed", "timeout", "deadline", "aborted", "internal_error"]},
    "FailureResult": _free_object("the fields reported with the failure"),
    "Failure": _object(
        ["kind", "milestone_id", "reason", "at", "result"],
        {
            "kind": _ref("FailureKind"),
            "milestone_id": NULLABLE_STR,
            "reason": {"type": "string"},
            "at": {"type": "number"},
            "result": _nullable(_ref("FailureResult")),
        },
        description="why the saga left IN_PROGRESS",
    ),
    "SagaContext": _free_object("the saga's context, as given at start"),
    "SagaStatus": _object(
        ["saga_id", "journey_id", "journey_version", "journey_type", "tenant_id", "user_id",
         "status", "current_milestone", "milestones", "completed_milestones",
         "compensated_milestones", "pending_compensations", "compensation_status",
         "compensation_attempts", "compensation_error", "failure", "context",
         "started_at", "updated_at", "version"],
        {
            "saga_id": {"type": "string"},
            "journey_id": {"type": "string"},
            "journey_version": {"type": "integer"},
            "journey_type": {"type": "string"},
            "tenant_id": {"type": "string"},
            "user_id": {"type": "string"},
            "status": _ref("SagaState"),
            "current_milestone": NULLABLE_STR,
            "milestones": STR_LIST,
            "completed_milestones": STR_LIST,
            "compensated_milestones": STR_LIST,
            "pending_compensations": STR_LIST,
            "compensation_status": _ref("CompensationStatus"),
            "compensation_attempts": {"type": "integer", "minimum": 0},
            "compensation_error": NULLABLE_STR,
            "last_compensation_error": {**NULLABLE_STR, "description": "the error of the last failed attempt, kept after a repair or retry cleared compensation_error"},
            "failure": _nullable(_ref("Failure"), "null while the saga has not failed"),
            "context": _ref("SagaContext"),
            "started_at": {"type": "number"},
            "updated_at": {"type": "number"},
            "started_at_iso": {**NULLABLE_STR, "description": "started_at as ISO 8601 UTC"},
            "updated_at_iso": {**NULLABLE_STR, "description": "updated_at as ISO 8601 UTC"},
            "version": {"type": "integer"},
            "parked": {"type": "boolean", "description": "compensation gave up: an operator must retry or skip"},
            "parked_reason": NULLABLE_STR,
            "failed_compensation": NULLABLE_STR,
            "manually_compensated": STR_LIST,
            "milestone_attempts": {"type": "integer", "minimum": 0},
            "milestone_retry_at": NULLABLE_NUM,
            "milestone_due_at": NULLABLE_NUM,
            "deadline_at": NULLABLE_NUM,
            "compensation_deadline_at": NULLABLE_NUM,
            "event": {"type": "string", "description": "the event this write recorded"},
            "replayed": {"type": "boolean", "description": "true: a repeat, answered without applying anything"},
            "note": NULLABLE_STR,
        },
    ),
    "SagaPage": _object(
        ["sagas", "next_cursor"],
        {"sagas": {"type": "array", "items": _ref("SagaStatus")}, "next_cursor": NULLABLE_STR},
    ),
    "HistoryEvent": _object(
        ["seq", "type", "status_after"],
        {
            "seq": {"type": "integer", "minimum": 1},
            "type": {"type": "string", "description": "the event's kind, e.g. saga_started, milestone_failed"},
            "status_after": _ref("SagaState"),
            "at": {"type": "number"},
            "at_iso": {**NULLABLE_STR, "description": "at as ISO 8601 UTC"},
        },
        additionalProperties=True,
        description="one recorded event: its kind's own fields follow seq, type and status_after",
    ),
    "History": _object(
        ["saga_id", "events"],
        {"saga_id": {"type": "string"}, "events": {"type": "array", "items": _ref("HistoryEvent")}},
    ),
    "Health": _object(["status"], {"status": {"type": "string"}}),
    "BackupResult": _object(
        ["dest", "bytes", "seconds"],
        {"dest": {"type": "string"}, "bytes": {"type": "integer", "minimum": 0}, "seconds": {"type": "number", "minimum": 0}},
    ),
    "PruneResult": _object(
        ["pruned", "records", "more", "dry_run"],
        {"pruned": {"type": "integer", "minimum": 0, "description": "sagas removed by this call"},
         "records": {"type": "integer", "minimum": 0, "description": "records deleted"},
         "more": {"type": "boolean", "description": "expired sagas remain: call again"},
         "dry_run": {"type": "boolean"},
         "expired": {"type": "integer", "minimum": 0, "description": "with dry_run: how many are expired"},
         "by_journey_type": _ref("PrunedCounts")},
    ),
    "PrunedCounts": {"type": "object", "additionalProperties": {"type": "integer"},
                     "description": "journey type -> sagas removed"},
    "OpenApiDocument": _free_object("an OpenAPI 3.1 document"),
    "CustomMilestone": _object(
        ["id"],
        {
            "id": ID,
            "name": {"type": "string", "minLength": 1, "maxLength": 256},
            "compensation_handler": _nullable(ID),
            "timeout_s": _nullable(POSITIVE),
            "retry": _nullable(_ref("RetryPolicy")),
            "forward_retry": _nullable(_ref("RetryPolicy")),
        },
        closed=True,
    ),
    "JourneyMetadata": _free_object("free-form data of yours, kept with the journey (requirements.metadata)"),
    "DesignRequirements": _object(
        [],
        {
            "milestones": _nullable(
                {"type": "array", "minItems": 1, "maxItems": 1000, "items": {"anyOf": [ID, _ref("CustomMilestone")]}},
                "null or absent: the template's milestones",
            ),
            "retry": _nullable(_ref("RetryPolicy"), "null: the default policy"),
            "forward_retry": _nullable(_ref("RetryPolicy"), "null: no forward retries"),
            "deadline_s": _nullable(POSITIVE),
            "compensation_deadline_s": _nullable(POSITIVE),
            "retention_s": _nullable({**POSITIVE, "maximum": 100 * 366 * 86400},
                                     "seconds a finished saga is kept (null: the server's setting)"),
            "metadata": _nullable(_ref("JourneyMetadata")),
        },
        description="how the journey runs. Any other key is your domain data, kept with the journey "
        "(e.g. `source`, `target`), except a key that reads like a mistyped policy key "
        "(`deadline_sec`, `max_retries`), which is refused (422); free-form data may also go under `metadata`",
    ),
    "DesignHandlerMap": {
        "type": "object",
        "additionalProperties": _nullable(ID),
        "description": "milestone id -> handler name (null: no compensation)",
    },
    "StepStatus": {"type": "string", "enum": ["complete", "failed"]},
    "StepResult": _object(
        ["status"],
        {
            "status": _ref("StepStatus"),
            "milestone_id": {**ID, "description": "names the milestone; makes an exact repeat a replay"},
            "error": {"type": "string"},
            "reason": {"type": "string"},
            "retryable": {"type": "boolean", "description": "a failure within the milestone's forward retry budget"},
        },
        additionalProperties=True,
        description="the milestone's result; other fields are recorded with it",
    ),
    **UI_SCHEMAS,  # the console's routes (http/ui_routes.py)
}

# --- examples (tests/http/test_openapi_document.py validates each against its schema) ---------

_ORDER_STEPS = ["create_order", "process_payment", "reserve_inventory", "ship_product"]
_RETRY = {"max_attempts": 5, "initial_delay_s": 0.5, "backoff": 2.0, "max_delay_s": 30.0, "jitter": 0.0}
_JOURNEY = {
    "journey_id": "orders",
    "version": 1,
    "journey_type": "order_processing",
    "tenant_id": "acme",
    "milestones": [
        {"id": m, "name": m, "compensation_handler": h, "timeout_s": None, "retry": _RETRY,
         "forward_retry": {**_RETRY, "max_attempts": 1}}
        for m, h in zip(_ORDER_STEPS, ["cancel_order", "refund_payment", "release_inventory", "cancel_shipment"])
    ],
    "compensation_handlers": {"create_order": "cancel_order", "process_payment": "refund_payment",
                              "reserve_inventory": "release_inventory", "ship_product": "cancel_shipment"},
    "requirements": {},
    "created_at": 1767225600.0,
    "deadline_s": None,
    "compensation_deadline_s": None,
}
_STATUS = {
    "saga_id": "order-1001",
    "journey_id": "orders",
    "journey_version": 1,
    "journey_type": "order_processing",
    "tenant_id": "acme",
    "user_id": "alice",
    "status": "IN_PROGRESS",
    "current_milestone": "create_order",
    "milestones": _ORDER_STEPS,
    "completed_milestones": [],
    "compensated_milestones": [],
    "pending_compensations": [],
    "compensation_status": "none",
    "compensation_attempts": 0,
    "compensation_error": None,
    "parked": False,
    "parked_reason": None,
    "failed_compensation": None,
    "manually_compensated": [],
    "failure": None,
    "milestone_attempts": 0,
    "milestone_retry_at": None,
    "milestone_due_at": None,
    "deadline_at": None,
    "compensation_deadline_at": None,
    "context": {"order_id": "1001"},
    "started_at": 1767225600.0,
    "updated_at": 1767225600.0,
    "started_at_iso": "2026-01-01T00:00:00.000000Z",
    "updated_at_iso": "2026-01-01T00:00:00.000000Z",
    "version": 1,
    "event": "saga_started",
}
_ADVANCED = {**_STATUS, "current_milestone": "process_payment", "completed_milestones": ["create_order"],
             "version": 2, "updated_at": 1767225601.0, "event": "milestone_completed"}
_FAILED = {
    **_STATUS,
    "status": "FAILED",
    "current_milestone": None,
    "completed_milestones": ["create_order", "process_payment"],
    "compensated_milestones": ["process_payment", "create_order"],
    "compensation_status": "succeeded",
    "failure": {"kind": "milestone_failed", "milestone_id": "reserve_inventory", "reason": "out of stock",
                "at": 1767225603.0, "result": {"status": "failed", "error": "out of stock"}},
    "version": 6,
    "updated_at": 1767225604.0,
}
_FAILED.pop("event")
_COMPENSATING = {**_FAILED, "status": "COMPENSATING", "compensated_milestones": [],
                 "pending_compensations": ["process_payment", "create_order"],
                 "compensation_status": "running", "version": 4, "event": "milestone_failed"}
_HISTORY = {
    "saga_id": "order-1001",
    "events": [
        {"seq": 1, "type": "saga_started", "status_after": "IN_PROGRESS"},
        {"seq": 2, "type": "milestone_completed", "milestone_id": "create_order", "status_after": "IN_PROGRESS"},
        {"seq": 3, "type": "milestone_completed", "milestone_id": "process_payment", "status_after": "IN_PROGRESS"},
        {"seq": 4, "type": "milestone_failed", "milestone_id": "reserve_inventory", "status_after": "COMPENSATING"},
        {"seq": 5, "type": "compensation_succeeded", "milestone_id": "process_payment", "status_after": "COMPENSATING"},
        {"seq": 6, "type": "compensation_succeeded", "milestone_id": "create_order", "status_after": "FAILED"},
    ],
}
_PROBLEM_CODES = {
    400: "malformed_body", 401: "unauthorized", 403: "forbidden", 404: "not_found", 408: "body_timeout",
    409: "invalid_transition", 410: "events_pruned", 413: "body_too_large", 415: "unsupported_media_type", 422: "invalid_input",
    429: "too_many_requests", 500: "corrupt_record", 503: "overloaded",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}
_ERROR_TEXT = {
    400: "malformed request: body not JSON/msgpack or not JSON-like data, a repeated Authorization or "
    "Idempotency-Key header, or an oversized request line",
    401: "missing or unknown bearer token",
    403: "the credential lacks the role this endpoint needs",
    404: "unknown id, or another tenant's",
    408: "the body did not arrive in time",
    409: "not allowed in the saga's state, conflicting report, or the same Idempotency-Key in flight",
    410: "Last-Event-ID is older than the retained event feed: events after it were pruned; list the "
    "sagas again, then follow the stream from now",
    413: "body larger than the configured limit",
    415: "unsupported Content-Type",
    422: "invalid input, missing handler, or Idempotency-Key reused for another request",
    429: "admission control: too many requests in flight, or queued for this saga",
    500: "a stored record failed its checksum (permanent until quarantined: the problem's hint names the "
    "command), or an internal error (the saga is parked with it recorded)",
    503: "storage unavailable, runtime overloaded or shutting down",
}


def _examples(**named: Any) -> dict[str, Any]:
    return {name: {"summary": name.replace("_", " "), "value": value} for name, value in named.items()}


def _problem_example(status: int) -> dict[str, Any]:
    code = _PROBLEM_CODES[status]
    return {"type": PROBLEM_TYPE + code, "title": TITLES[status], "status": status, "detail": _ERROR_TEXT[status], "code": code}


def _error(status: int) -> dict[str, Any]:
    content = {PROBLEM_JSON: {"schema": _ref("Problem"), "example": _problem_example(status)}}
    resp: dict[str, Any] = {"description": _ERROR_TEXT[status], "content": content}
    if status in (429, 503):
        resp["headers"] = _RETRY_AFTER
    return resp


def _ok(
    schema: str, description: str, examples: dict[str, Any], links: dict[str, Any] | None = None, location: bool = False
) -> dict[str, Any]:
    resp: dict[str, Any] = {
        "description": description,
        "content": {
            "application/json": {"schema": _ref(schema), "examples": examples},
            "application/msgpack": {"schema": _ref(schema)},
        },
    }
    if links:
        resp["links"] = links
    if location:
        resp["headers"] = {"Location": {"schema": {"type": "string"}, "description": "the new resource"}}
    return resp


def _saga_links() -> dict[str, Any]:
    sid = {"saga_id": "$response.body#/saga_id"}
    return {
        "GetSagaStatus": {"operationId": "get_saga_status", "parameters": sid},
        "GetSagaHistory": {"operationId": "get_saga_execution_history", "parameters": sid},
        "AdvanceSaga": {"operationId": "advance_saga_step", "parameters": sid},
        "FailSagaStep": {"operationId": "fail_saga_step", "parameters": sid},
        "CompensateSaga": {"operationId": "compensate_saga", "parameters": sid},
    }


_PATH_PARAM = {
    "journey_id": {"name": "journey_id", "in": "path", "required": True, "schema": ID, "example": "orders"},
    "saga_id": {"name": "saga_id", "in": "path", "required": True, "schema": ID, "example": "order-1001"},
}
_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "retry-safe writes: the same key and body replay the first response",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "example": "3f1c9a8e-order-1001-advance-1",
}
_READ_ERRORS = (400, 401, 403, 404, 422, 429, 500, 503)
_LIST_ERRORS = (400, 401, 403, 422, 429, 500, 503)
_WRITE_ERRORS = (400, 401, 403, 404, 408, 409, 413, 415, 422, 429, 500, 503)


_LAST_EVENT_ID = {
    "name": "Last-Event-ID", "in": "header", "required": False,
    "schema": {"type": "string", "pattern": "^[0-9]{1,19}$"},
    "description": "resume after this event id (sent by EventSource on reconnect)", "example": "42",
}
_FEED_EVENT_ID = {
    **_LAST_EVENT_ID, "schema": {"type": "string", "maxLength": 8192, "pattern": "^[0-9]{1,20}(\\.[0-9]{1,20})*$"},
    "description": "resume after this event id (sent by EventSource on reconnect): an integer, or with a "
                   "sharded data folder one position per shard joined by '.' (e.g. 12.0.7.3)",
}
_SSE_EXAMPLE = (
    "id: 42\nevent: milestone_completed\ndata: {\"saga_id\": \"order-1001\", \"seq\": 2, "
    "\"event\": \"milestone_completed\", \"status\": \"IN_PROGRESS\", \"saga\": {}}\n\n: ping\n\n"
)


def _sse(summary: str, description: str, errors: tuple[int, ...] = _READ_ERRORS,
         last_event_id: dict[str, Any] = _LAST_EVENT_ID) -> dict[str, Any]:
    return {"tag": "events", "summary": summary, "headers": [last_event_id], "sse": description, "errors": errors}


_OPERATOR_RESULT = "the status after the action (recorded in history with who and why)"
_PARKED = {**_COMPENSATING, "parked": True, "parked_reason": "refund_payment failed 5 times: gateway timeout",
           "failed_compensation": "process_payment", "compensation_attempts": 5, "compensation_status": "failed",
           "compensation_error": "gateway timeout", "event": "compensation_parked"}

# One entry per route name: tag, summary, success (status, schema, description, examples), errors,
# and for writes the request body's schema and examples.
OPERATIONS: dict[str, dict[str, Any]] = {
    "healthz": {"tag": "service", "summary": "Liveness", "ok": ("200", "Health", "the process is up", _examples(up={"status": "ok"})), "errors": ()},
    "readyz": {"tag": "service", "summary": "Readiness", "ok": ("200", "Health", "ready to serve", _examples(ready={"status": "ready"})), "errors": (503,)},
    "journey_templates": {
        "tag": "journeys",
        "summary": "Built-in journey templates",
        "ok": ("200", "TemplateList", "templates", _examples(templates={"templates": [
            {"journey_type": "order_processing", "milestones": _ORDER_STEPS,
             "compensation_handlers": _JOURNEY["compensation_handlers"]}]})),
        "errors": _LIST_ERRORS,
    },
    "design_saga_journey": {
        "tag": "journeys",
        "summary": "Design (or re-version) a journey",
        "ok": ("201", "Journey", "the stored journey version", _examples(designed=_JOURNEY)),
        "links": {
            "GetJourney": {"operationId": "get_journey", "parameters": {"journey_id": "$response.body#/journey_id"}},
            "ExecuteSagaJourney": {
                "operationId": "execute_saga_journey",
                "requestBody": {"journey_id": "$response.body#/journey_id"},
            },
        },
        "errors": _WRITE_ERRORS,
    },
    "list_journeys": {
        "tag": "journeys",
        "summary": "List this tenant's journeys",
        "ok": ("200", "JourneyList", "journeys", _examples(journeys={"journeys": [_JOURNEY]})),
        "errors": _LIST_ERRORS,
    },
    "get_journey": {
        "tag": "journeys",
        "summary": "Get a journey (latest version, or ?version=)",
        "ok": ("200", "Journey", "the journey", _examples(journey=_JOURNEY)),
        "errors": _READ_ERRORS,
    },
    "execute_saga_journey": {
        "tag": "sagas",
        "summary": "Start a saga",
        "ok": ("201", "SagaStatus", "the new saga's status", _examples(started=_STATUS)),
        "links": _saga_links(),
        "errors": _WRITE_ERRORS,
    },
    "list_sagas": {
        "tag": "sagas",
        "summary": "List this tenant's sagas, filtered and paginated",
        "ok": ("200", "SagaPage", "a page of sagas", _examples(page={"sagas": [_FAILED], "next_cursor": None})),
        "errors": _LIST_ERRORS,
    },
    "get_saga_status": {
        "tag": "sagas",
        "summary": "A saga's committed status; with wait, a long-poll",
        "ok": ("200", "SagaStatus", "status", _examples(running=_ADVANCED, failed=_FAILED, parked=_PARKED)),
        "errors": _READ_ERRORS,
    },
    "get_saga_execution_history": {
        "tag": "sagas",
        "summary": "A saga's history of events",
        "ok": ("200", "History", "events, oldest first", _examples(history=_HISTORY)),
        "errors": _READ_ERRORS,
    },
    "advance_saga_step": {
        "tag": "sagas",
        "summary": "Report the current milestone's result",
        "ok": ("200", "SagaStatus", "the status after the report (replayed: true for a repeat)", _examples(advanced=_ADVANCED)),
        "errors": _WRITE_ERRORS,
    },
    "fail_saga_step": {
        "tag": "sagas",
        "summary": "Fail the current milestone: compensation starts",
        "ok": ("200", "SagaStatus", "the status after the failure", _examples(compensating=_COMPENSATING)),
        "errors": _WRITE_ERRORS,
    },
    "compensate_saga": {
        "tag": "sagas",
        "summary": "Abort an IN_PROGRESS saga: completed milestones are compensated in reverse order",
        "ok": ("200", "SagaStatus", "the status after the abort", _examples(compensating={
            **_COMPENSATING, "failure": {"kind": "aborted", "milestone_id": None, "reason": "customer cancelled",
                                         "at": 1767225603.0, "result": None}, "event": "saga_aborted"})),
        "errors": _WRITE_ERRORS,
    },
    "events": _sse(
        "Live events of this tenant's sagas (Server-Sent Events)",
        "text/event-stream; each event's id is an opaque resumable position; without Last-Event-ID the "
        "stream starts now. A Last-Event-ID older than the retained event feed is answered 410 "
        "(code events_pruned): list the sagas again, then follow from now",
        (*_READ_ERRORS, 410), _FEED_EVENT_ID,
    ),
    "saga_events": _sse(
        "One saga's events (Server-Sent Events), from its first event or after Last-Event-ID",
        "text/event-stream; each event's id is the history seq",
    ),
    "backup": {
        "tag": "operator",
        "idempotency_key": False,  # a repeat is refused: the destination is no longer empty
        "summary": "Write a consistent compacted copy of the store to a server-side folder, while serving",
        "ok": ("200", "BackupResult", "the copy is complete", _examples(done={
            "dest": "/var/backups/saga-journey/2026-01-01", "bytes": 1048576, "seconds": 0.42})),
        "errors": _WRITE_ERRORS,
    },
    "prune": {
        "tag": "operator",
        "idempotency_key": False,  # a repeat is harmless: it prunes what is expired then
        "summary": "Remove finished sagas older than older_than_s (one bounded round; store-wide, like backup)",
        "ok": ("200", "PruneResult", "what this round removed; call again while more is true", _examples(
            pruned={"pruned": 500, "records": 6500, "more": True, "dry_run": False,
                    "by_journey_type": {"order_processing": 500}},
            counted={"expired": 1200, "pruned": 0, "records": 0, "more": True, "dry_run": True})),
        "errors": _WRITE_ERRORS,
    },
    "retry_compensation": {
        "tag": "operator",
        "summary": "Resume a parked rollback at the compensation that failed, with a fresh budget",
        "ok": ("200", "SagaStatus", _OPERATOR_RESULT, _examples(retried={**_COMPENSATING, "event": "compensation_retried"})),
        "errors": _WRITE_ERRORS,
        "idempotency_key": False,  # not read: a repeat finds the saga no longer parked and is refused (409)
    },
    "skip_compensation": {
        "tag": "operator",
        "summary": "Record the failed compensation as done by hand, then continue the rollback",
        "ok": ("200", "SagaStatus", _OPERATOR_RESULT, _examples(skipped={
            **_COMPENSATING, "compensated_milestones": ["process_payment"], "manually_compensated": ["process_payment"],
            "pending_compensations": ["create_order"], "event": "compensation_skipped"})),
        "errors": _WRITE_ERRORS,
        "idempotency_key": False,  # not read: a repeat finds the milestone no longer failed and is refused (409)
    },
    **UI_OPERATIONS,
}
_TAGS = [
    {"name": "journeys", "description": "design and read journey definitions"},
    {"name": "sagas", "description": "start sagas, report milestone results, read status and history"},
    {"name": "operator", "description": "resolve parked rollbacks, back up the store (admin role)"},
    {"name": "events", "description": "live events as Server-Sent Events, resumable with Last-Event-ID"},
    {"name": "service", "description": "health, readiness, this document, metrics"},
]


def _operation(r: Any) -> dict[str, Any]:
    spec = OPERATIONS[r.name]
    if "sse" in spec:
        ok = {"200": {"description": spec["sse"], "content": {"text/event-stream": {
            "schema": {"type": "string"}, "example": _SSE_EXAMPLE}}}}
    else:
        code, schema, text, examples = spec["ok"]
        ok = {code: _ok(schema, text, examples, spec.get("links"), location=code == "201")}
    op: dict[str, Any] = {
        "operationId": r.name,
        "tags": [spec["tag"]],
        "summary": spec["summary"],
        "responses": ok,
    }
    for status in spec["errors"]:
        op["responses"][str(status)] = _error(status)
    request = REQUESTS.get(r.name, NO_PARAMS)
    params = [_PATH_PARAM[name] for name in _PLACEHOLDER.findall(r.path)]
    params += [p.doc() for p in request.query]
    params += spec.get("headers", [])
    if r.method == "POST" and spec.get("idempotency_key", True):
        params.append(_IDEMPOTENCY)
    if params:
        op["parameters"] = params
    if request.body is not None:
        op["requestBody"] = {
            "required": not request.body.optional,
            "content": {"application/json": {"schema": _ref(request.body.component),
                                              "examples": dict(request.body.examples)}},
            "description": "JSON, or msgpack with Content-Type: application/msgpack",
        }
    if r.role is None:
        op["security"] = []
    else:
        op["description"] = f"Requires the `{r.role}` role."
    return op


def _plain(operation_id: str, summary: str, description: str, ctype: str, schema: dict[str, Any], example: Any) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "tags": ["service"],
        "summary": summary,
        "security": [],
        "responses": {"200": {"description": description, "content": {ctype: {"schema": schema, "example": example}}}},
    }


def build_openapi(routes: Sequence[Any], *, metrics: bool = False) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        if r.name == "openapi":
            op = _plain("openapi", "This document", "OpenAPI 3.1", "application/json", _ref("OpenApiDocument"),
                        {"openapi": "3.1.0", "info": {"title": "saga-journey gateway", "version": "0.1.0"}, "paths": {}})
        else:
            op = _operation(r)
        paths.setdefault(r.path, {})[r.method.lower()] = op  # aiohttp's {name} placeholders are OpenAPI's too
    if metrics:
        paths["/metrics"] = {"get": _plain(
            "metrics", "Prometheus metrics", "text exposition format", "text/plain", {"type": "string"},
            "# TYPE saga_sagas_started_total counter\nsaga_sagas_started_total{journey_type=\"order_processing\"} 1.0\n",
        )}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "saga-journey gateway",
            "version": "0.1.0",
            "description": "Durable sagas over HTTP. Errors are RFC 9457 application/problem+json. "
            "A reference page rendered from this document is served at /docs.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "tags": _TAGS,
        "paths": paths,
        "components": {
            "schemas": {**SCHEMAS, **request_components()},
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "description": "an API key from the config file"}},
        },
    }
