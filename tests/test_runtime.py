"""The embedded runtime end to end: real actors, real LMDB in a temp folder."""

from __future__ import annotations

import asyncio
import threading

import pytest

from saga_journey.runtime import (
    COMPENSATING,
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    ConflictError,
    HandlerMissingError,
    InvalidInputError,
    InvalidTransitionError,
    NotFoundError,
    RuntimeConfig,
)

UC = {"tenant_id": "acme", "user_id": "user_123"}
ORDER = ["create_order", "process_payment", "reserve_inventory", "ship_product"]


def start_order(orch, context=None, uc=UC, **kwargs):
    j = orch.design_saga_journey_sync("order_processing", {"metadata": {"shop": "s1"}}, user_context=uc, **kwargs)
    ex = orch.execute_saga_journey_sync(j["journey_id"], "user_123", context or {"order": 7}, uc)
    return j, ex["saga_id"]


def advance(orch, saga_id, status="complete", uc=UC, **extra):
    return orch.advance_saga_step_sync(saga_id, None, "user_123", {"status": status, **extra}, uc)


def fail_third_milestone(orch, retry):
    """Complete two milestones of an order, fail the third, wait for the rollback to end."""
    j = orch.design_saga_journey_sync("order_processing", {"retry": retry}, user_context=UC)
    sid = orch.execute_saga_journey_sync(j["journey_id"], "user_123", {}, UC)["saga_id"]
    advance(orch, sid)
    advance(orch, sid)
    advance(orch, sid, "failed")
    return sid, orch.wait_for_saga_sync(sid, UC, timeout=10)


def test_seed_success_scenario(orch, recorder) -> None:
    j, sid = start_order(orch)
    assert [m["id"] for m in j["milestones"]] == ORDER
    assert j["compensation_handlers"]["process_payment"] == "refund_payment"
    for i, milestone in enumerate(ORDER):
        status = orch.get_saga_status_sync(sid, UC)
        assert status["current_milestone"] == milestone
        r = advance(orch, sid, items=i)
        assert r["version"] == i + 2
    status = orch.get_saga_status_sync(sid, UC)
    assert status["status"] == COMPLETED
    assert status["completed_milestones"] == ORDER
    assert status["compensated_milestones"] == [] and status["compensation_status"] == "none"
    assert recorder.calls == []
    history = orch.get_saga_execution_history_sync(sid, UC)
    assert [h["type"] for h in history] == ["saga_started"] + ["milestone_completed"] * 4
    assert [h["seq"] for h in history] == [1, 2, 3, 4, 5]
    assert history[-1]["status_after"] == COMPLETED


def test_failure_at_milestone_3_compensates_2_then_1(orch, recorder) -> None:
    _, sid = start_order(orch)
    advance(orch, sid)
    advance(orch, sid)
    r = advance(orch, sid, "failed", error="out of stock")
    assert r["status"] in (COMPENSATING, FAILED)
    final = orch.wait_for_saga_sync(sid, UC, timeout=10)
    assert recorder.milestones() == ["process_payment", "create_order"]
    assert [c[0] for c in recorder.calls] == ["refund_payment", "cancel_order"]
    assert final["status"] == FAILED
    assert final["compensation_status"] == "succeeded"
    assert final["compensated_milestones"] == ["process_payment", "create_order"]
    assert final["failure"]["milestone_id"] == "reserve_inventory"
    assert final["failure"]["reason"] == "out of stock"
    history = orch.get_saga_execution_history_sync(sid, UC)
    assert [h["type"] for h in history][-3:] == [
        "milestone_failed", "compensation_succeeded", "compensation_succeeded",
    ]


def test_handler_gets_idempotency_key_result_and_context(orch, recorder) -> None:
    seen = []
    recorder.behaviour["refund_payment"] = seen.append
    _, sid = start_order(orch, {"order": 42})
    advance(orch, sid)
    advance(orch, sid, amount=99)
    advance(orch, sid, "failed")
    orch.wait_for_saga_sync(sid, UC, timeout=10)
    (ctx,) = seen
    assert ctx.idempotency_key == f"acme/{sid}/process_payment/compensate"  # unique per tenant
    assert ctx.step_result == {"status": "complete", "amount": 99}
    assert ctx.context == {"order": 42} and ctx.tenant_id == "acme" and ctx.attempt == 1


