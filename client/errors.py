"""problem+json answers of the gateway as the project's typed errors (runtime/errors.py)."""

from __future__ import annotations

from typing import Any

from saga_journey.runtime import errors as e

# problem ``code`` -> exception class; codes the gateway itself emits are listed too
BY_CODE: dict[str, type[e.SagaError]] = {
    cls.code: cls
    for cls in (
        e.NotFoundError, e.InvalidInputError, e.InvalidTransitionError, e.ConflictError,
        e.IdempotencyKeyReusedError, e.RequestInFlightError, e.HandlerMissingError,
        e.StorageError, e.CorruptRecordError, e.OverloadedError, e.RuntimeClosedError,
        e.AuthError, e.ForbiddenError,
    )
}
BY_CODE.update(malformed_body=e.InvalidInputError, repeated_header=e.InvalidInputError,
               method_not_allowed=e.InvalidInputError, not_ready=e.OverloadedError)
BY_STATUS: dict[int, type[e.SagaError]] = {
    400: e.InvalidInputError, 401: e.AuthError, 403: e.ForbiddenError, 404: e.NotFoundError,
    409: e.ConflictError, 413: e.InvalidInputError, 415: e.InvalidInputError,
    422: e.InvalidInputError, 429: e.OverloadedError, 503: e.OverloadedError,
}


def error_from_problem(status: int, body: Any) -> e.SagaError:
    """The exception for an error answer; ``status`` and the problem's fields go in ``details``."""
    problem = body if isinstance(body, dict) else {}
    code = str(problem.get("code") or "")
    cls = BY_CODE.get(code) or BY_STATUS.get(status) or e.SagaError
    detail = problem.get("detail") or (body if isinstance(body, str) and body else f"HTTP {status}")
    extra = {k: v for k, v in problem.items() if k not in ("detail", "status", "code", "title")}
    err = cls(str(detail)[:2000], http_status=status, **extra)
    if code and code != cls.code:
        err.details["problem_code"] = code
    return err
