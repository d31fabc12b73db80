"""saga-journey runtime: the public API of the embedded saga orchestrator.

Names are re-exported lazily (PEP 562): importing a low layer such as
``saga_journey.runtime.clock`` must not pull in the composition root (the orchestrator, which
imports actors and persistence, which import this package back).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Clock": "clock",
    "ManualClock": "clock",
    "SystemClock": "clock",
    "RuntimeConfig": "config",
    "ConflictError": "errors",
    "CorruptRecordError": "errors",
    "HandlerMissingError": "errors",
    "InvalidInputError": "errors",
    "InvalidTransitionError": "errors",
    "NonRetryableError": "errors",
    "NotFoundError": "errors",
    "OverloadedError": "errors",
    "RuntimeClosedError": "errors",
    "SagaError": "errors",
    "StorageError": "errors",
    "CompensationContext": "handlers",
    "COMPENSATING": "model",
    "COMPLETED": "model",
    "FAILED": "model",
    "IN_PROGRESS": "model",
    "RuntimeObserver": "observer",
    "SagaOrchestrator": "orchestrator",
}

__all__ = sorted(_EXPORTS)

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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
