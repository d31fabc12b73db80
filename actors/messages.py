"""Messages exchanged between the runtime's actors (shell-level envelopes around core messages)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from saga_journey.runtime.model import CompensationOutcome, Message
from saga_journey.runtime.replies import Reply


@dataclass(slots=True)
class Command:
    """A request for the saga: ``build(now)`` makes the core message; ``reply`` gets the answer."""

    build: Callable[[float], Message]
    reply: Reply | None
    tenant_id: str | None = None
    journey_id: str | None = None
    idempotency: tuple[str, str] | None = None  # (store key, request fingerprint)


@dataclass(frozen=True, slots=True)
class Committed:
    token: int
    error: BaseException | None


@dataclass(frozen=True, slots=True)
class CompensationReport:
    outcome: CompensationOutcome


@dataclass(frozen=True, slots=True)
class RunOwed:
    """Dispatch the effects the committed state still owes (after activation or a timer)."""


@dataclass(frozen=True, slots=True)
class TimerDue:
    """A durable timer of the saga came due (delivered through the directory: may activate)."""

    kind: str
    due: float


@dataclass(frozen=True, slots=True)
class Passivate:
    idle_for_s: float


@dataclass(frozen=True, slots=True)
class RunAttempt:
    """Run one attempt; with ``handler`` and ``context``, of another milestone than before
    (one compensator serves a saga's whole rollback, milestone after milestone)."""

    attempt: int
    handler: Any = None
    context: Any = None
    slot: Any = None


@dataclass(frozen=True, slots=True)
class HandlerTimeout:
    """A compensation attempt ran past its handler timeout: abandon it, count it failed."""

    milestone_id: str
    attempt: int
    after_s: float
