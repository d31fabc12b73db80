"""saga-journey runtime: the public API of the embedded saga orchestrator.

Names are re-exported lazily (PEP 562): importing a low-layer module (``saga_journey.runtime.
model``, ``.errors``, ...) never pulls in the composition root (the orchestrator).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .clock import Clock, ManualClock, SystemClock
    from .config import RuntimeConfig
    from .errors import (
        ConflictError,
        CorruptRecordError,
        HandlerMissingError,
        InvalidInputError,
        InvalidTransitionError,
        NonRetryableError,
        NotFoundError,
        OverloadedError,
        RuntimeClosedError,
        SagaError,
        StorageError,
    )
    from .handlers import CompensationContext
    from .model import COMPENSATING, COMPLETED, FAILED, IN_PROGRESS
    from .observer import RuntimeObserver
    from .orchestrator import SagaOrchestrator

_EXPORTS = {
    "Clock": ".clock",
    "ManualClock": ".clock",
    "SystemClock": ".clock",
    "RuntimeConfig": ".config",
    "ConflictError": ".errors",
    "CorruptRecordError": ".errors",
    "HandlerMissingError": ".errors",
    "InvalidInputError": ".errors",
    "InvalidTransitionError": ".errors",
    "NonRetryableError": ".errors",
    "NotFoundError": ".errors",
    "OverloadedError": ".errors",
    "RuntimeClosedError": ".errors",
    "SagaError": ".errors",
    "StorageError": ".errors",
    "CompensationContext": ".handlers",
    "COMPENSATING": ".model",
    "COMPLETED": ".model",
    "FAILED": ".model",
    "IN_PROGRESS": ".model",
    "RuntimeObserver": ".observer",
    "SagaOrchestrator": ".orchestrator",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this hook
    return value
