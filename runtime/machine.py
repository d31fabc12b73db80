"""The saga state machine: ``decide`` and ``evolve`` as plain functions over immutable values.

``decide(journey, state, message)`` validates a message against the current state and
returns the single event it causes (or a replay, or raises a SagaError and changes nothing).
``evolve(state, event)`` applies an event. ``owed_effects(journey, state)`` says what the
shell still has to do for a committed state, which is also exactly what recovery re-issues
after a crash. No threads, I/O or clock reads here: a test enforces it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

from .errors import ConflictError, InvalidInputError, InvalidTransitionError
from .model import (
    replace,
    COMP_FAILED,
    COMP_NONE,
    COMP_RUNNING,
    COMP_SUCCEEDED,
    COMPENSATING,
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    AbortSaga,
    ArmTimer,
    CompensationAttemptFailed,
    CompensationExhausted,
    CompensationOutcome,
    CompensationParked,
    CompensationRetried,
    CompensationSkipped,
    CompensationSucceeded,
    CompletedMilestone,
    Decision,
    Effect,
    Event,
    Failure,
    Journey,
    Message,
    MilestoneAttemptFailed,
    MilestoneCompleted,
    MilestoneFailed,
    ReportStep,
    RetryCompensation,
    RunCompensation,
    SagaAborted,
    SagaFaulted,
    SagaStarted,
    SagaState,
    SkipCompensation,
    StartSaga,
    TimerFired,
)

STEP_STATUSES = ("complete", "failed")
MAX_REASON_CHARS = 2000


def decide(journey: Journey, state: SagaState | None, message: Message) -> Decision:
    """Decide what ``message`` does to ``state``; raise a SagaError if it is not allowed."""
    if isinstance(message, StartSaga):
        return _decide_start(state, message)
    if state is None:
        raise InvalidTransitionError("saga has not been started")
    if isinstance(message, ReportStep):
        return _decide_report(journey, state, message)
    if isinstance(message, AbortSaga):
        return _decide_abort(journey, state, message)
    if isinstance(message, CompensationOutcome):
        return _decide_compensation(journey, state, message)
    if isinstance(message, TimerFired):
        return _decide_timer(journey, state, message)
    if isinstance(message, RetryCompensation):
        return _decide_retry_compensation(journey, state, message)
    if isinstance(message, SkipCompensation):
        return _decide_skip_compensation(journey, state, message)
    raise InvalidInputError(f"unknown message type {type(message).__name__}")


def _decide_start(state: SagaState | None, m: StartSaga) -> Decision:
    if state is not None:
        raise ConflictError(f"saga {m.saga_id} already exists", saga_id=m.saga_id)
    j = m.journey
    if not j.milestones:
        raise InvalidInputError("journey has no milestones; nothing to run")
    return Decision(
        SagaStarted(
            saga_id=m.saga_id,
            journey_id=j.journey_id,
            journey_version=j.version,
            journey_type=j.journey_type,
            tenant_id=j.tenant_id,
            user_id=m.user_id,
            milestone_ids=j.milestone_ids(),
            context=m.context,
            at=m.at,
            milestone_due_at=_due(m.at, j.milestones[0].timeout_s),
            deadline_at=_due(m.at, j.deadline_s),
        )
    )


def _due(at: float, seconds: float | None) -> float | None:
    return None if seconds is None else at + seconds


def parse_step_result(step_result: Any) -> tuple[str, str | None, dict[str, Any]]:
    """Validate a step result; return (status, named milestone id or None, recorded result)."""
    if type(step_result) is not dict and not isinstance(step_result, Mapping):
        raise InvalidInputError(
            "step_result must be an object such as {\"status\": \"complete\"}",
            got=type(step_result).__name__,
        )
    status = step_result.get("status")
    if status not in STEP_STATUSES:
        raise InvalidInputError(
            f"step_result.status must be one of {list(STEP_STATUSES)}, got {status!r}",
            expected=list(STEP_STATUSES),
        )
    named = step_result.get("milestone_id")
    if named is not None and not isinstance(named, str):
        raise InvalidInputError("step_result.milestone_id must be a string when given")
    for key in ("error", "reason"):
        value = step_result.get(key)
        if value is not None and not isinstance(value, str):
            raise InvalidInputError(f"step_result.{key} must be a string when given")
    if not isinstance(step_result.get("retryable", False), bool):
        raise InvalidInputError("step_result.retryable must be true or false when given")
    recorded = {k: v for k, v in step_result.items() if k != "milestone_id"}
    return status, named, recorded


def _decide_report(journey: Journey, state: SagaState, m: ReportStep) -> Decision:
    status, named, recorded = parse_step_result(m.step_result)
    if named is not None and named not in state.milestone_ids:
        raise InvalidInputError(
            f"milestone {named!r} is not part of journey {state.journey_id} "
            f"v{state.journey_version}; expected one of {list(state.milestone_ids)}",
            expected=list(state.milestone_ids),
        )
    replay = _replay_of(state, status, named, recorded)
    if replay is not None:
        return replay
    if state.status != IN_PROGRESS:
        f = state.failure
        if f is not None and f.kind in ("timeout", "deadline"):
            raise InvalidTransitionError(
                f"saga {state.saga_id} {'timed out' if f.kind == 'timeout' else 'passed its deadline'}"
                f" at milestone {f.milestone_id!r} and is {state.status}; late report refused",
                status=state.status,
            )
        raise InvalidTransitionError(
            f"saga {state.saga_id} is {state.status}; it accepts no more milestone reports",
            status=state.status,
        )
    current = state.current_milestone
    assert current is not None
    if named is not None and named != current:
        raise InvalidTransitionError(
            f"report names milestone {named!r} but saga {state.saga_id} expects {current!r}",
            expected=current,
            got=named,
        )
    for due, what in ((state.milestone_due_at, "milestone timeout"), (state.deadline_at, "saga deadline")):
        if due is not None and m.at >= due:
            raise InvalidTransitionError(
                f"report for {current!r} arrived after the {what}; late report refused",
                status=state.status,
            )
    milestones = journey.milestones
    if status == "complete":
        index = len(state.completed) + 1
        next_due = _due(m.at, milestones[index].timeout_s) if index < len(milestones) else None
        return Decision(
            MilestoneCompleted(milestone_id=current, result=recorded, at=m.at, next_due_at=next_due)
        )
    reason = str(recorded.get("error") or recorded.get("reason") or "milestone reported failure")
    milestone = journey.milestone(current)
    attempt = state.forward_attempts + 1
    if recorded.get("retryable") and attempt < milestone.forward_retry.max_attempts:
        return Decision(
            MilestoneAttemptFailed(
                milestone_id=current,
                attempt=attempt,
                error=reason[:MAX_REASON_CHARS],
                result=recorded,
                retry_at=m.at
                + milestone.forward_retry.delay_after(attempt, f"{state.saga_id}/{current}"),
                at=m.at,
                next_due_at=_due(m.at, milestone.timeout_s),
            )
        )
    return Decision(_fail(journey, state, current, reason, recorded, m.at, "milestone_failed"))


def _fail(
    journey: Journey,
    state: SagaState,
    milestone_id: str,
    reason: str,
    result: Mapping[str, Any],
    at: float,
    cause: str,
) -> MilestoneFailed:
    return MilestoneFailed(
        milestone_id=milestone_id,
        reason=reason[:MAX_REASON_CHARS],
        result=result,
        to_compensate=_to_compensate(journey, state),
        at=at,
        cause=cause,
        compensation_deadline_at=_due(at, journey.compensation_deadline_s),
    )


def _replay_of(
    state: SagaState, status: str, named: str | None, recorded: Mapping[str, Any]
) -> Decision | None:
    """An exact repeat of an already-applied report is answered, never applied twice."""
    if named is None:
        return None
    done = state.recorded(named)
    if done is not None:
        if status == "complete" and dict(done.result) == recorded:
            return Decision(None, replayed=True, note=f"milestone {named!r} already completed")
        raise ConflictError(
            f"milestone {named!r} was already completed with a different result; "
            "a completed milestone cannot be reported again",
            milestone_id=named,
            recorded=dict(done.result),
        )
    f = state.failure
    if f is not None and f.kind == "milestone_failed" and f.milestone_id == named:
        if status == "failed" and dict(f.result or {}) == recorded:
            return Decision(None, replayed=True, note=f"milestone {named!r} already failed")
        raise ConflictError(
            f"milestone {named!r} already failed; saga {state.saga_id} is {state.status}",
            milestone_id=named,
        )
    return None


def _to_compensate(journey: Journey, state: SagaState) -> tuple[str, ...]:
    """Completed milestones that have a compensation handler, newest first."""
    owed = []
    for done in reversed(state.completed):
        if journey.milestone(done.milestone_id).compensation_handler:
            owed.append(done.milestone_id)
    return tuple(owed)


def _decide_abort(journey: Journey, state: SagaState, m: AbortSaga) -> Decision:
    if state.status == COMPENSATING:
        return Decision(None, replayed=True, note="saga is already compensating")
    if state.status != IN_PROGRESS:
        raise InvalidTransitionError(
            f"saga {state.saga_id} is {state.status}; only an IN_PROGRESS saga can be compensated",
            status=state.status,
        )
    return Decision(
        SagaAborted(
            reason=m.reason[:MAX_REASON_CHARS],
            by=m.by,
            to_compensate=_to_compensate(journey, state),
            at=m.at,
            compensation_deadline_at=_due(m.at, journey.compensation_deadline_s),
        )
    )


def _decide_compensation(journey: Journey, state: SagaState, m: CompensationOutcome) -> Decision:
    expected = state.compensation_attempts + 1
    if (
        state.status != COMPENSATING
        or not state.pending_compensations
        or state.pending_compensations[0] != m.milestone_id
        or m.attempt != expected
    ):
        # A stale or duplicate outcome (e.g. re-run after a crash): nothing to apply.
        return Decision(None, replayed=True, note="stale compensation outcome ignored")
    if m.ok:
        return Decision(
            CompensationSucceeded(
                milestone_id=m.milestone_id, attempt=m.attempt, duration_s=m.duration_s, at=m.at
            )
        )
    error = (m.error or "compensation handler failed")[:MAX_REASON_CHARS]
    milestone = journey.milestone(m.milestone_id)
    policy = milestone.retry
    if m.retryable and m.attempt < policy.max_attempts:
        return Decision(
            CompensationAttemptFailed(
                milestone_id=m.milestone_id,
                attempt=m.attempt,
                error=error,
                duration_s=m.duration_s,
                retry_at=m.at + policy.delay_after(m.attempt, f"{state.saga_id}/{m.milestone_id}"),
                at=m.at,
            )
        )
    return Decision(
        CompensationExhausted(
            milestone_id=m.milestone_id,
            attempt=m.attempt,
            error=error,
            duration_s=m.duration_s,
            retryable=m.retryable,
            at=m.at,
            handler=milestone.compensation_handler,
        )
    )


def _decide_timer(journey: Journey, state: SagaState, m: TimerFired) -> Decision:
    stale = Decision(None, replayed=True, note=f"stale {m.kind} timer ignored")
    if m.at < m.due:
        return stale
    if m.kind in ("milestone_timeout", "deadline"):
        due = state.milestone_due_at if m.kind == "milestone_timeout" else state.deadline_at
        if state.status != IN_PROGRESS or due is None or due != m.due:
            return stale
        current = state.current_milestone
        assert current is not None
        if m.kind == "milestone_timeout":
            timeout = journey.milestone(current).timeout_s
            reason = f"timeout: no report for {current!r} within {timeout:g}s"
            cause = "timeout"
        else:
            reason = f"deadline: saga did not complete within {journey.deadline_s:g}s"
            cause = "deadline"
        return Decision(_fail(journey, state, current, reason, {}, m.at, cause))
    if m.kind == "compensation_deadline":
        if state.status != COMPENSATING or state.compensation_deadline_at != m.due:
            return stale
        return Decision(
            CompensationParked(
                milestone_id=state.pending_compensations[0],
                reason=(
                    f"compensation deadline of {journey.compensation_deadline_s:g}s passed; "
                    "parked for an operator"
                ),
                at=m.at,
            )
        )
    raise InvalidInputError(f"unknown timer kind {m.kind!r}")


def _require_parked(state: SagaState, action: str) -> None:
    if not state.is_parked:
        raise InvalidTransitionError(
            f"{action} applies only to a parked saga (FAILED with compensation_status "
            f"'failed'); saga {state.saga_id} is {state.status} with compensation_status "
            f"{state.compensation_status!r}",
            status=state.status,
        )


def _decide_retry_compensation(journey: Journey, state: SagaState, m: RetryCompensation) -> Decision:
    _require_parked(state, "retry_compensation")
    return Decision(
        CompensationRetried(
            milestone_id=state.pending_compensations[0],
            by=m.by,
            reason=m.reason[:MAX_REASON_CHARS],
            at=m.at,
            compensation_deadline_at=_due(m.at, journey.compensation_deadline_s),
        )
    )


def _decide_skip_compensation(journey: Journey, state: SagaState, m: SkipCompensation) -> Decision:
    _require_parked(state, "skip_compensation")
    expected = state.pending_compensations[0]
    if m.milestone_id != expected:
        raise InvalidTransitionError(
            f"only the compensation that failed can be skipped: expected {expected!r}, "
            f"got {m.milestone_id!r}",
            expected=expected,
        )
    if not m.reason:
        raise InvalidInputError("skip_compensation needs a reason for the audit trail")
    return Decision(
        CompensationSkipped(
            milestone_id=expected,
            by=m.by,
            reason=m.reason[:MAX_REASON_CHARS],
            at=m.at,
            compensation_deadline_at=_due(m.at, journey.compensation_deadline_s),
        )
    )


def fault(
    journey: Journey | None, state: SagaState | None, reason: str, while_handling: str, at: float
) -> SagaFaulted | None:
    """The event that parks a saga after an unexpected error in the runtime (None: nothing to
    park, the saga never started or is already finished without anything owed)."""
    if state is None:
        return None
    if state.status == IN_PROGRESS:
        owed = _to_compensate(journey, state) if journey is not None else tuple(
            c.milestone_id for c in reversed(state.completed)
        )
    elif state.status == COMPENSATING or state.is_parked:
        owed = state.pending_compensations
    else:
        return None
    return SagaFaulted(
        reason=reason[:MAX_REASON_CHARS], while_handling=while_handling, to_compensate=owed, at=at
    )


def evolve(state: SagaState | None, event: Event) -> SagaState:
    """Apply one event; the version grows by exactly one. One small function per event."""
    if isinstance(event, SagaStarted):
        return _on_saga_started(event)
    assert state is not None, "only saga_started applies to a missing saga"
    apply = _EVOLVE.get(type(event))
    if apply is None:
        raise TypeError(f"unknown event {type(event).__name__}")
    return apply(state, event, {"updated_at": event.at, "version": state.version + 1})


def _on_saga_started(event: SagaStarted) -> SagaState:
    return SagaState(
        saga_id=event.saga_id,
        journey_id=event.journey_id,
        journey_version=event.journey_version,
        journey_type=event.journey_type,
        tenant_id=event.tenant_id,
        user_id=event.user_id,
        context=event.context,
        milestone_ids=event.milestone_ids,
        status=IN_PROGRESS,
        completed=(),
        compensated=(),
        pending_compensations=(),
        compensation_status=COMP_NONE,
        compensation_attempts=0,
        next_compensation_at=None,
        compensation_error=None,
        failure=None,
        started_at=event.at,
        updated_at=event.at,
        compensation_started_at=None,
        version=1,
        milestone_due_at=event.milestone_due_at,
        deadline_at=event.deadline_at,
    )


def _on_milestone_completed(state: SagaState, event: MilestoneCompleted, base: dict[str, Any]) -> SagaState:
    completed = state.completed + (
        CompletedMilestone(event.milestone_id, event.result, event.at),
    )
    done = len(completed) == len(state.milestone_ids)
    return replace(
        state,
        completed=completed,
        status=COMPLETED if done else IN_PROGRESS,
        milestone_due_at=event.next_due_at,
        deadline_at=None if done else state.deadline_at,
        forward_attempts=0,
        forward_retry_at=None,
        **base,
    )


def _on_milestone_attempt_failed(state: SagaState, event: MilestoneAttemptFailed, base: dict[str, Any]) -> SagaState:
    return replace(
        state,
        forward_attempts=event.attempt,
        forward_retry_at=event.retry_at,
        milestone_due_at=event.next_due_at,
        **base,
    )


def _on_milestone_failed(state: SagaState, event: MilestoneFailed, base: dict[str, Any]) -> SagaState:
    failure = Failure(event.cause, event.milestone_id, event.reason, event.at, event.result)
    return _start_compensation(
        state, failure, event.to_compensate, event.compensation_deadline_at, base
    )


def _on_saga_aborted(state: SagaState, event: SagaAborted, base: dict[str, Any]) -> SagaState:
    failure = Failure("aborted", state.current_milestone, event.reason, event.at)
    return _start_compensation(
        state, failure, event.to_compensate, event.compensation_deadline_at, base
    )


def _on_compensation_succeeded(state: SagaState, event: CompensationSucceeded, base: dict[str, Any]) -> SagaState:
    pending = state.pending_compensations[1:]
    return replace(
        state,
        compensated=state.compensated + (event.milestone_id,),
        pending_compensations=pending,
        compensation_attempts=0,
        next_compensation_at=None,
        status=COMPENSATING if pending else FAILED,
        compensation_status=COMP_RUNNING if pending else COMP_SUCCEEDED,
        compensation_deadline_at=state.compensation_deadline_at if pending else None,
        **_error_repaired(state),
        **base,
    )


def _on_compensation_attempt_failed(state: SagaState, event: CompensationAttemptFailed, base: dict[str, Any]) -> SagaState:
    return replace(
        state,
        compensation_attempts=event.attempt,
        next_compensation_at=event.retry_at,
        compensation_error=event.error,
        **base,
    )


def _on_compensation_exhausted(state: SagaState, event: CompensationExhausted, base: dict[str, Any]) -> SagaState:
    return replace(
        state,
        compensation_attempts=event.attempt,
        next_compensation_at=None,
        compensation_error=(
            f"compensation of {event.milestone_id!r} failed after {event.attempt} "
            f"attempt(s): {event.error}"
        ),
        status=FAILED,
        compensation_status=COMP_FAILED,
        compensation_deadline_at=None,
        parked_reason=_exhausted_reason(event),
        **base,
    )


def _on_compensation_parked(state: SagaState, event: CompensationParked, base: dict[str, Any]) -> SagaState:
    return replace(
        state,
        next_compensation_at=None,
        compensation_error=event.reason,
        status=FAILED,
        compensation_status=COMP_FAILED,
        compensation_deadline_at=None,
        parked_reason=event.reason,
        **base,
    )


def _on_compensation_retried(state: SagaState, event: CompensationRetried, base: dict[str, Any]) -> SagaState:
    return replace(
        state,
        status=COMPENSATING,
        compensation_status=COMP_RUNNING,
        compensation_attempts=0,
        next_compensation_at=None,
        compensation_deadline_at=event.compensation_deadline_at,
        parked_reason=None,
        **_error_repaired(state),
        **base,
    )


def _on_compensation_skipped(state: SagaState, event: CompensationSkipped, base: dict[str, Any]) -> SagaState:
    pending = state.pending_compensations[1:]
    return replace(
        state,
        manually_compensated=state.manually_compensated + (event.milestone_id,),
        pending_compensations=pending,
        status=COMPENSATING if pending else FAILED,
        compensation_status=COMP_RUNNING if pending else COMP_SUCCEEDED,
        compensation_attempts=0,
        next_compensation_at=None,
        compensation_deadline_at=event.compensation_deadline_at if pending else None,
        parked_reason=None,
        **_error_repaired(state),
        **base,
    )


def _exhausted_reason(event: CompensationExhausted) -> str:
    who = f"handler {event.handler!r}" if event.handler else f"the compensation of {event.milestone_id!r}"
    if not event.retryable:
        return f"non-retryable error from {who}: {event.error}"[:MAX_REASON_CHARS]
    return f"compensation retry budget spent: {event.attempt} attempt(s) of {who} failed"


def _error_repaired(state: SagaState) -> dict[str, Any]:
    """A repaired step's error moves from current state (``compensation_error``) to history."""
    if state.compensation_error is None:
        return {}
    return {"compensation_error": None, "last_compensation_error": state.compensation_error}


