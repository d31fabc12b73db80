"""Immutable values of the saga domain: journeys, saga state, messages, events, effects.

Pure data only: no threads, no I/O, no clock. Timestamps are plain floats (seconds since the
epoch) handed in by the shell that owns the clock. Every value converts to and from a plain
msgpack/JSON-able dict so the store and the gateway can carry it.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

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
    jitter: float = 0.0
    """Fraction (0-1) of each delay taken off at random, so retries of many sagas spread out."""
    handler_timeout_s: float | None = None
    """An attempt still running after this long is abandoned and counted as a failed attempt
    (None: the runtime's ``RuntimeConfig.handler_timeout_s``)."""

    def delay_after(self, failed_attempts: int, salt: str = "") -> float:
        """Delay before the next attempt once ``failed_attempts`` attempts have failed.

        Jitter is derived from ``salt`` (e.g. saga and milestone ids) by a hash, not a random
        generator, so the core stays deterministic and a replay computes the same delay.
        """
        delay = saturating_growth(
            self.initial_delay_s, self.backoff, failed_attempts - 1, self.max_delay_s
        )
        if self.jitter:
            delay *= 1.0 - self.jitter * _unit_hash(f"{salt}/{failed_attempts}")
        return delay

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "max_attempts": self.max_attempts,
            "initial_delay_s": self.initial_delay_s,
            "backoff": self.backoff,
            "max_delay_s": self.max_delay_s,
            "jitter": self.jitter,
        }
        if self.handler_timeout_s is not None:
            d["handler_timeout_s"] = self.handler_timeout_s
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RetryPolicy:
        return cls(
            max_attempts=int(d["max_attempts"]),
            initial_delay_s=float(d["initial_delay_s"]),
            backoff=float(d["backoff"]),
            max_delay_s=float(d["max_delay_s"]),
            jitter=float(d.get("jitter", 0.0)),
            handler_timeout_s=(
                None if d.get("handler_timeout_s") is None else float(d["handler_timeout_s"])
            ),
        )


NO_RETRY = RetryPolicy(max_attempts=1, initial_delay_s=0.0)

# ``factor ** n`` is computed directly only while it is surely finite (e**700 < float max).
_DIRECT_POW_LOG = 700.0


def saturating_growth(initial: float, factor: float, n: int, cap: float) -> float:
    """``min(initial * factor ** n, cap)`` for any inputs, without ever overflowing.

    The comparison with ``cap`` is made in log space, so a huge ``factor`` (1e308) or ``n``
    (thousands of attempts) saturates at ``cap`` instead of raising OverflowError. Negative or
    NaN inputs (never accepted by validation, but possibly in an old stored journey) give 0.
    """
    if not (initial > 0 and cap > 0):  # also catches NaN
        return 0.0
    cap = min(cap, sys.float_info.max)
    start = min(initial, cap)
    if n <= 0 or not factor > 1.0:
        return start
    n = min(n, 10**300)  # any larger count saturates anyway; keeps float(n) finite
    log_growth = n * math.log(factor)  # factor may be inf: log_growth is inf
    if log_growth >= math.log(cap) - math.log(initial):
        return cap
    if log_growth < _DIRECT_POW_LOG:  # factor ** n <= e ** _DIRECT_POW_LOG: cannot overflow
        return min(initial * math.pow(factor, n), cap)  # factor > 1: a float, as ** gives
    return min(math.exp(math.log(initial) + log_growth), cap)


def _unit_hash(text: str) -> float:
    """FNV-1a of ``text`` mapped to [0, 1): a deterministic stand-in for a random draw."""
    h = 0xCBF29CE484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h / 2**64


