"""One exception root for everything saga-journey raises on purpose.

Every error carries a short machine-readable ``code`` (used by the HTTP gateway to pick a
status and a problem type) and a message that says what was wrong and what was expected.
"""

from __future__ import annotations

from typing import Any


class SagaError(Exception):
    """Root of every error saga-journey raises deliberately."""

    code = "saga_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.details}


class NotFoundError(SagaError):
    """The saga or journey does not exist (or belongs to another tenant)."""

    code = "not_found"


class InvalidInputError(SagaError):
    """The request itself is malformed: wrong types, unknown fields, bad ids."""

    code = "invalid_input"


class InvalidTransitionError(SagaError):
    """The request is well-formed but not allowed in the saga's current state."""

    code = "invalid_transition"


class ConflictError(InvalidTransitionError):
    """A report contradicts what was already recorded (e.g. a different result for a done milestone)."""

    code = "conflict"


class IdempotencyKeyReusedError(InvalidInputError):
    """An Idempotency-Key was used before with a different request."""

    code = "idempotency_key_reused"


class RequestInFlightError(ConflictError):
    """A request with this Idempotency-Key is still being processed."""

    code = "request_in_flight"


class HandlerMissingError(SagaError):
    """A compensation handler name cannot be resolved to a registered handler."""

    code = "handler_missing"


class StorageError(SagaError):
    """The store could not durably record or read data; nothing was acknowledged."""

    code = "storage_error"


class CorruptRecordError(StorageError):
    """A stored record failed its checksum or could not be decoded."""

    code = "corrupt_record"


class OverloadedError(SagaError):
    """The runtime refused work to protect itself; retry later."""

    code = "overloaded"


class NotOwnerError(SagaError):
    """A worker of ``serve --workers`` was asked to change a saga of a shard another owns."""

    code = "not_owner"


class RuntimeClosedError(SagaError):
    """The orchestrator was closed; no further requests are accepted."""

    code = "runtime_closed"


class NonRetryableError(SagaError):
    """Raised by a compensation handler to say: retrying cannot help, stop now."""

    code = "non_retryable"


class AuthError(SagaError):
    """The gateway refused the credential: missing, unknown or malformed bearer token (401)."""

    code = "unauthorized"


class ForbiddenError(AuthError):
    """The credential is valid but lacks the role the request needs (403)."""

    code = "forbidden"


class ConnectionFailedError(SagaError):
    """The gateway could not be reached (or kept dropping the connection) within the retries."""

    code = "connection_failed"