def _park_on_fault(state: SagaState, event: SagaFaulted, base: dict[str, Any]) -> SagaState:
    owed = event.to_compensate
    failure = state.failure
    if state.status == IN_PROGRESS:
        failure = Failure("internal_error", state.current_milestone, event.reason, event.at)
    replaced = owed and state.compensation_error not in (None, event.reason)
    return replace(
        state,
        status=FAILED,
        compensation_status=COMP_FAILED if owed else COMP_SUCCEEDED,
        pending_compensations=owed,
        failure=failure,
        milestone_due_at=None,
        deadline_at=None,
        forward_retry_at=None,
        next_compensation_at=None,
        compensation_deadline_at=None,
        compensation_started_at=(
            event.at if state.compensation_started_at is None else state.compensation_started_at
        ),
        compensation_error=event.reason if owed else state.compensation_error,
        last_compensation_error=(
            state.compensation_error if replaced else state.last_compensation_error
        ),
        parked_reason=event.reason if owed else None,
        **base,
    )


def _start_compensation(
    state: SagaState,
    failure: Failure,
    owed: tuple[str, ...],
    compensation_deadline_at: float | None,
    base: dict[str, Any],
) -> SagaState:
    return replace(
        state,
        milestone_due_at=None,
        deadline_at=None,
        forward_retry_at=None,
        compensation_deadline_at=compensation_deadline_at if owed else None,
        failure=failure,
        pending_compensations=owed,
        compensation_attempts=0,
        next_compensation_at=None,
        status=COMPENSATING if owed else FAILED,
        compensation_status=COMP_RUNNING if owed else COMP_SUCCEEDED,
        compensation_started_at=failure.at,
        **base,
    )


