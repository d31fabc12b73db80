"""Property tests of the pure saga core: invariants hold for any sequence of messages."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from saga_journey.runtime.errors import SagaError
from saga_journey.runtime.machine import decide, evolve, fault, owed_effects
from saga_journey.runtime.model import (
    COMP_FAILED,
    COMP_SUCCEEDED,
    COMPENSATING,
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    AbortSaga,
    ArmTimer,
    CompensationOutcome,
    Decision,
    Journey,
    MilestoneDef,
    ReportStep,
    RetryCompensation,
    RetryPolicy,
    SkipCompensation,
    StartSaga,
    TimerFired,
)


def make_journey(
    handlers: list[bool], max_attempts: int, timeout: float | None = None,
    deadline: float | None = None, comp_deadline: float | None = None,
) -> Journey:
    policy = RetryPolicy(max_attempts=max_attempts, initial_delay_s=0.0)
    forward = RetryPolicy(max_attempts=2, initial_delay_s=0.0)
    return Journey(
        journey_id="j",
        version=1,
        journey_type="t",
        tenant_id="tn",
        milestones=tuple(
            MilestoneDef(f"m{i}", f"m{i}", f"undo{i}" if h else None, timeout, policy, forward)
            for i, h in enumerate(handlers)
        ),
        requirements={},
        created_at=0.0,
        deadline_s=deadline,
        compensation_deadline_s=comp_deadline,
    )


@dataclass(frozen=True)
class Op:
    kind: str
    flag: bool = False
    pick: int = 0


ops = st.builds(
    Op,
    kind=st.sampled_from(
        ["complete", "complete", "complete", "fail", "abort", "comp", "comp", "comp", "stale",
         "wrong", "junk", "timer", "retry", "skip", "retryable", "fault"]
    ),
    flag=st.booleans(),
    pick=st.integers(0, 7),
)


def to_message(op: Op, journey: Journey, state, at: float):
    ids = journey.milestone_ids()
    if op.kind == "complete":
        result = {"status": "complete", "n": op.pick}
        if op.flag:
            result["milestone_id"] = ids[op.pick % len(ids)]
        return ReportStep(result, at)
    if op.kind == "fail":
        return ReportStep({"status": "failed", "error": "boom"}, at)
    if op.kind == "abort":
        return AbortSaga("stop", "tester", at)
    if op.kind == "wrong":
        return ReportStep({"status": "complete", "milestone_id": ids[op.pick % len(ids)]}, at)
    if op.kind == "junk":
        return ReportStep({"status": ["nope", None, 3][op.pick % 3]}, at)
    if op.kind == "retryable":
        return ReportStep({"status": "failed", "retryable": True}, at)
    if op.kind == "retry":
        return RetryCompensation("ops", "fixed", at)
    if op.kind == "skip":
        target = state.pending_compensations[0] if state.pending_compensations and op.flag else ids[op.pick % len(ids)]
        return SkipCompensation(target, "ops", "done by hand", at)
    effects = owed_effects(journey, state)
    if op.kind == "timer":
        timers = [e for e in effects if isinstance(e, ArmTimer)]
        if timers and op.flag:
            t = timers[op.pick % len(timers)]
            return TimerFired(t.kind, t.due, max(at, t.due))
        return TimerFired(["milestone_timeout", "deadline", "compensation_deadline"][op.pick % 3], at, at)
    effects = [e for e in effects if not isinstance(e, ArmTimer)]
    if op.kind == "comp" and effects:
        e = effects[0]
        return CompensationOutcome(e.milestone_id, e.attempt, op.flag or op.pick > 2, at,
                                   error=None if op.flag else "nope", retryable=op.pick != 0)
    return CompensationOutcome(ids[op.pick % len(ids)], op.pick, op.flag, at)


@settings(max_examples=400, deadline=None)
@given(
    handlers=st.lists(st.booleans(), min_size=1, max_size=6),
    max_attempts=st.integers(1, 3),
    timers=st.tuples(*[st.one_of(st.none(), st.floats(1, 50))] * 3),
    script=st.lists(ops, max_size=40),
)
def test_invariants_hold_for_any_message_sequence(handlers, max_attempts, timers, script) -> None:
    journey = make_journey(handlers, max_attempts, *timers)
    state = evolve(None, decide(journey, None, StartSaga("s", journey, "u", {}, 0.0)).event)
    assert state.version == 1 and state.status == IN_PROGRESS
    owed_at_failure: tuple[str, ...] | None = None
    for step, op in enumerate(script, start=1):
        before = state
        if op.kind == "fault":  # an unexpected runtime error: the shell parks the saga
            event = fault(journey, state, "internal error while handling X: E: e", "X", float(step))
            if event is None:
                assert state.is_terminal and not state.is_parked
                continue
            decision = Decision(event)
        else:
            msg = to_message(op, journey, state, float(step))
            try:
                decision = decide(journey, state, msg)
            except SagaError:
                continue  # refused: nothing may change, and nothing did (values are immutable)
        if decision.event is None:
            assert decision.replayed
            continue
        state = evolve(state, decision.event)
        # version grows by exactly one per applied transition
        assert state.version == before.version + 1
        # terminal states absorb everything but an operator's repair of a parked saga
        assert not before.is_terminal or before.is_parked
        completed = state.completed_ids()
        # completion order follows the journey
        assert completed == journey.milestone_ids()[: len(completed)]
        # nothing that never completed is compensated; only milestones with handlers are
        assert set(state.compensated) <= set(completed)
        assert all(journey.milestone(m).compensation_handler for m in state.compensated)
        if before.status == IN_PROGRESS and state.status in (COMPENSATING, FAILED):
            owed_at_failure = state.pending_compensations
            expected = tuple(
                m for m in reversed(completed) if journey.milestone(m).compensation_handler
            )
            assert owed_at_failure == expected
        if owed_at_failure is not None:
            # reverse order: compensated + still pending is always the owed list, in order
            done = state.compensated + state.manually_compensated
            assert sorted(done) == sorted(set(done))  # nothing compensated twice
            # reverse order: what is done and what is pending is always the owed list, in order
            assert tuple(m for m in owed_at_failure if m in done) + state.pending_compensations == owed_at_failure
            assert set(done) | set(state.pending_compensations) == set(owed_at_failure)
            assert state.compensated == tuple(m for m in owed_at_failure if m in state.compensated)
        if state.status == COMPLETED:
            assert len(completed) == len(journey.milestones) and not state.compensated
        if state.status == FAILED and state.compensation_status == COMP_SUCCEEDED:
            assert not state.pending_compensations
        if state.status == FAILED and state.compensation_status == COMP_FAILED:
            assert state.pending_compensations and state.compensation_error
        runs = [e for e in owed_effects(journey, state) if not isinstance(e, ArmTimer)]
        assert bool(runs) == (state.status == COMPENSATING)
        if state.is_terminal:
            assert state.milestone_due_at is None and state.deadline_at is None
            assert state.compensation_deadline_at is None


@given(n=st.integers(1, 6), fail_at=st.integers(0, 5))
def test_failure_at_k_compensates_k_minus_1_down_to_1(n, fail_at) -> None:
    journey = make_journey([True] * n, 1)
    fail_at = fail_at % n
    state = evolve(None, decide(journey, None, StartSaga("s", journey, "u", {}, 0.0)).event)
    for _ in range(fail_at):
        state = evolve(state, decide(journey, state, ReportStep({"status": "complete"}, 1.0)).event)
    state = evolve(state, decide(journey, state, ReportStep({"status": "failed"}, 2.0)).event)
    ran = []
    while owed_effects(journey, state):
        e = owed_effects(journey, state)[0]
        ran.append(e.milestone_id)
        state = evolve(state, decide(journey, state, CompensationOutcome(e.milestone_id, e.attempt, True, 3.0)).event)
    assert ran == [f"m{i}" for i in reversed(range(fail_at))]
    assert state.status == FAILED and state.compensation_status == COMP_SUCCEEDED