def test_compensation_that_fails_twice_then_succeeds(orch, recorder, fast_retry) -> None:
    attempts = []

    def flaky(ctx) -> None:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise RuntimeError(f"refund service down ({ctx.attempt})")

    recorder.behaviour["refund_payment"] = flaky
    sid, final = fail_third_milestone(orch, fast_retry)
    assert attempts == [1, 2, 3]
    assert final["compensation_status"] == "succeeded"
    assert recorder.milestones() == ["process_payment"] * 3 + ["create_order"]
    types = [h["type"] for h in orch.get_saga_execution_history_sync(sid, UC)]
    assert types[-4:] == [
        "compensation_attempt_failed", "compensation_attempt_failed",
        "compensation_succeeded", "compensation_succeeded",
    ]
    failed = [h for h in orch.get_saga_execution_history_sync(sid, UC) if h["type"] == "compensation_attempt_failed"]
    assert failed[0]["error"] == "RuntimeError: refund service down (1)"


def test_compensation_that_always_fails_ends_failed_with_error(orch, recorder, fast_retry) -> None:
    def broken(ctx) -> None:
        raise ValueError("ledger locked")

    recorder.behaviour["refund_payment"] = broken
    sid, final = fail_third_milestone(orch, fast_retry)
    assert final["status"] == FAILED
    assert final["compensation_status"] == "failed"
    assert "ledger locked" in final["compensation_error"]
    assert "process_payment" in final["compensation_error"]
    assert final["pending_compensations"] == ["process_payment", "create_order"]
    assert final["compensated_milestones"] == []
    assert final["compensation_attempts"] == 3
    assert "cancel_order" not in [c[0] for c in recorder.calls]


def test_non_retryable_error_stops_at_once(orch, recorder, fast_retry) -> None:
    from saga_journey.runtime import NonRetryableError

    def refuse(ctx) -> None:
        raise NonRetryableError("card network says never")

    recorder.behaviour["refund_payment"] = refuse
    sid, final = fail_third_milestone(orch, fast_retry)
    assert final["compensation_attempts"] == 1 and final["compensation_status"] == "failed"


def test_wrong_milestone_and_terminal_saga_are_refused_without_change(orch) -> None:
    _, sid = start_order(orch)
    advance(orch, sid)
    before = orch.get_saga_status_sync(sid, UC)
    with pytest.raises(InvalidTransitionError) as err:
        advance(orch, sid, milestone_id="ship_product")
    assert "expects 'process_payment'" in str(err.value)
    with pytest.raises(InvalidInputError):
        advance(orch, sid, milestone_id="no_such_step")
    with pytest.raises(InvalidInputError):
        orch.advance_saga_step_sync(sid, None, "u", {"status": "done"}, UC)
    with pytest.raises(InvalidInputError):
        orch.advance_saga_step_sync(sid, None, "u", {"status": "complete", "x": object()}, UC)
    assert orch.get_saga_status_sync(sid, UC) == before
    for _ in range(3):
        advance(orch, sid)
    done = orch.get_saga_status_sync(sid, UC)
    assert done["status"] == COMPLETED
    with pytest.raises(InvalidTransitionError) as err:
        advance(orch, sid)
    assert "COMPLETED" in str(err.value)
    with pytest.raises(InvalidTransitionError):
        orch.compensate_saga_sync(sid, "too late", UC)
    assert orch.get_saga_status_sync(sid, UC) == done


def test_exact_repeat_is_replayed_not_applied(orch) -> None:
    _, sid = start_order(orch)
    first = advance(orch, sid, milestone_id="create_order", order_no=1)
    again = advance(orch, sid, milestone_id="create_order", order_no=1)
    assert again["replayed"] is True
    assert again["version"] == first["version"]
    assert again["current_milestone"] == "process_payment"
    with pytest.raises(ConflictError):
        advance(orch, sid, milestone_id="create_order", order_no=2)
    assert orch.get_saga_status_sync(sid, UC)["version"] == first["version"]


