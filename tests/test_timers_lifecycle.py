"""Timers (milestone timeouts, saga and compensation deadlines) and the parked-saga lifecycle.

Time is driven by an injected ManualClock: no test sleeps to let time pass.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from saga_journey.runtime import (
    FAILED,
    IN_PROGRESS,
    InvalidInputError,
    InvalidTransitionError,
    ManualClock,
    RuntimeConfig,
)
from saga_journey.runtime.model import RetryPolicy

UC = {"tenant_id": "acme", "user_id": "ops-alice"}
STEPS = [
    {"id": "reserve", "compensation_handler": "cancel_order"},
    {"id": "charge", "compensation_handler": "refund_payment", "timeout_s": 10},
    {"id": "ship", "compensation_handler": "cancel_shipment"},
]


def design(orch, **requirements):
    req = {"milestones": STEPS, **requirements}
    return orch.design_saga_journey_sync("checkout", req, user_context=UC)


def start(orch, journey):
    return orch.execute_saga_journey_sync(journey["journey_id"], "u1", {}, UC)["saga_id"]


def report(orch, sid, status="complete", **extra):
    return orch.advance_saga_step_sync(sid, None, "u1", {"status": status, **extra}, UC)


def test_milestone_timeout_compensates_and_late_report_is_refused(open_orch, recorder) -> None:
    clock = ManualClock()
    orch = open_orch(clock=clock)
    sid = start(orch, design(orch))
    report(orch, sid)  # reserve done; charge must report within 10 s
    status = orch.get_saga_status_sync(sid, UC)
    assert status["milestone_due_at"] == pytest.approx(clock.now() + 10)
    clock.advance(9.5)
    assert orch.get_saga_status_sync(sid, UC)["status"] == IN_PROGRESS
    clock.advance(1)
    final = orch.wait_for_saga_sync(sid, UC, timeout=10)
    assert final["status"] == FAILED and final["compensation_status"] == "succeeded"
    assert final["failure"]["kind"] == "timeout" and final["failure"]["milestone_id"] == "charge"
    assert "within 10s" in final["failure"]["reason"]
    assert recorder.milestones() == ["reserve"]
    with pytest.raises(InvalidTransitionError) as err:
        report(orch, sid)
    assert "late report refused" in str(err.value)
    assert orch.get_saga_status_sync(sid, UC)["version"] == final["version"]


def test_saga_deadline_compensates(open_orch, recorder) -> None:
    clock = ManualClock()
    orch = open_orch(clock=clock)
    sid = start(orch, design(orch, deadline_s=30))
    report(orch, sid)
    clock.advance(5)
    report(orch, sid)  # charge in time
    clock.advance(26)
    final = orch.wait_for_saga_sync(sid, UC, timeout=10)
    assert final["failure"]["kind"] == "deadline" and final["failure"]["milestone_id"] == "ship"
    assert recorder.milestones() == ["charge", "reserve"]


def test_completed_saga_has_no_timers_left(open_orch) -> None:
    clock = ManualClock()
    orch = open_orch(clock=clock)
    sid = start(orch, design(orch, deadline_s=30))
    for _ in range(3):
        report(orch, sid)
    clock.advance(100)
    status = orch.get_saga_status_sync(sid, UC)
    assert status["status"] == "COMPLETED"
    assert status["deadline_at"] is None and status["milestone_due_at"] is None


def test_restart_with_overdue_timer_fires_it_once(tmp_path, open_orch, recorder) -> None:
    clock = ManualClock()
    first = open_orch(tmp_path / "d", clock=clock)
    sid = start(first, design(first))
    report(first, sid)
    first.close()
    clock.advance(3600)  # the process was down when the timeout passed
    second = open_orch(tmp_path / "d", clock=clock)
    assert second.recovered == 0  # only woken by its timer, not activated up front
    final = second.wait_for_saga_sync(sid, UC, timeout=10)
    assert final["failure"]["kind"] == "timeout"
    history = second.get_saga_execution_history_sync(sid, UC)
    assert [h["type"] for h in history].count("milestone_failed") == 1
    assert recorder.milestones() == ["reserve"]


def test_ten_thousand_pending_timers_hold_a_bounded_number_of_threads(tmp_path, open_orch) -> None:
    orch = open_orch(tmp_path / "d", config=RuntimeConfig(idle_passivate_s=0.2))
    journey = orch.design_saga_journey_sync(
        "slow", {"milestones": [{"id": "wait", "timeout_s": 3600}]}, user_context=UC
    )
    baseline = threading.active_count()

    async def start_all() -> list[str]:
        sem = asyncio.Semaphore(500)

        async def one() -> str:
            async with sem:
                ex = await orch.execute_saga_journey(journey["journey_id"], "u", {}, UC)
                return ex["saga_id"]

        return await asyncio.gather(*(one() for _ in range(10_000)))

    ids = asyncio.run(start_all())
    assert len(set(ids)) == 10_000
    assert orch.stats()["pending_timers"] >= 10_000
    assert threading.active_count() <= baseline + 8
    orch.close()
    reopened = open_orch(tmp_path / "d")
    assert reopened.stats()["live_actors"] == 0
    assert reopened.stats()["pending_timers"] >= 10_000
    assert threading.active_count() <= baseline + 8


def _park(orch, recorder, **requirements):
    calls = {"n": 0}

    def refund(ctx) -> None:
        calls["n"] += 1
        raise ConnectionError("payment gateway unreachable")

    recorder.behaviour["refund_payment"] = refund
    fast = {"max_attempts": 2, "initial_delay_s": 0.0, "backoff": 1.0, "max_delay_s": 0.0}
    sid = start(orch, design(orch, retry=fast, **requirements))
    report(orch, sid)
    report(orch, sid)
    report(orch, sid, "failed", error="carrier refused parcel")
    return sid, calls


def test_exhausted_budget_parks_with_details(orch, recorder) -> None:
    sid, calls = _park(orch, recorder)
    final = orch.wait_for_saga_sync(sid, UC, timeout=10)
    assert calls["n"] == 2
    assert final["status"] == FAILED and final["compensation_status"] == "failed"
    assert final["parked"] is True and final["failed_compensation"] == "charge"
    assert final["compensation_attempts"] == 2
    assert "ConnectionError: payment gateway unreachable" in final["compensation_error"]
    assert final["pending_compensations"] == ["charge", "reserve"]
    assert "reserve" not in recorder.milestones()  # never skips ahead


def test_retry_compensation_completes_the_rollback(orch, recorder) -> None:
    sid, _ = _park(orch, recorder)
    orch.wait_for_saga_sync(sid, UC, timeout=10)
    recorder.behaviour.clear()  # the payment gateway is back
    r = orch.retry_compensation_sync(sid, "gateway restored, INC-42", UC)
    assert r["status"] == "COMPENSATING" and r["parked"] is False
    final = orch.wait_for_saga_sync(sid, UC, timeout=10)
    assert final["compensation_status"] == "succeeded"
    assert final["compensated_milestones"] == ["charge", "reserve"]
    assert recorder.milestones()[-2:] == ["charge", "reserve"]


def test_skip_compensation_continues_in_reverse_order(orch, recorder) -> None:
    sid, _ = _park(orch, recorder)
    orch.wait_for_saga_sync(sid, UC, timeout=10)
    with pytest.raises(InvalidTransitionError):
        orch.skip_compensation_sync(sid, "reserve", "wrong one", UC)
    with pytest.raises(InvalidInputError):
        orch.skip_compensation_sync(sid, "charge", "  ", UC)
    orch.skip_compensation_sync(sid, "charge", "refunded by hand in the PSP console", UC)
    final = orch.wait_for_saga_sync(sid, UC, timeout=10)
    assert final["compensation_status"] == "succeeded"
    assert final["manually_compensated"] == ["charge"]
    assert final["compensated_milestones"] == ["reserve"]
    history = orch.get_saga_execution_history_sync(sid, UC)
    trail = [(h["type"], h.get("milestone_id"), h.get("by"), h.get("reason")) for h in history]
    assert trail[-4:] == [
        ("compensation_attempt_failed", "charge", None, None),
        ("compensation_exhausted", "charge", None, None),
        ("compensation_skipped", "charge", "ops-alice", "refunded by hand in the PSP console"),
        ("compensation_succeeded", "reserve", None, None),
    ]


def test_operator_actions_refused_on_sagas_that_are_not_parked(orch, recorder) -> None:
    sid = start(orch, design(orch))
    with pytest.raises(InvalidTransitionError) as err:
        orch.retry_compensation_sync(sid, "why not", UC)
    assert "parked" in str(err.value)
    with pytest.raises(InvalidTransitionError):
        orch.skip_compensation_sync(sid, "reserve", "nope", UC)
    report(orch, sid, "failed")
    done = orch.wait_for_saga_sync(sid, UC, timeout=10)  # nothing to compensate: FAILED, succeeded
    with pytest.raises(InvalidTransitionError):
        orch.retry_compensation_sync(sid, "again", UC)
    assert orch.get_saga_status_sync(sid, UC)["version"] == done["version"]


def test_compensation_deadline_parks_the_saga(open_orch, recorder) -> None:
    clock = ManualClock()
    orch = open_orch(clock=clock)

    def refund(ctx) -> None:
        raise ConnectionError("still down")

    recorder.behaviour["refund_payment"] = refund
    slow = {"max_attempts": 100, "initial_delay_s": 30.0, "backoff": 1.0, "max_delay_s": 30.0}
    sid = start(orch, design(orch, retry=slow, compensation_deadline_s=60))
    report(orch, sid)
    report(orch, sid)
    report(orch, sid, "failed")
    for _ in range(3):
        clock.advance(25)
    final = orch.wait_for_saga_sync(sid, UC, timeout=10)
    assert final["parked"] is True
    assert "compensation deadline" in final["parked_reason"]
    assert final["pending_compensations"] == ["charge", "reserve"]


def test_forward_retry_budget_keeps_the_saga_going(orch, recorder) -> None:
    sid = start(orch, design(orch, forward_retry={"max_attempts": 3, "initial_delay_s": 1.0}))
    r = report(orch, sid, "failed", error="card declined, try again", retryable=True)
    assert r["status"] == IN_PROGRESS and r["milestone_attempts"] == 1
    assert r["current_milestone"] == "reserve" and r["milestone_retry_at"] is not None
    report(orch, sid, "failed", retryable=True)
    final = report(orch, sid, "failed", retryable=True)  # third failure spends the budget
    assert final["status"] == FAILED and recorder.calls == []
    sid2 = start(orch, design(orch, forward_retry={"max_attempts": 3}))
    report(orch, sid2, "failed", retryable=True)
    assert report(orch, sid2)["current_milestone"] == "charge"  # a retry that succeeds moves on


def test_jitter_is_deterministic_and_bounded() -> None:
    policy = RetryPolicy(max_attempts=5, initial_delay_s=1.0, backoff=2.0, max_delay_s=60, jitter=0.5)
    delays = [policy.delay_after(3, f"saga-{i}/m") for i in range(200)]
    assert all(2.0 <= d <= 4.0 for d in delays)
    assert len({round(d, 6) for d in delays}) > 150  # spread out
    assert policy.delay_after(3, "saga-7/m") == delays[7]


def test_missing_handler_after_restart_parks_then_operator_resumes(tmp_path, open_orch, recorder) -> None:
    first = open_orch(tmp_path / "d")
    fast = {"max_attempts": 2, "initial_delay_s": 0.0, "backoff": 1.0, "max_delay_s": 0.0}
    sid = start(first, design(first, retry=fast))
    report(first, sid)
    first.close()
    second = open_orch(tmp_path / "d", handlers={})  # a deploy that forgot to register them
    report(second, sid, "failed", error="payment declined")
    parked = second.wait_for_saga_sync(sid, UC, timeout=10)
    assert parked["parked"] is True
    assert "'cancel_order' is not registered" in parked["compensation_error"]
    second.register_compensation_handler("cancel_order", recorder.handler("cancel_order"))
    second.retry_compensation_sync(sid, "handler deployed", UC)
    final = second.wait_for_saga_sync(sid, UC, timeout=10)
    assert final["compensation_status"] == "succeeded" and recorder.milestones() == ["reserve"]
