"""The OpenAPI 3.1 document of the gateway, built from the route table plus the schemas below."""

from __future__ import annotations

from typing import Any, Sequence

from saga_journey.runtime.journeys import ID_PATTERN, template_names
from saga_journey.runtime.model import SAGA_STATES

ID = {"type": "string", "pattern": ID_PATTERN.pattern, "maxLength": 128}
NULLABLE_STR = {"type": ["string", "null"]}
STR_LIST = {"type": "array", "items": {"type": "string"}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


RETRY_POLICY = {
    "type": "object",
    "properties": {
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 1000},
        "initial_delay_s": {"type": "number", "minimum": 0},
        "backoff": {"type": "number", "minimum": 1},
        "max_delay_s": {"type": "number", "minimum": 0},
        "jitter": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "additionalProperties": False,
}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details; `code` is the machine-readable error code.",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string"},
            "instance": {"type": "string"},
        },
    },
    "RetryPolicy": RETRY_POLICY,
    "Milestone": {
        "type": "object",
        "required": ["id", "name", "compensation_handler", "timeout_s", "retry"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "compensation_handler": NULLABLE_STR,
            "timeout_s": {"type": ["number", "null"]},
            "retry": _ref("RetryPolicy"),
            "forward_retry": _ref("RetryPolicy"),
        },
    },
    "Journey": {
        "type": "object",
        "required": [
            "journey_id", "version", "journey_type", "tenant_id", "milestones",
            "compensation_handlers", "requirements", "created_at",
        ],
        "properties": {
            "journey_id": {"type": "string"},
            "version": {"type": "integer", "minimum": 1},
            "journey_type": {"type": "string"},
            "tenant_id": {"type": "string"},
            "milestones": {"type": "array", "items": _ref("Milestone")},
            "compensation_handlers": {"type": "object", "additionalProperties": {"type": "string"}},
            "requirements": {"type": "object"},
            "created_at": {"type": "number"},
            "deadline_s": {"type": ["number", "null"]},
            "compensation_deadline_s": {"type": ["number", "null"]},
            "missing_handlers": {**STR_LIST, "description": "handlers named but not registered"},
            "replayed": {"type": "boolean"},
        },
    },
    "JourneyList": {
        "type": "object",
        "required": ["journeys"],
        "properties": {"journeys": {"type": "array", "items": _ref("Journey")}},
    },
    "Template": {
        "type": "object",
        "required": ["journey_type", "milestones", "compensation_handlers"],
        "properties": {
            "journey_type": {"type": "string"},
            "milestones": STR_LIST,
            "compensation_handlers": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "TemplateList": {
        "type": "object",
        "required": ["templates"],
        "properties": {"templates": {"type": "array", "items": _ref("Template")}},
    },
    "Failure": {
        "type": ["object", "null"],
        "required": ["kind", "milestone_id", "reason", "at", "result"],
        "properties": {
            "kind": {"type": "string", "enum": ["milestone_failed", "timeout", "deadline", "aborted"]},
            "milestone_id": NULLABLE_STR,
            "reason": {"type": "string"},
            "at": {"type": "number"},
            "result": {"type": ["object", "null"]},
        },
    },
    "SagaStatus": {
        "type": "object",
        "required": [
            "saga_id", "journey_id", "journey_version", "journey_type", "tenant_id", "user_id",
            "status", "current_milestone", "milestones", "completed_milestones",
            "compensated_milestones", "pending_compensations", "compensation_status",
            "compensation_attempts", "compensation_error", "failure", "context",
            "started_at", "updated_at", "version",
        ],
        "properties": {
            "saga_id": {"type": "string"},
            "journey_id": {"type": "string"},
            "journey_version": {"type": "integer"},
            "journey_type": {"type": "string"},
            "tenant_id": {"type": "string"},
            "user_id": {"type": "string"},
            "status": {"type": "string", "enum": list(SAGA_STATES)},
            "current_milestone": NULLABLE_STR,
            "milestones": STR_LIST,
            "completed_milestones": STR_LIST,
            "compensated_milestones": STR_LIST,
            "pending_compensations": STR_LIST,
            "compensation_status": {"type": "string", "enum": ["none", "running", "succeeded", "failed"]},
            "compensation_attempts": {"type": "integer", "minimum": 0},
            "compensation_error": NULLABLE_STR,
            "failure": _ref("Failure"),
            "context": {"type": "object"},
            "started_at": {"type": "number"},
            "updated_at": {"type": "number"},
            "version": {"type": "integer"},
            "parked": {"type": "boolean", "description": "compensation gave up: an operator must retry or skip"},
            "parked_reason": NULLABLE_STR,
            "failed_compensation": NULLABLE_STR,
            "manually_compensated": STR_LIST,
            "milestone_attempts": {"type": "integer", "minimum": 0},
            "milestone_retry_at": {"type": ["number", "null"]},
            "milestone_due_at": {"type": ["number", "null"]},
            "deadline_at": {"type": ["number", "null"]},
            "compensation_deadline_at": {"type": ["number", "null"]},
            "event": {"type": "string", "description": "the event this write recorded"},
            "replayed": {"type": "boolean", "description": "true: a repeat, answered without applying anything"},
            "note": NULLABLE_STR,
        },
    },
    "SagaPage": {
        "type": "object",
        "required": ["sagas", "next_cursor"],
        "properties": {
            "sagas": {"type": "array", "items": _ref("SagaStatus")},
            "next_cursor": NULLABLE_STR,
        },
    },
    "History": {
        "type": "object",
        "required": ["saga_id", "events"],
        "properties": {
            "saga_id": {"type": "string"},
            "events": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["seq", "type", "status_after"],
                    "properties": {
                        "seq": {"type": "integer", "minimum": 1},
                        "type": {"type": "string"},
                        "status_after": {"type": "string", "enum": list(SAGA_STATES)},
                    },
                },
            },
        },
    },
    "Health": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
    "DesignRequest": {
        "type": "object",
        "required": ["journey_type"],
        "additionalProperties": False,
        "properties": {
            "journey_type": {**ID, "description": f"a template ({', '.join(template_names())}) or a custom type with requirements.milestones"},
            "requirements": {
                "type": "object",
                "description": "how the journey runs; unknown keys are refused (422); free-form data goes under `metadata`",
                "additionalProperties": False,
                "properties": {
                    "metadata": {"type": ["object", "null"], "description": "free-form data kept with the journey"},
                    "milestones": {
                        "type": ["array", "null"],
                        "description": "null or absent: the template's milestones",
                        "minItems": 1,
                        "maxItems": 1000,
                        "items": {
                            "anyOf": [
                                ID,
                                {
                                    "type": "object",
                                    "required": ["id"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "id": ID,
                                        "name": {"type": "string", "minLength": 1, "maxLength": 256},
                                        "compensation_handler": {"anyOf": [ID, {"type": "null"}]},
                                        "timeout_s": {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "null"}]},
                                        "retry": {"anyOf": [_ref("RetryPolicy"), {"type": "null"}]},
                                        "forward_retry": {"anyOf": [_ref("RetryPolicy"), {"type": "null"}]},
                                    },
                                },
                            ]
                        },
                    },
                    "retry": {"anyOf": [_ref("RetryPolicy"), {"type": "null"}], "description": "null: the default policy"},
                    "forward_retry": {"anyOf": [_ref("RetryPolicy"), {"type": "null"}], "description": "null: no forward retries"},
                    "deadline_s": {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "null"}]},
                    "compensation_deadline_s": {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "null"}]},
                },
            },
            "compensation_handlers": {
                "type": "object",
                "additionalProperties": {"anyOf": [ID, {"type": "null"}]},
                "description": "milestone id -> handler name (null: no compensation)",
            },
            "journey_id": ID,
            "allow_unregistered_handlers": {"type": "boolean"},
        },
        "example": {"journey_type": "order_processing", "allow_unregistered_handlers": True},
    },
    "ExecuteRequest": {
        "type": "object",
        "required": ["journey_id"],
        "additionalProperties": False,
        "properties": {
            "journey_id": ID,
            "user_id": {**ID, "description": "the saga's user; default: the credential's user"},
            "context": {"type": "object"},
            "saga_id": {**ID, "description": "choose the id (must be new); default: generated"},
            "journey_version": {"type": "integer", "minimum": 1, "maximum": 10**9},
        },
    },
    "AdvanceRequest": {
        "type": "object",
        "required": ["step_result"],
        "additionalProperties": False,
        "properties": {
            "step_result": {
                "type": "object",
                "required": ["status"],
                "properties": {
                    "status": {"type": "string", "enum": ["complete", "failed"]},
                    "milestone_id": {**ID, "description": "names the milestone; makes an exact repeat a replay"},
                    "error": {"type": "string"},
                    "reason": {"type": "string"},
                    "retryable": {"type": "boolean", "description": "a failure within the milestone's forward retry budget"},
                },
            },
            "journey_id": ID,
        },
        "example": {"step_result": {"status": "complete"}},
    },
    "FailRequest": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {"type": "string", "minLength": 1},
            "milestone_id": ID,
            "result": {"type": "object", "description": "extra fields recorded with the failure"},
        },
        "example": {"error": "card declined"},
    },
    "CompensateRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"reason": {"type": "string", "minLength": 1}},
    },
    "RetryCompensationRequest": {
        "type": "object",
        "required": ["reason"],
        "additionalProperties": False,
        "properties": {"reason": {"type": "string", "minLength": 1, "pattern": "\\S"}},
    },
    "SkipCompensationRequest": {
        "type": "object",
        "required": ["milestone_id", "reason"],
        "additionalProperties": False,
        "properties": {
            "milestone_id": ID,
            "reason": {"type": "string", "minLength": 1, "pattern": "\\S"},
        },
    },
}

