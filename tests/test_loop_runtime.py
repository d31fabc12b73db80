"""The runtime on one loop: actors on the host's loop, batched commit hand-back, version-aware wait."""

from __future__ import annotations

import asyncio
import threading

import pytest

from saga_journey.runtime import SagaError, SagaOrchestrator

UC = {"tenant_id": "acme", "user_id": "u"}


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate()}


async def test_opened_inside_a_loop_actors_run_on_that_loop_without_threads(tmp_path) -> None:
    seen: list[int] = []

    async def undo(ctx) -> None:
        seen.append(threading.get_ident())

    orch = SagaOrchestrator.open(str(tmp_path / "d"), handlers={h: undo for h in (
        "cancel_order", "refund_payment", "release_inventory", "cancel_shipment")})
    try:
        j = await orch.design_saga_journey("order_processing", user_context=UC)
        ex = await orch.execute_saga_journey(j["journey_id"], "u", {}, UC)
        sid = ex["saga_id"]
        for _ in range(2):
            await orch.advance_saga_step(sid, None, "u", {"status": "complete"}, UC)
        await orch.advance_saga_step(sid, None, "u", {"status": "failed"}, UC)
        final = await orch.wait_for_saga(sid, UC, timeout=10)
        assert final["compensated_milestones"] == ["process_payment", "create_order"]
        assert seen == [threading.get_ident()] * 2  # async handlers ran on this very loop
        names = _threads()
        assert not any(n.startswith(("saga-journey-loop", "saga-journey-dispatch", "CompensatorActor"))
                       for n in names), names
        with pytest.raises(SagaError, match="runtime's own event loop"):
            orch.advance_saga_step_sync(sid, None, "u", {"status": "complete"}, UC)
    finally:
        await asyncio.get_running_loop().run_in_executor(None, orch.close)


def test_sync_host_gets_a_runtime_loop_thread_and_sync_handlers_a_pool(open_orch) -> None:
    ran: list[str] = []

    def undo(ctx) -> None:
        ran.append(threading.current_thread().name)

    orch = open_orch(handlers={h: undo for h in (
        "cancel_order", "refund_payment", "release_inventory", "cancel_shipment")})
    assert "saga-journey-loop" in _threads()
    j = orch.design_saga_journey_sync("order_processing", user_context=UC)
    sid = orch.execute_saga_journey_sync(j["journey_id"], "u", {}, UC)["saga_id"]
    for _ in range(3):
        orch.advance_saga_step_sync(sid, None, "u", {"status": "complete"}, UC)
    orch.advance_saga_step_sync(sid, None, "u", {"status": "failed"}, UC)
    final = orch.wait_for_saga_sync(sid, UC, timeout=10)
    assert final["compensated_milestones"] == ["reserve_inventory", "process_payment", "create_order"]
    assert len(ran) == 3 and all(n.startswith("saga-journey-handler") for n in ran), ran


def test_each_committed_batch_is_handed_back_in_one_loop_call(open_orch, monkeypatch) -> None:
    from saga_journey.runtime import compose

    batches: list[int] = []
    real = compose.run_outcomes

    def counting(outcomes):
        batches.append(len(outcomes))
        real(outcomes)

    monkeypatch.setattr(compose, "run_outcomes", counting)
    orch = open_orch()

    async def many() -> None:
        j = await orch.design_saga_journey("order_processing", user_context=UC)
        await asyncio.gather(*(orch.execute_saga_journey(j["journey_id"], "u", {}, UC) for _ in range(200)))

    asyncio.run(many())
    assert sum(batches) == 200
    assert len(batches) < 200  # several transitions per hand-back
    assert max(batches) > 1


def test_wait_for_saga_answers_when_the_version_passes(orch) -> None:
    j = orch.design_saga_journey_sync("order_processing", user_context=UC)
    sid = orch.execute_saga_journey_sync(j["journey_id"], "u", {}, UC)["saga_id"]  # version 1
    with pytest.raises(SagaError, match="did not finish"):
        orch.wait_for_saga_sync(sid, UC, timeout=0.05, version=1)
    at_timeout = orch.wait_for_saga_sync(sid, UC, timeout=0.05, version=1, return_on_timeout=True)
    assert at_timeout["version"] == 1 and at_timeout["status"] == "IN_PROGRESS"
    assert orch.wait_for_saga_sync(sid, UC, timeout=1, version=0)["version"] == 1  # already passed

    got: list[dict] = []
    t = threading.Thread(target=lambda: got.append(orch.wait_for_saga_sync(sid, UC, timeout=10, version=1)))
    t.start()
    orch.advance_saga_step_sync(sid, None, "u", {"status": "complete"}, UC)
    t.join(10)
    assert got and got[0]["version"] == 2 and got[0]["status"] == "IN_PROGRESS"
    with pytest.raises(Exception, match="version"):
        orch.wait_for_saga_sync(sid, UC, timeout=1, version=-1)


async def test_async_wait_with_version_on_the_runtime_loop(tmp_path) -> None:
    handlers = {h: (lambda ctx: None) for h in ("cancel_order", "refund_payment", "release_inventory", "cancel_shipment")}
    orch = SagaOrchestrator.open(str(tmp_path / "d"), handlers=handlers)
    try:
        j = await orch.design_saga_journey("order_processing", user_context=UC)
        sid = (await orch.execute_saga_journey(j["journey_id"], "u", {}, UC))["saga_id"]
        waiter = asyncio.create_task(orch.wait_for_saga(sid, UC, timeout=10, version=1))
        await asyncio.sleep(0)
        assert not waiter.done()
        await orch.advance_saga_step(sid, None, "u", {"status": "complete"}, UC)
        assert (await waiter)["version"] == 2
    finally:
        await asyncio.get_running_loop().run_in_executor(None, orch.close)
