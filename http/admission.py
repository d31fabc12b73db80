"""Admission control: bounded in-flight requests overall and bounded queued writes per saga.

Everything here runs on the gateway's single event loop, so plain counters need no locks.
"""

from __future__ import annotations

from saga_journey.persistence.keys import scoped_key

from .problems import Problem


class Admission:
    def __init__(self, max_in_flight: int, max_per_saga: int, retry_after_s: int) -> None:
        self.max_in_flight = max_in_flight
        self.max_per_saga = max_per_saga
        self.in_flight = 0
        self._per_saga: dict[str, int] = {}
        self._retry = {"Retry-After": str(retry_after_s)}

    def enter(self) -> None:
        if self.in_flight >= self.max_in_flight:
            raise Problem(
                429,
                "too_many_requests",
                f"{self.in_flight} requests are in flight (limit {self.max_in_flight}); retry shortly",
                headers=self._retry,
            )
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1

    def saga(self, tenant_id: str, saga_id: str) -> SagaSlot:
        """A slot of the tenant's saga: another tenant's saga of the same id is another queue."""
        return SagaSlot(self, scoped_key(tenant_id, saga_id), saga_id)

    def queued(self, tenant_id: str, saga_id: str) -> int:
        return self._per_saga.get(scoped_key(tenant_id, saga_id), 0)


class SagaSlot:
    """``with admission.saga(tenant, id):`` holds one of that saga's queue slots for a write."""

    __slots__ = ("_adm", "_key", "_id")

    def __init__(self, adm: Admission, key: str, saga_id: str) -> None:
        self._adm = adm
        self._key = key
        self._id = saga_id

    def __enter__(self) -> None:
        per = self._adm._per_saga
        n = per.get(self._key, 0)
        if n >= self._adm.max_per_saga:
            raise Problem(
                429,
                "saga_queue_full",
                f"{n} writes to saga {self._id} are already queued (limit {self._adm.max_per_saga}); "
                "retry shortly",
                headers=self._adm._retry,
            )
        per[self._key] = n + 1

    def __exit__(self, *exc: object) -> None:
        per = self._adm._per_saga
        n = per[self._key] - 1
        if n:
            per[self._key] = n
        else:
            del per[self._key]