_PROBLEM = {"application/problem+json": {"schema": _ref("Problem")}}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}
_ERROR_TEXT = {
    400: "malformed request: body not JSON/msgpack or not JSON-like data, or an oversized request line",
    401: "missing or unknown bearer token",
    403: "the credential lacks the role this endpoint needs",
    404: "unknown id, or another tenant's",
    408: "the body did not arrive in time",
    409: "not allowed in the saga's state, conflicting report, or the same Idempotency-Key in flight",
    413: "body larger than the configured limit",
    415: "unsupported Content-Type",
    422: "invalid input, missing handler, or Idempotency-Key reused for another request",
    429: "admission control: too many requests in flight, or queued for this saga",
    503: "storage unavailable, runtime overloaded or shutting down",
}


def _error(status: int) -> dict[str, Any]:
    resp: dict[str, Any] = {"description": _ERROR_TEXT[status], "content": _PROBLEM}
    if status in (429, 503):
        resp["headers"] = _RETRY_AFTER
    return resp


def _ok(schema: str, description: str, links: dict[str, Any] | None = None, location: bool = False) -> dict[str, Any]:
    resp: dict[str, Any] = {
        "description": description,
        "content": {
            "application/json": {"schema": _ref(schema)},
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
    "journey_id": {"name": "journey_id", "in": "path", "required": True, "schema": ID},
    "saga_id": {"name": "saga_id", "in": "path", "required": True, "schema": ID},
}
_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "retry-safe writes: the same key and body replay the first response",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
_READ_ERRORS = (400, 401, 403, 404, 422, 429, 503)
_WRITE_ERRORS = (400, 401, 403, 404, 408, 409, 413, 415, 422, 429, 503)


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


OPERATIONS: dict[str, dict[str, Any]] = {
    "healthz": {"summary": "Liveness", "ok": ("200", "Health", "the process is up"), "errors": ()},
    "readyz": {"summary": "Readiness", "ok": ("200", "Health", "ready to serve"), "errors": (503,)},
    "journey_templates": {"summary": "Built-in journey templates", "ok": ("200", "TemplateList", "templates"), "errors": (400, 401, 403, 429, 503)},
    "design_saga_journey": {
        "summary": "Design (or re-version) a journey",
        "body": "DesignRequest",
        "ok": ("201", "Journey", "the stored journey version"),
        "links": {
            "GetJourney": {"operationId": "get_journey", "parameters": {"journey_id": "$response.body#/journey_id"}},
            "ExecuteSagaJourney": {
                "operationId": "execute_saga_journey",
                "requestBody": {"journey_id": "$response.body#/journey_id"},
            },
        },
        "errors": _WRITE_ERRORS,
    },
    "list_journeys": {"summary": "List this tenant's journeys", "ok": ("200", "JourneyList", "journeys"), "errors": (400, 401, 403, 429, 503)},
    "get_journey": {
        "summary": "Get a journey (latest version, or ?version=)",
        "params": [_PATH_PARAM["journey_id"], _query("version", {"type": "integer", "minimum": 1, "maximum": 10**9}, "a specific version")],
        "ok": ("200", "Journey", "the journey"),
        "errors": _READ_ERRORS,
    },
    "execute_saga_journey": {
        "summary": "Start a saga",
        "body": "ExecuteRequest",
        "ok": ("201", "SagaStatus", "the new saga's status"),
        "links": _saga_links(),
        "errors": _WRITE_ERRORS,
    },
    "list_sagas": {
        "summary": "List this tenant's sagas, filtered and paginated",
        "params": [
            _query("status", {"type": "string", "enum": list(SAGA_STATES)}, "only sagas in this state"),
            _query("journey_type", ID, "only sagas of this journey type"),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size (default 100)"),
            _query("cursor", {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": "^[A-Za-z0-9_-]+$"}, "next_cursor of the previous page"),
        ],
        "ok": ("200", "SagaPage", "a page of sagas"),
        "errors": (400, 401, 403, 422, 429, 503),
    },
    "get_saga_status": {"summary": "A saga's committed status", "params": [_PATH_PARAM["saga_id"]], "ok": ("200", "SagaStatus", "status"), "errors": _READ_ERRORS},
    "get_saga_execution_history": {
        "summary": "A saga's history of events",
        "params": [
            _PATH_PARAM["saga_id"],
            _query("after_seq", {"type": "integer", "minimum": 0, "maximum": 10**12}, "only events after this sequence number"),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 10000}, "at most this many events"),
        ],
        "ok": ("200", "History", "events, oldest first"),
        "errors": _READ_ERRORS,
    },
    "advance_saga_step": {
        "summary": "Report the current milestone's result",
        "params": [_PATH_PARAM["saga_id"]],
        "body": "AdvanceRequest",
        "ok": ("200", "SagaStatus", "the status after the report (replayed: true for a repeat)"),
        "errors": _WRITE_ERRORS,
    },
    "fail_saga_step": {
        "summary": "Fail the current milestone: compensation starts",
        "params": [_PATH_PARAM["saga_id"]],
        "body": "FailRequest",
        "ok": ("200", "SagaStatus", "the status after the failure"),
        "errors": _WRITE_ERRORS,
    },
    "compensate_saga": {
        "summary": "Abort an IN_PROGRESS saga: completed milestones are compensated in reverse order",
        "params": [_PATH_PARAM["saga_id"]],
        "body": "CompensateRequest",
        "body_optional": True,
        "ok": ("200", "SagaStatus", "the status after the abort"),
        "errors": _WRITE_ERRORS,
    },
    "retry_compensation": {
        "summary": "Resume a parked rollback at the compensation that failed, with a fresh budget",
        "params": [_PATH_PARAM["saga_id"]],
        "body": "RetryCompensationRequest",
        "ok": ("200", "SagaStatus", "the status after the action (recorded in history with who and why)"),
        "errors": _WRITE_ERRORS,
    },
    "skip_compensation": {
        "summary": "Record the failed compensation as done by hand, then continue the rollback",
        "params": [_PATH_PARAM["saga_id"]],
        "body": "SkipCompensationRequest",
        "ok": ("200", "SagaStatus", "the status after the action (recorded in history with who and why)"),
        "errors": _WRITE_ERRORS,
    },
}


def query_params(operation: str) -> tuple[str, ...]:
    """The query parameters the operation documents; the gateway refuses any other (422)."""
    spec = OPERATIONS.get(operation, {})
    return tuple(sorted(p["name"] for p in spec.get("params", ()) if p["in"] == "query"))


def _openapi_path(path: str) -> str:
    return path  # aiohttp's {name} placeholders are OpenAPI's too


def build_openapi(routes: Sequence[Any], *, metrics: bool = False) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        if r.name == "openapi":
            op: dict[str, Any] = {
                "operationId": "openapi",
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}},
            }
        else:
            spec = OPERATIONS[r.name]
            code, schema, text = spec["ok"]
            op = {
                "operationId": r.name,
                "summary": spec["summary"],
                "responses": {code: _ok(schema, text, spec.get("links"), location=code == "201")},
            }
            for status in spec["errors"]:
                op["responses"][str(status)] = _error(status)
            params = list(spec.get("params", []))
            if r.method == "POST":
                params.append(_IDEMPOTENCY)
            if params:
                op["parameters"] = params
            if "body" in spec:
                op["requestBody"] = {
                    "required": not spec.get("body_optional", False),
                    "content": {"application/json": {"schema": _ref(spec["body"])}},
                    "description": "JSON, or msgpack with Content-Type: application/msgpack",
                }
            if r.role is None:
                op["security"] = []
            else:
                op["description"] = f"Requires the `{r.role}` role."
        paths.setdefault(_openapi_path(r.path), {})[r.method.lower()] = op
    if metrics:
        paths["/metrics"] = {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics",
                "security": [],
                "responses": {"200": {"description": "text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}},
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "saga-journey gateway",
            "version": "0.1.0",
            "description": "Durable sagas over HTTP. Errors are RFC 9457 application/problem+json.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "description": "an API key from the config file"}},
        },
    }