@dataclass(frozen=True, slots=True)
class MilestoneDef:
    id: str
    name: str
    compensation_handler: str | None = None
    timeout_s: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """Budget of the compensation handler."""
    forward_retry: RetryPolicy = NO_RETRY
    """Budget of the milestone itself: reports of a retryable failure within it keep the saga going."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "compensation_handler": self.compensation_handler,
            "timeout_s": self.timeout_s,
            "retry": self.retry.to_dict(),
            "forward_retry": self.forward_retry.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MilestoneDef:
        return cls(
            id=d["id"],
            name=d["name"],
            compensation_handler=d.get("compensation_handler"),
            timeout_s=d.get("timeout_s"),
            retry=RetryPolicy.from_dict(d["retry"]),
            forward_retry=RetryPolicy.from_dict(d["forward_retry"]) if d.get("forward_retry") else NO_RETRY,
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
    deadline_s: float | None = None
    """The whole saga must complete within this; past it, it fails and compensates."""
    compensation_deadline_s: float | None = None
    """A rollback must finish within this; past it, the saga is parked for an operator."""
    retention_s: float | None = None
    """A finished saga of this journey is pruned this long after it finished (None: the
    runtime's ``retention_s``). Parked sagas are never pruned."""

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
            "deadline_s": self.deadline_s,
            "compensation_deadline_s": self.compensation_deadline_s,
            **({"retention_s": self.retention_s} if self.retention_s is not None else {}),
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
            deadline_s=d.get("deadline_s"),
            compensation_deadline_s=d.get("compensation_deadline_s"),
            retention_s=d.get("retention_s"),
        )


@dataclass(frozen=True, slots=True)
class CompletedMilestone:
    milestone_id: str
    result: Mapping[str, Any]
    at: float


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a saga left IN_PROGRESS: a milestone reported failure, or the saga was aborted."""

    kind: str  # "milestone_failed" | "timeout" | "deadline" | "aborted"
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
    milestone_due_at: float | None = None
    deadline_at: float | None = None
    compensation_deadline_at: float | None = None
    forward_attempts: int = 0
    forward_retry_at: float | None = None
    manually_compensated: tuple[str, ...] = ()
    parked_reason: str | None = None
    last_compensation_error: str | None = None
    """The error of a compensation that was later repaired (retried, skipped or succeeded):
    history, kept beside ``compensation_error``, which only describes a failure still current."""

    @property
    def is_parked(self) -> bool:
        """Compensation gave up (budget spent, deadline passed, internal error): an operator must act."""
        return self.status == FAILED and self.compensation_status == COMP_FAILED

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


@dataclass(frozen=True, slots=True)
class TimerFired:
    kind: str  # "milestone_timeout" | "deadline" | "compensation_deadline"
    due: float
    at: float


@dataclass(frozen=True, slots=True)
class RetryCompensation:
    """Operator action: resume a parked rollback with a fresh budget."""

    by: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class SkipCompensation:
    """Operator action: the failed compensation was done by hand; continue the rollback."""

    milestone_id: str
    by: str
    reason: str
    at: float


Message = (
    StartSaga
    | ReportStep
    | AbortSaga
    | CompensationOutcome
    | TimerFired
    | RetryCompensation
    | SkipCompensation
)


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
    milestone_due_at: float | None = None
    deadline_at: float | None = None


@dataclass(frozen=True, slots=True)
class MilestoneCompleted:
    kind: ClassVar[str] = "milestone_completed"
    milestone_id: str
    result: Mapping[str, Any]
    at: float
    next_due_at: float | None = None


@dataclass(frozen=True, slots=True)
class MilestoneAttemptFailed:
    """A retryable failure within a milestone's forward budget: the saga keeps going."""

    kind: ClassVar[str] = "milestone_attempt_failed"
    milestone_id: str
    attempt: int
    error: str
    result: Mapping[str, Any]
    retry_at: float
    at: float
    next_due_at: float | None = None


@dataclass(frozen=True, slots=True)
class MilestoneFailed:
    kind: ClassVar[str] = "milestone_failed"
    milestone_id: str
    reason: str
    result: Mapping[str, Any]
    to_compensate: tuple[str, ...]
    at: float
    cause: str = "milestone_failed"  # or "timeout" / "deadline"
    compensation_deadline_at: float | None = None


