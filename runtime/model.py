"""Immutable values of the saga domain: journeys, saga state, messages, events, effects.

Pure data only: no threads, no I/O, no clock. Timestamps are plain floats (seconds since the
epoch) handed in by the shell that owns the clock. Every value converts to and from a plain
msgpack/JSON-able dict so the store and the gateway can carry it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

# Saga states, exactly the four of the seed quick reference.
IN_PROGRESS = "IN_PROGRESS"
COMPENSATING = "COMPENSATING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
SAGA_STATES = (IN_PROGRESS, COMPENSATING, COMPLETED, FAILED)
TERMINAL_STATES = frozenset({COMPLETED, FAILED})

# Compensation status of a saga.
COMP_NONE = "none"
COMP_RUNNING = "running"
COMP_SUCCEEDED = "succeeded"
COMP_FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently one compensation handler is retried."""

    max_attempts: int = 5
    initial_delay_s: float = 0.05
    backoff: float = 2.0
    max_delay_s: float = 30.0

    def delay_after(self, failed_attempts: int) -> float:
        """Delay before the next attempt once ``failed_attempts`` attempts have failed."""
        delay = self.initial_delay_s * (self.backoff ** max(failed_attempts - 1, 0))
        return min(delay, self.max_delay_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_attempts": self.max_attempts,
            "initial_delay_s": self.initial_delay_s,
            "backoff": self.backoff,
            "max_delay_s": self.max_delay_s,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RetryPolicy:
        return cls(
            max_attempts=int(d["max_attempts"]),
            initial_delay_s=float(d["initial_delay_s"]),
            backoff=float(d["backoff"]),
            max_delay_s=float(d["max_delay_s"]),
        )


@dataclass(frozen=True, slots=True)
class MilestoneDef:
    id: str
    name: str
    compensation_handler: str | None = None
    timeout_s: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "compensation_handler": self.compensation_handler,
            "timeout_s": self.timeout_s,
            "retry": self.retry.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MilestoneDef:
        return cls(
            id=d["id"],
            name=d["name"],
            compensation_handler=d.get("compensation_handler"),
            timeout_s=d.get("timeout_s"),
            retry=RetryPolicy.from_dict(d["retry"]),
        )


@dataclass(frozen=True, slots=True)
class Journey:
    """A designed, versioned definition: an ordered list of milestones."""

    journey_id: str
    version: int
    journey_type: str
    tenant_id: str
    milestones: tuple[MilestoneDef, ...]
    requirements: Mapping[str, Any]
    created_at: float

    def milestone_ids(self) -> tuple[str, ...]:
        return tuple(m.id for m in self.milestones)

    def milestone(self, milestone_id: str) -> MilestoneDef:
        for m in self.milestones:
            if m.id == milestone_id:
                return m
        raise KeyError(milestone_id)

    def handler_names(self) -> frozenset[str]:
        return frozenset(m.compensation_handler for m in self.milestones if m.compensation_handler)

    def to_dict(self) -> dict[str, Any]:
        return {
            "journey_id": self.journey_id,
            "version": self.version,
            "journey_type": self.journey_type,
            "tenant_id": self.tenant_id,
            "milestones": [m.to_dict() for m in self.milestones],
            "compensation_handlers": {
                m.id: m.compensation_handler for m in self.milestones if m.compensation_handler
            },
            "requirements": dict(self.requirements),
            "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Journey:
        return cls(
            journey_id=d["journey_id"],
            version=int(d["version"]),
            journey_type=d["journey_type"],
            tenant_id=d["tenant_id"],
            milestones=tuple(MilestoneDef.from_dict(m) for m in d["milestones"]),
            requirements=dict(d.get("requirements") or {}),
            created_at=float(d["created_at"]),
        )


@dataclass(frozen=True, slots=True)
class CompletedMilestone:
    milestone_id: str
    result: Mapping[str, Any]
    at: float


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a saga left IN_PROGRESS: a milestone reported failure, or the saga was aborted."""

    kind: str  # "milestone_failed" | "aborted"
    milestone_id: str | None
    reason: str
    at: float
    result: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class SagaState:
    saga_id: str
    journey_id: str
    journey_version: int
    journey_type: str
    tenant_id: str
    user_id: str
    context: Mapping[str, Any]
    milestone_ids: tuple[str, ...]
    status: str
    completed: tuple[CompletedMilestone, ...]
    compensated: tuple[str, ...]
    pending_compensations: tuple[str, ...]
    compensation_status: str
    compensation_attempts: int
    next_compensation_at: float | None
    compensation_error: str | None
    failure: Failure | None
    started_at: float
    updated_at: float
    compensation_started_at: float | None
    version: int

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATES

    @property
    def current_milestone(self) -> str | None:
        if self.status != IN_PROGRESS:
            return None
        return self.milestone_ids[len(self.completed)]

    def completed_ids(self) -> tuple[str, ...]:
        return tuple(c.milestone_id for c in self.completed)

    def recorded(self, milestone_id: str) -> CompletedMilestone | None:
        for c in self.completed:
            if c.milestone_id == milestone_id:
                return c
        return None


# --- messages: what the shell asks the core to decide on -------------------------------


@dataclass(frozen=True, slots=True)
class StartSaga:
    saga_id: str
    journey: Journey
    user_id: str
    context: Mapping[str, Any]
    at: float


@dataclass(frozen=True, slots=True)
class ReportStep:
    step_result: Mapping[str, Any]
    at: float


@dataclass(frozen=True, slots=True)
class AbortSaga:
    reason: str
    by: str
    at: float


@dataclass(frozen=True, slots=True)
class CompensationOutcome:
    milestone_id: str
    attempt: int
    ok: bool
    at: float
    duration_s: float = 0.0
    error: str | None = None
    retryable: bool = True


Message = StartSaga | ReportStep | AbortSaga | CompensationOutcome


# --- events: what happened; one event per applied transition -----------------------------


@dataclass(frozen=True, slots=True)
class SagaStarted:
    kind: ClassVar[str] = "saga_started"
    saga_id: str
    journey_id: str
    journey_version: int
    journey_type: str
    tenant_id: str
    user_id: str
    milestone_ids: tuple[str, ...]
    context: Mapping[str, Any]
    at: float


@dataclass(frozen=True, slots=True)
class MilestoneCompleted:
    kind: ClassVar[str] = "milestone_completed"
    milestone_id: str
    result: Mapping[str, Any]
    at: float


@dataclass(frozen=True, slots=True)
class MilestoneFailed:
    kind: ClassVar[str] = "milestone_failed"
    milestone_id: str
    reason: str
    result: Mapping[str, Any]
    to_compensate: tuple[str, ...]
    at: float


@dataclass(frozen=True, slots=True)
class SagaAborted:
    kind: ClassVar[str] = "saga_aborted"
    reason: str
    by: str
    to_compensate: tuple[str, ...]
    at: float


@dataclass(frozen=True, slots=True)
class CompensationSucceeded:
    kind: ClassVar[str] = "compensation_succeeded"
    milestone_id: str
    attempt: int
    duration_s: float
    at: float


@dataclass(frozen=True, slots=True)
class CompensationAttemptFailed:
    kind: ClassVar[str] = "compensation_attempt_failed"
    milestone_id: str
    attempt: int
    error: str
    duration_s: float
    retry_at: float
    at: float


@dataclass(frozen=True, slots=True)
class CompensationExhausted:
    kind: ClassVar[str] = "compensation_exhausted"
    milestone_id: str
    attempt: int
    error: str
    duration_s: float
    retryable: bool
    at: float


Event = (
    SagaStarted
    | MilestoneCompleted
    | MilestoneFailed
    | SagaAborted
    | CompensationSucceeded
    | CompensationAttemptFailed
    | CompensationExhausted
)


# --- effects: what the shell must do once the state implying them is committed ----------


@dataclass(frozen=True, slots=True)
class RunCompensation:
    milestone_id: str
    handler: str
    attempt: int
    not_before: float | None
    retry: RetryPolicy


Effect = RunCompensation


@dataclass(frozen=True, slots=True)
class Decision:
    """The core's answer to a message: the event to apply (None for an idempotent replay)."""

    event: Event | None
    replayed: bool = False
    note: str | None = None
