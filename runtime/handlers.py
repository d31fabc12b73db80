"""Compensation handlers: the registry and what a handler is given when it runs."""

from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, Awaitable, Callable, Union

from .errors import InvalidInputError
from .journeys import check_id


@dataclass(frozen=True, slots=True)
class CompensationContext:
    """Everything a compensation handler needs to undo one milestone, idempotently."""

    saga_id: str
    journey_id: str
    journey_type: str
    tenant_id: str
    milestone_id: str
    idempotency_key: str
    step_result: Mapping[str, Any]
    context: Mapping[str, Any]
    attempt: int


Handler = Callable[[CompensationContext], Union[Any, Awaitable[Any]]]


def idempotency_key(saga_key: str, milestone_id: str) -> str:
    """Stable across retries and restarts, so a handler can deduplicate its side effects.

    ``saga_key`` is the saga's tenant-scoped key, so two tenants' sagas never share one."""
    return f"{saga_key}/{milestone_id}/compensate"


class HandlerRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()

    def register(self, name: str, handler: Handler) -> None:
        check_id(name, "handler name")
        if not callable(handler):
            raise InvalidInputError(f"handler {name!r} must be callable")
        with self._lock:
            self._handlers[name] = handler

    def get(self, name: str) -> Handler | None:
        return self._handlers.get(name)

    def names(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._handlers)

    def missing(self, names: frozenset[str]) -> list[str]:
        return sorted(names - self.names())

    @staticmethod
    def is_async(handler: Handler) -> bool:
        return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None)
        )