_EVOLVE: dict[type[Any], Callable[[SagaState, Any, dict[str, Any]], SagaState]] = {
    MilestoneCompleted: _on_milestone_completed,
    MilestoneAttemptFailed: _on_milestone_attempt_failed,
    MilestoneFailed: _on_milestone_failed,
    SagaAborted: _on_saga_aborted,
    CompensationSucceeded: _on_compensation_succeeded,
    CompensationAttemptFailed: _on_compensation_attempt_failed,
    CompensationExhausted: _on_compensation_exhausted,
    CompensationParked: _on_compensation_parked,
    CompensationRetried: _on_compensation_retried,
    CompensationSkipped: _on_compensation_skipped,
    SagaFaulted: _park_on_fault,
}


def owed_effects(journey: Journey, state: SagaState) -> tuple[Effect, ...]:
    """What a committed state still needs the shell to do (re-issued as-is after a crash)."""
    if state.status == IN_PROGRESS:
        return tuple(
            ArmTimer(kind, due)
            for kind, due in (
                ("milestone_timeout", state.milestone_due_at),
                ("deadline", state.deadline_at),
            )
            if due is not None
        )
    if state.status != COMPENSATING or not state.pending_compensations:
        return ()
    mid = state.pending_compensations[0]
    milestone = journey.milestone(mid)
    assert milestone.compensation_handler is not None
    effects: list[Effect] = [
        RunCompensation(
            milestone_id=mid,
            handler=milestone.compensation_handler,
            attempt=state.compensation_attempts + 1,
            not_before=state.next_compensation_at,
            retry=milestone.retry,
        )
    ]
    if state.compensation_deadline_at is not None:
        effects.append(ArmTimer("compensation_deadline", state.compensation_deadline_at))
    return tuple(effects)


def has_work_owed(state: SagaState) -> bool:
    """True if the saga must be activated at recovery (a compensation is owed)."""
    return state.status == COMPENSATING


def next_wake(state: SagaState) -> float | None:
    """Earliest timer of an IN_PROGRESS saga: recovery wakes it then, without keeping it live."""
    if state.status != IN_PROGRESS:
        return None
    dues = [d for d in (state.milestone_due_at, state.deadline_at) if d is not None]
    return min(dues) if dues else None
