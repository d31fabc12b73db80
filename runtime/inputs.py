"""Checks of what API callers pass in: who is asking, and values small and admissible enough
to store. Each raises ``InvalidInputError`` before anything is written."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from saga_journey.persistence.records import pack

from .errors import InvalidInputError
from .journeys import check_id
from .values import check_value

UserContext = Mapping[str, Any] | None
MAX_CONTEXT_BYTES = 256 * 1024
MAX_VERSION = 10**9  # journey versions are stored as 10 digits


def tenant_of(user_context: UserContext, default_tenant: str) -> str:
    """The tenant a request acts for (``user_context["tenant_id"]``, else the default)."""
    if user_context is None:
        return default_tenant
    if not isinstance(user_context, Mapping):
        raise InvalidInputError("user_context must be a mapping with an optional 'tenant_id'")
    tenant = user_context.get("tenant_id", default_tenant)
    return check_id(tenant, "user_context.tenant_id")


def actor_of(user_context: UserContext) -> str:
    """Who acts, for the audit trail (``user_context["user_id"]``, else ``"system"``)."""
    if isinstance(user_context, Mapping):
        who = user_context.get("user_id")
        if isinstance(who, str):
            return check_value(who, "user_context.user_id")
    return "system"


def check_packable(value: Any, what: str) -> None:
    """Admissible (``values.check_value``: readable back through JSON and msgpack) and small."""
    check_value(value, what)
    packed = pack(value)  # the same bytes as msgpack.packb, with a reused Packer
    if len(packed) > MAX_CONTEXT_BYTES:
        raise InvalidInputError(f"{what} is {len(packed)} bytes; the limit is {MAX_CONTEXT_BYTES}")


def check_reason(reason: Any) -> str:
    """An operator action's reason: a non-empty string (it goes in the audit trail)."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInputError("reason must be a non-empty string (it goes in the audit trail)")
    check_packable(reason, "reason")
    return reason


def check_journey_version(version: Any) -> None:
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION
    ):
        raise InvalidInputError(f"journey version must be an integer from 1 to {MAX_VERSION}")