def test_compensate_saga_rolls_back_an_in_progress_saga(orch, recorder) -> None:
    _, sid = start_order(orch)
    advance(orch, sid)
    advance(orch, sid)
    r = orch.compensate_saga_sync(sid, "customer cancelled", UC)
    assert r["event"] == "saga_aborted"
    final = orch.wait_for_saga_sync(sid, UC, timeout=10)
    assert final["status"] == FAILED and final["compensation_status"] == "succeeded"
    assert recorder.milestones() == ["process_payment", "create_order"]
    assert final["failure"] == {
        "kind": "aborted", "milestone_id": "reserve_inventory", "reason": "customer cancelled",
        "at": final["failure"]["at"], "result": None,
    }


def test_failure_of_first_milestone_has_nothing_to_compensate(orch, recorder) -> None:
    _, sid = start_order(orch)
    r = advance(orch, sid, "failed")
    assert r["status"] == FAILED and r["compensation_status"] == "succeeded"
    assert recorder.calls == []


def test_close_and_reopen_mid_compensation_resumes(tmp_path, open_orch, recorder) -> None:
    entered = threading.Event()
    release = threading.Event()

    def stuck(ctx) -> None:
        entered.set()
        release.wait(10)

    recorder.behaviour["refund_payment"] = stuck
    first = open_orch(tmp_path / "d")
    _, sid = start_order(first)
    advance(first, sid)
    advance(first, sid)
    advance(first, sid, "failed")
    assert entered.wait(10)
    first.close()  # the refund is still running: nothing recorded it as done
    release.set()
    recorder.behaviour.clear()
    second = open_orch(tmp_path / "d")
    assert second.recovered == 1
    final = second.wait_for_saga_sync(sid, UC, timeout=10)
    assert final["status"] == FAILED and final["compensation_status"] == "succeeded"
    assert final["compensated_milestones"] == ["process_payment", "create_order"]
    # at least once: the interrupted refund ran again, then cancel_order, in reverse order
    assert recorder.milestones()[-2:] == ["process_payment", "create_order"]
    assert recorder.milestones().count("create_order") == 1


def test_reopen_keeps_everything(tmp_path, open_orch) -> None:
    first = open_orch(tmp_path / "d")
    j, sid = start_order(first)
    advance(first, sid)
    before = first.get_saga_status_sync(sid, UC)
    first.close()
    second = open_orch(tmp_path / "d")
    assert second.recovered == 0
    assert second.get_saga_status_sync(sid, UC) == before
    assert advance(second, sid)["current_milestone"] == "reserve_inventory"
    assert second.get_journey_sync(j["journey_id"], UC)["version"] == 1


def test_passivated_saga_reactivates_with_identical_state(open_orch, observer) -> None:
    orch = open_orch(config=RuntimeConfig(idle_passivate_s=0.05), observer=observer)
    _, sid = start_order(orch)
    advance(orch, sid)
    before = orch.get_saga_status_sync(sid, UC)
    assert observer.passivated.wait(10)
    assert orch.stats()["live_actors"] == 0
    assert orch.get_saga_status_sync(sid, UC) == before
    r = advance(orch, sid)
    assert r["version"] == before["version"] + 1
    assert r["completed_milestones"] == ["create_order", "process_payment"]
    assert orch.stats()["activations"] >= 2


def test_terminal_sagas_do_not_stay_live(orch) -> None:
    _, sid = start_order(orch)
    for _ in ORDER:
        advance(orch, sid)
    orch.wait_for_saga_sync(sid, UC, timeout=5)
    assert orch.stats()["live_actors"] <= 1  # the last one stops right after its commit


def test_tenants_are_isolated(orch) -> None:
    j, sid = start_order(orch)
    other = {"tenant_id": "globex", "user_id": "eve"}
    with pytest.raises(NotFoundError):
        orch.get_saga_status_sync(sid, other)
    with pytest.raises(NotFoundError):
        advance(orch, sid, uc=other)
    with pytest.raises(NotFoundError):
        orch.execute_saga_journey_sync(j["journey_id"], "eve", {}, other)
    with pytest.raises(NotFoundError):
        orch.get_saga_execution_history_sync(sid, other)
    assert orch.list_sagas_sync(user_context=other)["sagas"] == []
    assert orch.list_journeys_sync(other) == []
    assert orch.get_saga_status_sync(sid, UC)["version"] == 1


