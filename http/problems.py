"""RFC 9457 problem details: one exception type for gateway-level errors, one table for runtime errors."""

from __future__ import annotations

import json
from typing import Any, Mapping

from aiohttp import web

from saga_journey.runtime.errors import SagaError

PROBLEM_TYPE = "urn:saga-journey:problem:"
PROBLEM_JSON = "application/problem+json"

# runtime error code -> HTTP status (most specific codes first is not needed: codes are exact)
STATUS_BY_CODE: dict[str, int] = {
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "invalid_input": 422,
    "idempotency_key_reused": 422,
    "handler_missing": 422,
    "invalid_transition": 409,
    "conflict": 409,
    "request_in_flight": 409,
    "overloaded": 503,
    "storage_error": 503,
    "corrupt_record": 500,  # permanent: a retry reads the same bytes
    "runtime_closed": 503,
    "not_owner": 503,  # its owner is restarting (the gateway forwards to the owner otherwise)
    "owner_unavailable": 503,
    "saga_error": 500,
}
RETRY_CODES = frozenset({"overloaded", "storage_error", "runtime_closed", "reply_timeout", "not_owner",
                         "owner_unavailable"})
# What an operator should do about a fault that no retry clears.
HINTS: dict[str, str] = {
    "corrupt_record": (
        "a stored record failed its checksum or decode and was quarantined; retrying cannot help. "
        "Operator: stop the server and run `saga-journey quarantine --data-dir <data folder>` to list "
        "the corrupt records, then see docs/crash-safety.md (Runbook: quarantined records)"
    ),
}

TITLES: dict[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    410: "Gone",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Problem(Exception):
    """A gateway-level error rendered as problem+json."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        close: bool = False,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        self.close = close
        self.extra = extra


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    close: bool = False,
    instance: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> web.Response:
    body: dict[str, Any] = dict(extra or {})
    body.update(
        type=PROBLEM_TYPE + code,
        title=TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        code=code,
    )
    if instance:
        body["instance"] = instance
    resp = web.Response(
        status=status,
        body=json.dumps(body, default=str).encode("ascii"),
        content_type=PROBLEM_JSON,
        headers=headers,
    )
    if close:
        resp.force_close()
    return resp


def from_problem(p: Problem, instance: str | None = None) -> web.Response:
    return problem_response(
        p.status, p.code, p.detail, headers=p.headers, close=p.close, instance=instance, extra=p.extra
    )


def from_saga_error(exc: SagaError, retry_after_s: int, instance: str | None = None) -> web.Response:
    status = STATUS_BY_CODE.get(exc.code, 500)
    headers = {"Retry-After": str(retry_after_s)} if exc.code in RETRY_CODES else None
    extra = {k: v for k, v in exc.details.items() if k not in ("type", "title", "status", "detail", "code")}
    if exc.code in HINTS:
        extra["hint"] = HINTS[exc.code]
    return problem_response(status, exc.code, exc.message, headers=headers, instance=instance, extra=extra)
