"""Internal keys: saga ids, journey ids and idempotency keys are scoped by tenant.

Two tenants may both own saga ``order-42``. ``scoped_key`` is the one place that turns
(tenant, id) into the key the directory, the actors and the store work on; every view keeps
showing the plain id. A leaf module (no project imports), so every layer may use it.
"""

from __future__ import annotations

SCOPE_SEP = "/"  # never in a tenant, saga or journey id (check_id); not a store key separator


def scoped_key(tenant_id: str, local: str) -> str:
    """The internal key of ``local`` (a saga id, journey id or idempotency key) of a tenant."""
    if not isinstance(tenant_id, str) or not tenant_id or SCOPE_SEP in tenant_id:
        raise ValueError(f"tenant_id must be a non-empty string without {SCOPE_SEP!r}, got {tenant_id!r}")
    return f"{tenant_id}{SCOPE_SEP}{local}"


def local_id(key: str) -> str:
    """The id a user sees for an internal key (the part after the tenant)."""
    return key.partition(SCOPE_SEP)[2]