def test_handlers_must_resolve(open_orch) -> None:
    orch = open_orch(handlers={})
    with pytest.raises(HandlerMissingError) as err:
        orch.design_saga_journey_sync("financial_transaction", user_context=UC)
    assert err.value.details["missing"] == ["credit_account", "release_funds", "reverse_transfer"]
    j = orch.design_saga_journey_sync(
        "financial_transaction", user_context=UC, allow_unregistered_handlers=True
    )
    with pytest.raises(HandlerMissingError) as err:
        orch.execute_saga_journey_sync(j["journey_id"], "u", {}, UC)
    assert "credit_account" in str(err.value)
    assert orch.list_sagas_sync(user_context=UC)["sagas"] == []
    for name in ("credit_account", "release_funds", "reverse_transfer"):
        orch.register_compensation_handler(name, lambda ctx: None)
    assert orch.execute_saga_journey_sync(j["journey_id"], "u", {}, UC)["status"] == IN_PROGRESS


def test_custom_milestones_and_versions_pin_sagas(orch, recorder) -> None:
    j1 = orch.design_saga_journey_sync(
        "data_sync",
        {"milestones": ["extract", {"id": "load", "compensation_handler": "cancel_order"}]},
        user_context=UC,
        journey_id="sync-job",
    )
    sid = orch.execute_saga_journey_sync("sync-job", "u", {}, UC)["saga_id"]
    j2 = orch.design_saga_journey_sync(
        "data_sync", {"milestones": ["a", "b", "c"]}, user_context=UC, journey_id="sync-job"
    )
    assert (j1["version"], j2["version"]) == (1, 2)
    status = orch.get_saga_status_sync(sid, UC)
    assert status["journey_version"] == 1 and status["milestones"] == ["extract", "load"]
    advance(orch, sid)
    assert advance(orch, sid)["status"] == COMPLETED
    newer = orch.execute_saga_journey_sync("sync-job", "u", {}, UC)
    assert newer["milestones"] == ["a", "b", "c"] and newer["journey_version"] == 2


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"journey_type": "mystery"}, "not a built-in template"),
        ({"journey_type": "x", "requirements": {"milestones": []}}, "non-empty list"),
        ({"journey_type": "x", "requirements": {"milestones": ["a", "a"]}}, "unique"),
        ({"journey_type": "x", "requirements": {"milestones": ["a b"]}}, "letters, digits"),
        ({"journey_type": "order_processing", "compensation_handlers": {"nope": "h"}}, "not in the journey"),
        ({"journey_type": "x", "requirements": {"milestones": [{"id": "a", "timeout_s": -1}]}}, "timeout_s"),
        ({"journey_type": "x", "requirements": {"milestones": [{"id": "a", "colour": 1}]}}, "unknown keys"),
        ({"journey_type": "order_processing", "requirements": {"retry": {"max_attempts": 0}}}, "max_attempts"),
    ],
)
def test_bad_designs_are_refused_and_store_nothing(orch, kwargs, fragment) -> None:
    with pytest.raises(InvalidInputError) as err:
        orch.design_saga_journey_sync(user_context=UC, **kwargs)
    assert fragment in str(err.value)
    assert orch.list_journeys_sync(UC) == []


def test_bad_execute_inputs(orch) -> None:
    j, _ = start_order(orch)
    with pytest.raises(NotFoundError):
        orch.execute_saga_journey_sync("jrn_missing", "u", {}, UC)
    with pytest.raises(InvalidInputError):
        orch.execute_saga_journey_sync(j["journey_id"], "u", {"f": {1, 2}}, UC)
    with pytest.raises(InvalidInputError):
        orch.execute_saga_journey_sync(j["journey_id"], "", {}, UC)
    with pytest.raises(NotFoundError):
        orch.get_saga_status_sync("saga_nope", UC)
    with pytest.raises(InvalidInputError):
        orch.get_saga_status_sync("../etc/passwd", UC)
    sid = orch.execute_saga_journey_sync(j["journey_id"], "u", {}, UC, saga_id="fixed-1")["saga_id"]
    assert sid == "fixed-1"
    with pytest.raises(ConflictError):
        orch.execute_saga_journey_sync(j["journey_id"], "u", {}, UC, saga_id="fixed-1")
    assert len(orch.list_sagas_sync(user_context=UC)["sagas"]) == 2


