"""saga-journey runtime: the public API of the embedded saga orchestrator."""

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

__all__ = [
    "COMPENSATING",
    "COMPLETED",
    "FAILED",
    "IN_PROGRESS",
    "Clock",
    "CompensationContext",
    "ConflictError",
    "CorruptRecordError",
    "HandlerMissingError",
    "InvalidInputError",
    "InvalidTransitionError",
    "ManualClock",
    "NonRetryableError",
    "NotFoundError",
    "OverloadedError",
    "RuntimeClosedError",
    "RuntimeConfig",
    "RuntimeObserver",
    "SagaError",
    "SagaOrchestrator",
    "StorageError",
    "SystemClock",
]
