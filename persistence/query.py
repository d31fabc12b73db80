"""What a saga listing asks for: backend-neutral (the ``Queries`` port's ``find_sagas``)."""

from __future__ import annotations

from dataclasses import dataclass

ORDERS = ("newest", "oldest")


@dataclass(frozen=True, slots=True)
class Query:
    """A tenant's sagas by ``updated_at`` (``order``), filtered; ``None``: any."""

    tenant: str
    status: str | None = None
    parked: bool | None = None  # FAILED with its compensation failed (waiting for an operator)
    journey_type: str | None = None
    journey_id: str | None = None
    user_id: str | None = None
    updated_after: float | None = None  # inclusive
    updated_before: float | None = None  # exclusive
    order: str = "newest"


__all__ = ["ORDERS", "Query"]