def test_list_sagas_filters_and_pages(orch) -> None:
    j, _ = start_order(orch)
    ids = [orch.execute_saga_journey_sync(j["journey_id"], "u", {}, UC)["saga_id"] for _ in range(5)]
    for sid in ids[:2]:
        advance(orch, sid, "failed")
    assert len(orch.list_sagas_sync(FAILED, user_context=UC)["sagas"]) == 2
    assert len(orch.list_sagas_sync(IN_PROGRESS, "order_processing", UC)["sagas"]) == 4
    assert orch.list_sagas_sync(IN_PROGRESS, "other_type", UC)["sagas"] == []
    seen, cursor = [], None
    while True:
        page = orch.list_sagas_sync(user_context=UC, limit=2, cursor=cursor)
        seen += [s["saga_id"] for s in page["sagas"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 6
    with pytest.raises(InvalidInputError):
        orch.list_sagas_sync("DONE", user_context=UC)


def test_async_api_and_async_handlers(open_orch) -> None:
    ran = []

    async def refund(ctx) -> None:
        await asyncio.sleep(0)
        ran.append(ctx.milestone_id)

    handlers = {h: (lambda ctx: ran.append(ctx.milestone_id)) for h in ("cancel_order", "release_inventory", "cancel_shipment")}
    handlers["refund_payment"] = refund
    orch = open_orch(handlers=handlers)

    async def scenario() -> dict:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:  # the loop must keep running while we wait on the runtime
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0)

        t = asyncio.create_task(ticker())
        j = await orch.design_saga_journey("order_processing", user_context=UC)
        ex = await orch.execute_saga_journey(j["journey_id"], "u", {}, UC)
        for status in ("complete", "complete", "complete", "failed"):
            await orch.advance_saga_step(ex["saga_id"], j["journey_id"], "u", {"status": status}, UC)
        final = await orch.wait_for_saga(ex["saga_id"], UC, timeout=10)
        history = await orch.get_saga_execution_history(ex["saga_id"], UC)
        listed = await orch.list_sagas(FAILED, user_context=UC)
        stop.set()
        await t
        assert ticks > 10 and len(history) == 8 and len(listed["sagas"]) == 1
        return final

    final = asyncio.run(scenario())
    assert final["compensated_milestones"] == ["reserve_inventory", "process_payment", "create_order"]
    assert ran == ["reserve_inventory", "process_payment", "create_order"]


def test_many_concurrent_sagas_share_group_commits(orch) -> None:
    j, _ = start_order(orch)
    errors = []

    def run(k: int) -> None:
        try:
            sid = orch.execute_saga_journey_sync(j["journey_id"], "u", {"k": k}, UC)["saga_id"]
            for _ in range(3):
                advance(orch, sid)
            advance(orch, sid, "failed" if k % 4 == 0 else "complete")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    page = orch.list_sagas_sync(user_context=UC, limit=1000)["sagas"]
    statuses = [s["status"] for s in page if s["context"].get("k") is not None]
    assert statuses.count(COMPLETED) == 48
    failed = [s["saga_id"] for s in page if s["context"].get("k", 1) % 4 == 0]
    for sid in failed:
        assert orch.wait_for_saga_sync(sid, UC, timeout=10)["compensation_status"] == "succeeded"
    assert orch.store.stats()["max_batch_size_seen"] > 1
    counts = orch.store.count_by_status()
    assert counts[("order_processing", COMPLETED)] == 48
    assert counts[("order_processing", FAILED)] == 16


def test_more_live_sagas_than_the_soft_limit_passivate_instead_of_deadlocking(open_orch, observer) -> None:
    orch = open_orch(config=RuntimeConfig(max_live_actors=4, idle_passivate_s=0.05), observer=observer)
    j = orch.design_saga_journey_sync("order_processing", user_context=UC)
    done = threading.Event()
    ids: list[str] = []

    def start_many() -> None:  # past the soft limit, each activation asks idle sagas to passivate
        for _ in range(40):
            ids.append(orch.execute_saga_journey_sync(j["journey_id"], "u", {}, UC)["saga_id"])
        done.set()

    threading.Thread(target=start_many, daemon=True).start()
    assert done.wait(30), "starting sagas past max_live_actors hung"
    assert observer.passivated.wait(10)
    assert all(orch.get_saga_status_sync(s, UC)["status"] == IN_PROGRESS for s in ids)
    assert advance(orch, ids[0])["current_milestone"] == "process_payment"
