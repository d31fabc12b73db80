"""Retry policies never wedge a saga (issue 9, defects 2 and 3 and their footguns).

Delay arithmetic saturates for any numbers; validation bounds every policy field and names it;
an unexpected error inside a saga's actor parks the saga with the error recorded. Time is driven
by a ManualClock and tests wait on committed transitions, never on sleeps.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from saga_journey.actors import saga_actor
from saga_journey.metrics import SagaMetrics
from saga_journey.runtime import FAILED, InvalidInputError, ManualClock, NonRetryableError, SagaOrchestrator
from saga_journey.runtime.handlers import HandlerRegistry
from saga_journey.runtime.journeys import RETRY_BOUNDS, build_journey
from saga_journey.runtime.machine import decide, evolve
from saga_journey.runtime.model import (
    CompensationOutcome,
    Journey,
    MilestoneDef,
    ReportStep,
    RetryPolicy,
    StartSaga,
    saturating_growth,
)

from .conftest import EventObserver

UC = {"tenant_id": "acme", "user_id": "ops-alice"}
WAIT = 10.0
HANDLERS = ("cancel_order", "refund_payment", "cancel_shipment")
STEPS = [
    {"id": "reserve", "compensation_handler": "cancel_order"},
    {"id": "charge", "compensation_handler": "refund_payment"},
    {"id": "ship", "compensation_handler": "cancel_shipment"},
]


class Transitions(EventObserver):
    """Counts committed transitions so a test can wait for the next one (no sleeps)."""

    def __init__(self) -> None:
        super().__init__()
        self.cond = threading.Condition()
        self.count = 0

    def on_transition(self, state, event) -> None:
        super().on_transition(state, event)
        with self.cond:
            self.count += 1
            self.cond.notify_all()

    def wait_past(self, count: int, timeout: float = WAIT) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.count > count, timeout)


def design(orch, **requirements: Any) -> dict[str, Any]:
    return orch.design_saga_journey_sync("checkout", {"milestones": STEPS, **requirements}, user_context=UC)


def start(orch, journey) -> str:
    return orch.execute_saga_journey_sync(journey["journey_id"], "u1", {}, UC)["saga_id"]


def report(orch, sid, status="complete", **extra):
    return orch.advance_saga_step_sync(sid, None, "u1", {"status": status, **extra}, UC)


def fail_third(orch, sid) -> None:
    report(orch, sid)
    report(orch, sid)
    report(orch, sid, "failed", error="carrier refused parcel")


def always_failing(name: str, calls: list[str] | None = None):
    def run(ctx) -> None:
        if calls is not None:
            calls.append(ctx.milestone_id)
        raise ConnectionError(f"{name} unreachable")

    return run


def ok(ctx) -> None:
    return None


def failed_saga(orch, **requirements: Any) -> str:
    """A saga of the checkout journey whose third milestone failed: its rollback has begun."""
    sid = start(orch, design(orch, **requirements))
    fail_third(orch, sid)
    return sid


@pytest.fixture
def refund_with(orch):
    """``refund_with(handler)``: ``orch`` with ``handler`` as refund_payment, no-op others."""

    def register(refund) -> SagaOrchestrator:
        orch.register_compensation_handler("refund_payment", refund)
        for h in ("cancel_order", "cancel_shipment"):
            orch.register_compensation_handler(h, ok)
        return orch

    return register


@pytest.fixture
def metered(tmp_path):
    """An orchestrator with no-op handlers and Prometheus metrics attached: (orch, metrics)."""
    metrics = SagaMetrics(CollectorRegistry())
    with SagaOrchestrator.open(str(tmp_path / "d"), handlers={h: ok for h in HANDLERS}, observer=metrics) as orch:
        metrics.attach(orch)
        yield orch, metrics


# --- delay arithmetic (defects 2 and 3 at their root) -----------------------------------


def test_huge_backoff_saturates_instead_of_overflowing() -> None:
    # 1e308 ** 2 and 10.0 ** 310 raise OverflowError; a delay saturates at max_delay_s.
    assert RetryPolicy(backoff=1e308, max_attempts=5).delay_after(3) == 30.0
    assert RetryPolicy(backoff=10.0, max_attempts=400).delay_after(311) == 30.0
    assert RetryPolicy(initial_delay_s=1.0, backoff=2.0, max_delay_s=60).delay_after(3) == 4.0
    assert saturating_growth(5e-324, 1e10, 100, 1e308) == 1e308  # initial*factor**n > float max


@settings(max_examples=400, deadline=None)
@given(
    initial=st.floats(0, 1e308) | st.sampled_from([0.0, 5e-324, 1e308, math.inf]),
    backoff=st.floats(1, 1e308) | st.sampled_from([1.0, 1e308, math.inf]),
    cap=st.floats(0, 1e308) | st.sampled_from([0.0, 86_400.0, math.inf]),
    jitter=st.floats(0, 1),
    attempts=st.integers(0, 10**6) | st.sampled_from([10**30]),
)
def test_delay_is_bounded_and_monotonic_for_any_numbers(initial, backoff, cap, jitter, attempts) -> None:
    plain = RetryPolicy(initial_delay_s=initial, backoff=backoff, max_delay_s=cap)
    d = plain.delay_after(attempts)
    assert 0.0 <= d <= cap
    assert plain.delay_after(attempts + 1) >= d  # growth never wraps around
    jittered = RetryPolicy(initial_delay_s=initial, backoff=backoff, max_delay_s=cap, jitter=jitter)
    assert 0.0 <= jittered.delay_after(attempts, "s/m") <= cap


def _journey(retry: RetryPolicy, forward: RetryPolicy) -> Journey:
    """A journey as a folder written before policies were bounded may hold it (no validation)."""
    milestones = tuple(
        MilestoneDef(s["id"], s["id"], s["compensation_handler"], retry=retry, forward_retry=forward)
        for s in STEPS
    )
    return Journey("j", 1, "checkout", "acme", milestones, {}, 0.0)


def test_core_survives_stored_policies_with_huge_backoff() -> None:
    huge = RetryPolicy(max_attempts=10, initial_delay_s=1.0, backoff=1e308, max_delay_s=30.0)
    journey = _journey(huge, huge)
    state = evolve(None, decide(journey, None, StartSaga("s", journey, "u", {}, 0.0)).event)
    for n in range(1, 4):  # defect 3: the third retryable report raised OverflowError
        event = decide(journey, state, ReportStep({"status": "failed", "retryable": True}, float(n))).event
        state = evolve(state, event)
        assert state.forward_retry_at == float(n) + (1.0 if n == 1 else 30.0)
    state = evolve(state, decide(journey, state, ReportStep({"status": "complete"}, 9.0)).event)
    state = evolve(state, decide(journey, state, ReportStep({"status": "failed"}, 10.0)).event)
    for n in range(1, 4):  # defect 2: the same overflow on the third failed compensation
        outcome = CompensationOutcome("reserve", n, False, 10.0 + n, error="down")
        state = evolve(state, decide(journey, state, outcome).event)
        assert state.next_compensation_at == 10.0 + n + (1.0 if n == 1 else 30.0)


# --- validation -------------------------------------------------------------------------


def _build(requirements: dict[str, Any]) -> Journey:
    return build_journey(
        journey_id="j", version=1, journey_type="checkout", tenant_id="acme",
        requirements={"milestones": STEPS, **requirements}, compensation_handlers=None,
        created_at=0.0,
    )


@pytest.mark.parametrize(
    ("requirements", "field", "value"),
    [
        ({"retry": {"backoff": 1e308}}, "requirements.retry.backoff", 1e308),
        ({"retry": {"backoff": 0.5}}, "requirements.retry.backoff", 0.5),
        ({"retry": {"max_attempts": 1001}}, "requirements.retry.max_attempts", 1001),
        ({"retry": {"max_attempts": 2.5}}, "requirements.retry.max_attempts", 2.5),
        ({"retry": {"max_delay_s": 1e300}}, "requirements.retry.max_delay_s", 1e300),
        ({"retry": {"initial_delay_s": -1}}, "requirements.retry.initial_delay_s", -1),
        ({"retry": {"jitter": 1.5}}, "requirements.retry.jitter", 1.5),
        ({"retry": {"handler_timeout_s": 1e12}}, "requirements.retry.handler_timeout_s", 1e12),
        ({"forward_retry": {"backoff": 1e308}}, "requirements.forward_retry.backoff", 1e308),
        ({"deadline_s": 1e308}, "requirements.deadline_s", 1e308),
        ({"compensation_deadline_s": 0}, "requirements.compensation_deadline_s", 0),
        ({"milestones": [{"id": "a", "timeout_s": 1e20}]}, "requirements.milestones[0].timeout_s", 1e20),
        (
            {"milestones": [{"id": "a", "forward_retry": {"max_attempts": 10**400}}]},
            "requirements.milestones[0].forward_retry.max_attempts",
            repr(10**400)[:100],
        ),
    ],
)
def test_out_of_range_policy_field_is_refused_naming_field_value_and_range(
    requirements, field, value
) -> None:
    with pytest.raises(InvalidInputError) as err:
        _build(requirements)
    details = err.value.details
    assert details["field"] == field and details["value"] == value
    assert details["minimum"] < details["maximum"]
    assert field in err.value.message and f"{details['maximum']:g}" in err.value.message


def _in_bounds(key: str) -> st.SearchStrategy[float]:
    low, high, exclusive = RETRY_BOUNDS[key]
    if key == "max_attempts":
        return st.integers(int(low), int(high))
    inner = st.floats(low, high, exclude_min=exclusive)
    return inner | st.sampled_from([high] if exclusive else [low, high])


ACCEPTED_RETRY = st.fixed_dictionaries({}, optional={k: _in_bounds(k) for k in RETRY_BOUNDS}).filter(
    lambda r: not ("initial_delay_s" in r and "max_delay_s" in r and r["initial_delay_s"] > r["max_delay_s"])
)
ANY_NUMBER = st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.booleans() | st.none() | st.text(max_size=3)


@settings(max_examples=300, deadline=None)
@given(raw=st.dictionaries(st.sampled_from(sorted(RETRY_BOUNDS)), ANY_NUMBER, max_size=6))
def test_validation_accepts_exactly_the_bounded_policies(raw) -> None:
    try:
        policy = _build({"retry": raw}).milestones[0].retry
    except InvalidInputError as exc:
        assert exc.details["field"].startswith("requirements.retry.")
        return
    if "initial_delay_s" in raw and "max_delay_s" in raw:
        assert policy.initial_delay_s <= policy.max_delay_s
    for key in RETRY_BOUNDS:
        value = getattr(policy, key)
        if value is None:
            continue
        low, high, exclusive = RETRY_BOUNDS[key]
        assert (low < value if exclusive else low <= value) and value <= high


# --- the real runtime: nothing stays stuck ------------------------------------------------


@pytest.fixture
def runtime(tmp_path):
    clock = ManualClock()
    seen = Transitions()
    opened: list[SagaOrchestrator] = []

    def open_(handlers: dict[str, Any]) -> SagaOrchestrator:
        """One orchestrator per test (hypothesis examples share it); ``handlers`` replace earlier ones."""
        if not opened:
            opened.append(SagaOrchestrator.open(str(tmp_path / "data"), clock=clock, observer=seen))
        for name, handler in handlers.items():
            opened[0].register_compensation_handler(name, handler)
        return opened[0]

    yield clock, seen, open_
    for orch in opened:
        orch.close()


def drive(orch, clock: ManualClock, seen: Transitions, sid: str, step_s: float) -> dict[str, Any]:
    """Advance time past every scheduled retry until the saga is terminal; fail if it ever
    sits without a transition after time moved past anything it could have scheduled."""
    while True:
        before = seen.count
        status = orch.get_saga_status_sync(sid, UC)
        if status["status"] == FAILED:
            return status
        clock.advance(step_s)
        if not seen.wait_past(before):
            status = orch.get_saga_status_sync(sid, UC)
            if status["status"] == FAILED:
                return status
            pytest.fail(f"saga stuck: {status}")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    retry=ACCEPTED_RETRY,
    forward=ACCEPTED_RETRY,
    failures=st.integers(0, 6) | st.just(10**9),  # 10**9: the handler never recovers
    big=st.booleans(),
)
def test_policy_fuzz_every_accepted_policy_ends_parked_or_compensated(
    runtime, retry, forward, failures, big
) -> None:
    clock, seen, open_ = runtime
    if big:  # the attempt bound itself, with the steepest backoff accepted
        retry = {**retry, "max_attempts": 1000, "backoff": 100.0}
    retry.pop("handler_timeout_s", None)  # a handler timeout on a ManualClock is its own test
    calls: list[int] = []

    def flaky(ctx) -> None:
        calls.append(ctx.attempt)
        if len(calls) <= failures:
            raise ConnectionError("still down")

    orch = open_({h: flaky for h in HANDLERS})
    policy = _build({"retry": retry, "forward_retry": forward}).milestones[0]
    journey = design(orch, retry=retry, forward_retry=forward)
    sid = start(orch, journey)
    report(orch, sid)
    for _ in range(min(policy.forward_retry.max_attempts - 1, 3)):  # retryable reports first
        assert report(orch, sid, "failed", retryable=True)["status"] == "IN_PROGRESS"
    report(orch, sid, "failed", error="gave up")
    step = max(policy.retry.max_delay_s, policy.retry.initial_delay_s) + 1.0
    final = drive(orch, clock, seen, sid, step)
    assert final["status"] == FAILED
    if final["compensation_status"] == "failed":
        assert final["parked"] and final["parked_reason"]
        assert final["compensation_attempts"] == policy.retry.max_attempts <= failures
    else:
        assert final["compensation_status"] == "succeeded" and final["compensated_milestones"] == ["reserve"]
        assert final["compensation_error"] is None


def test_steep_backoff_near_the_attempt_bound_parks_after_every_attempt(runtime) -> None:
    # 100.0 ** 155 overflowed: the saga stayed COMPENSATING with nothing scheduled.
    clock, seen, open_ = runtime
    calls: list[str] = []
    orch = open_({h: always_failing(h, calls) for h in HANDLERS})
    retry = {"max_attempts": 200, "initial_delay_s": 0.0, "backoff": 100.0, "max_delay_s": 0.0}
    sid = failed_saga(orch, retry=retry)
    final = drive(orch, clock, seen, sid, 1.0)
    assert final["parked"] and final["compensation_attempts"] == 200 and len(calls) == 200
    assert "retry budget spent: 200 attempt(s) of handler 'refund_payment'" in final["parked_reason"]


def test_forward_retry_near_the_attempt_bound_keeps_answering(runtime) -> None:
    # Defect 3: the same overflow in forward_retry answered 500 on a retryable report.
    clock, seen, open_ = runtime
    orch = open_({h: ok for h in HANDLERS})
    forward = {"max_attempts": 1000, "initial_delay_s": 0.001, "backoff": 100.0, "max_delay_s": 5.0}
    sid = start(orch, design(orch, forward_retry=forward))
    for n in range(1, 170):
        r = report(orch, sid, "failed", retryable=True)
        assert r["milestone_attempts"] == n
    assert r["milestone_retry_at"] == pytest.approx(clock.now() + 5.0)
    assert report(orch, sid)["current_milestone"] == "charge"


# --- an unexpected error inside the actor parks the saga ---------------------------------


def _raise_on(monkeypatch, message_type: type, exc: Exception) -> dict[str, int]:
    seen = {"n": 0}
    real = saga_actor.decide

    def decide_or_raise(journey, state, message):
        if isinstance(message, message_type):
            seen["n"] += 1
            raise exc
        return real(journey, state, message)

    monkeypatch.setattr(saga_actor, "decide", decide_or_raise)
    return seen


def test_internal_error_in_compensation_parks_and_operator_repairs(metered, monkeypatch) -> None:
    orch, metrics = metered
    _raise_on(monkeypatch, CompensationOutcome, OverflowError("(34, 'Numerical result out of range')"))
    sid = failed_saga(orch)
    parked = orch.wait_for_saga_sync(sid, UC, timeout=WAIT)
    assert parked["status"] == FAILED and parked["parked"] is True
    assert parked["parked_reason"].startswith(
        "internal error while handling CompensationReport: OverflowError: (34"
    )
    assert parked["compensation_error"] == parked["parked_reason"]
    assert parked["failed_compensation"] == "charge"
    assert parked["pending_compensations"] == ["charge", "reserve"]
    history = orch.get_saga_execution_history_sync(sid, UC)
    assert history[-1]["type"] == "saga_faulted"
    assert history[-1]["reason"] == parked["parked_reason"]
    assert history[-1]["while_handling"] == "CompensationReport"
    reg = metrics.registry
    assert reg.get_sample_value("saga_internal_errors_total", {"journey_type": "checkout"}) == 1
    assert reg.get_sample_value("saga_compensation_failed_sagas", {"journey_type": "checkout"}) == 1

    monkeypatch.undo()  # the bug is fixed and deployed
    orch.retry_compensation_sync(sid, "fix deployed, INC-7", UC)
    final = orch.wait_for_saga_sync(sid, UC, timeout=WAIT)
    assert final["compensation_status"] == "succeeded"
    assert final["compensated_milestones"] == ["charge", "reserve"]
    assert final["compensation_error"] is None
    assert final["last_compensation_error"] == parked["parked_reason"]
    assert reg.get_sample_value("saga_compensation_failed_sagas", {"journey_type": "checkout"}) == 0


def test_internal_error_on_an_in_progress_saga_parks_its_rollback(orch, monkeypatch) -> None:
    orch.register_compensation_handler("cancel_order", ok)
    sid = start(orch, design(orch))
    report(orch, sid)
    _raise_on(monkeypatch, ReportStep, KeyError("boom"))
    with pytest.raises(KeyError):  # the caller still gets an error reply
        report(orch, sid)
    parked = orch.wait_for_saga_sync(sid, UC, timeout=WAIT)  # the park commits after the reply
    assert parked["status"] == FAILED and parked["parked"] is True
    assert parked["failure"]["kind"] == "internal_error"
    assert parked["failure"]["milestone_id"] == "charge"
    assert "internal error while handling Command: KeyError: 'boom'" == parked["parked_reason"]
    assert parked["pending_compensations"] == ["reserve"] and parked["deadline_at"] is None
    monkeypatch.undo()
    orch.retry_compensation_sync(sid, "roll it back", UC)
    final = orch.wait_for_saga_sync(sid, UC, timeout=WAIT)
    assert final["compensation_status"] == "succeeded" and final["compensated_milestones"] == ["reserve"]


def test_internal_error_before_anything_is_owed_ends_failed(orch, monkeypatch) -> None:
    sid = start(orch, design(orch))
    _raise_on(monkeypatch, ReportStep, RuntimeError("boom"))
    with pytest.raises(RuntimeError):
        report(orch, sid)
    final = orch.wait_for_saga_sync(sid, UC, timeout=WAIT)
    assert final["status"] == FAILED and final["compensation_status"] == "succeeded"
    assert final["parked"] is False and final["failure"]["kind"] == "internal_error"
    assert "RuntimeError: boom" in final["failure"]["reason"]


def test_internal_error_in_handler_lookup_parks_and_skip_repairs(orch, monkeypatch) -> None:
    real = HandlerRegistry.get

    def lookup(self, name):
        if name == "refund_payment":
            raise LookupError("registry corrupted")
        return real(self, name)

    monkeypatch.setattr(HandlerRegistry, "get", lookup)
    sid = failed_saga(orch)
    parked = orch.wait_for_saga_sync(sid, UC, timeout=WAIT)
    assert parked["parked"] and "LookupError: registry corrupted" in parked["parked_reason"]
    orch.skip_compensation_sync(sid, "charge", "refunded by hand", UC)
    final = orch.wait_for_saga_sync(sid, UC, timeout=WAIT)
    assert final["compensation_status"] == "succeeded"
    assert final["manually_compensated"] == ["charge"] and final["compensated_milestones"] == ["reserve"]


def test_a_park_that_fails_itself_is_logged_once_and_never_spins(runtime, monkeypatch, caplog) -> None:
    clock, seen, open_ = runtime
    orch = open_({h: ok for h in HANDLERS})
    tries = _raise_on(monkeypatch, CompensationOutcome, RuntimeError("boom"))
    parks = {"n": 0}
    tried = threading.Event()

    def broken_fault(*args):
        parks["n"] += 1
        tried.set()
        raise RuntimeError("cannot even park")

    monkeypatch.setattr(saga_actor, "fault", broken_fault)
    sid = failed_saga(orch)
    assert tried.wait(WAIT)
    for _ in range(3):  # time passes; the actor answers; nothing retries the park by itself
        clock.advance(60)
        assert orch.compensate_saga_sync(sid, "abort", UC)["replayed"] is True
    assert (tries["n"], parks["n"]) == (1, 1)
    assert orch.get_saga_status_sync(sid, UC)["status"] == "COMPENSATING"  # as stored
    assert "could not park after an internal error" in caplog.text


# --- footguns ------------------------------------------------------------------------------


def test_repaired_rollback_keeps_the_old_error_as_history_only(refund_with) -> None:
    calls: list[str] = []
    down = {"on": True}

    def refund(ctx) -> None:
        calls.append(ctx.milestone_id)
        if down["on"]:
            raise ConnectionError("payment gateway unreachable")

    orch = refund_with(refund)
    sid = failed_saga(orch, retry={"max_attempts": 2, "initial_delay_s": 0.0, "backoff": 1.0, "max_delay_s": 0.0})
    parked = orch.wait_for_saga_sync(sid, UC, timeout=WAIT)
    assert "payment gateway unreachable" in parked["compensation_error"]
    down["on"] = False
    orch.retry_compensation_sync(sid, "gateway back", UC)
    final = orch.wait_for_saga_sync(sid, UC, timeout=WAIT)
    assert final["compensation_status"] == "succeeded"
    assert final["compensation_error"] is None
    assert final["last_compensation_error"] == parked["compensation_error"]
    history = orch.get_saga_execution_history_sync(sid, UC)
    assert any("payment gateway unreachable" in str(h.get("error")) for h in history)


def test_recovered_rollback_clears_the_current_error(refund_with) -> None:
    attempts: list[int] = []

    def refund(ctx) -> None:  # fails once, then the retry succeeds by itself
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise ConnectionError("blip")

    orch = refund_with(refund)
    sid = failed_saga(orch, retry={"max_attempts": 3, "initial_delay_s": 0.0, "backoff": 1.0, "max_delay_s": 0.0})
    final = orch.wait_for_saga_sync(sid, UC, timeout=WAIT)
    assert attempts == [1, 2] and final["compensation_status"] == "succeeded"
    assert final["compensation_error"] is None and "blip" in final["last_compensation_error"]


def test_non_retryable_refusal_says_why_it_parked(refund_with) -> None:
    def refuse(ctx) -> None:
        raise NonRetryableError("refund refused: payment already settled")

    orch = refund_with(refuse)
    sid = failed_saga(orch)
    parked = orch.wait_for_saga_sync(sid, UC, timeout=WAIT)
    assert parked["parked"] and parked["compensation_attempts"] == 1
    reason = parked["parked_reason"]
    assert reason.startswith("non-retryable error from handler 'refund_payment': ")
    assert "refund refused: payment already settled" in reason and "budget" not in reason


def test_compensation_failed_gauge_exports_zero_for_known_journey_types(metered) -> None:
    orch, metrics = metered
    sid = failed_saga(orch)
    assert orch.wait_for_saga_sync(sid, UC, timeout=WAIT)["compensation_status"] == "succeeded"
    value = metrics.registry.get_sample_value
    assert value("saga_compensation_failed_sagas", {"journey_type": "checkout"}) == 0.0
    assert value("saga_internal_errors_total", {"journey_type": "checkout"}) == 0.0


def test_snapshots_written_before_last_compensation_error_still_decode() -> None:
    from saga_journey.runtime.codec import state_from_dict, state_to_dict, status_view

    journey = _journey(RetryPolicy(), RetryPolicy())
    state = evolve(None, decide(journey, None, StartSaga("s", journey, "u", {}, 0.0)).event)
    old = state_to_dict(state)
    del old["last_compensation_error"]  # the previous release's snapshot had no such key
    view = status_view(state_from_dict(old))
    assert view["last_compensation_error"] is None and view["compensation_error"] is None


def test_growth_saturates_for_a_factor_just_above_one_and_a_huge_count():
    """Found by hypothesis: the log-space guard used a clamped count but the pow the real one."""
    from saga_journey.runtime.model import saturating_growth

    assert saturating_growth(1.0, 1.0000000000000002, 10**30 - 1, 8.0) == 8.0
    assert saturating_growth(1.0, 1.0000000000000002, 10**400, 8.0) == 8.0
    assert saturating_growth(1.0, 1.0000000000000002, 2**20, 8.0) < 8.0


def test_initial_delay_above_max_delay_is_refused_naming_both() -> None:
    with pytest.raises(InvalidInputError) as err:
        _build({"retry": {"initial_delay_s": 10, "max_delay_s": 1}})
    assert err.value.details["field"] == "requirements.retry.initial_delay_s"
    assert "requirements.retry.max_delay_s (1)" in err.value.message
    policy = _build({"retry": {"initial_delay_s": 1, "max_delay_s": 1}}).milestones[0].retry
    assert policy.initial_delay_s == policy.max_delay_s == 1
    # One of them alone keeps the other's default, as before (saturation handles the rest).
    assert _build({"retry": {"max_delay_s": 0.01}}).milestones[0].retry.max_delay_s == 0.01