@dataclass(frozen=True, slots=True)
class SagaAborted:
    kind: ClassVar[str] = "saga_aborted"
    reason: str
    by: str
    to_compensate: tuple[str, ...]
    at: float
    compensation_deadline_at: float | None = None


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
    handler: str | None = None


@dataclass(frozen=True, slots=True)
class CompensationParked:
    """The rollback's own deadline passed: stop and wait for an operator."""

    kind: ClassVar[str] = "compensation_parked"
    milestone_id: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class CompensationRetried:
    kind: ClassVar[str] = "compensation_retried"
    milestone_id: str
    by: str
    reason: str
    at: float
    compensation_deadline_at: float | None = None


@dataclass(frozen=True, slots=True)
class CompensationSkipped:
    kind: ClassVar[str] = "compensation_skipped"
    milestone_id: str
    by: str
    reason: str
    at: float
    compensation_deadline_at: float | None = None


@dataclass(frozen=True, slots=True)
class SagaFaulted:
    """An unexpected error inside the runtime while handling one of the saga's messages.

    The saga is parked for an operator instead of being left without anything scheduled: a
    COMPENSATING saga stops its rollback; an IN_PROGRESS saga fails with its rollback parked
    before the first compensation (``to_compensate``: nothing owed means it just ends FAILED);
    an already parked saga records the new error. ``retry_compensation`` /
    ``skip_compensation`` repair it as any parked saga.
    """

    kind: ClassVar[str] = "saga_faulted"
    reason: str
    while_handling: str
    to_compensate: tuple[str, ...]
    at: float


Event = (
    SagaStarted
    | MilestoneCompleted
    | MilestoneAttemptFailed
    | MilestoneFailed
    | SagaAborted
    | CompensationSucceeded
    | CompensationAttemptFailed
    | CompensationExhausted
    | CompensationParked
    | CompensationRetried
    | CompensationSkipped
    | SagaFaulted
)


# --- effects: what the shell must do once the state implying them is committed ----------


@dataclass(frozen=True, slots=True)
class RunCompensation:
    milestone_id: str
    handler: str
    attempt: int
    not_before: float | None
    retry: RetryPolicy


@dataclass(frozen=True, slots=True)
class ArmTimer:
    kind: str  # "milestone_timeout" | "deadline" | "compensation_deadline"
    due: float


Effect = RunCompensation | ArmTimer


@dataclass(frozen=True, slots=True)
class Decision:
    """The core's answer to a message: the event to apply (None for an idempotent replay)."""

    event: Event | None
    replayed: bool = False
    note: str | None = None


_COPIERS: dict[type, Any] = {}


def _make_copier(cls: type) -> Any:
    """Compile ``copy(obj, changes)`` for one slotted dataclass: one slot store per field."""
    names = [f.name for f in dataclasses.fields(cls)]
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    lines = ["def copy(o, ch):", "    n = _new(_cls)", "    g = ch.get"]
    for i, name in enumerate(names):
        env[f"_s{i}"] = cls.__dict__[name].__set__
        lines.append(f"    _s{i}(n, g({name!r}, o.{name}))")
    lines.append("    return n")
    exec("\n".join(lines), env)  # noqa: S102 - generated from the class's own field names
    return env["copy"], frozenset(names)


_D = TypeVar("_D", bound="DataclassInstance")


def replace(obj: _D, /, **changes: Any) -> _D:
    """``dataclasses.replace`` for the core's frozen slotted dataclasses, without re-running
    ``__init__`` (which sets each field through ``object.__setattr__``): a compiled copy that
    stores each slot once. Unknown field names raise TypeError, as ``dataclasses.replace`` does."""
    cls = type(obj)
    copier = _COPIERS.get(cls)
    if copier is None:
        if "__slots__" not in cls.__dict__ or hasattr(cls, "__post_init__"):
            return dataclasses.replace(obj, **changes)
        copier = _COPIERS[cls] = _make_copier(cls)
    copy, names = copier
    if not names.issuperset(changes):
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(set(changes) - names)}")
    copied: _D = copy(obj, changes)  # the generated copier is untyped: it returns a new cls
    return copied
