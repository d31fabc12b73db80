"""Admission control: beyond the in-flight and per-saga queue bounds, requests are refused
with OverloadedError (nothing half-applied); everything accepted is answered and durable."""

from __future__ import annotations

import asyncio

from saga_journey.runtime import OverloadedError, RuntimeConfig, SagaError, SagaOrchestrator

UC = {"tenant_id": "default", "user_id": "u"}
MILESTONES = [f"m{i}" for i in range(200)]


def _journey(orch: SagaOrchestrator) -> str:
    return orch.design_saga_journey_sync(
        "ov", {"milestones": [{"id": m, "compensation_handler": "undo"} for m in MILESTONES]},
        None, UC, journey_id="ov")["journey_id"]


def test_burst_beyond_the_in_flight_bound_is_refused_and_accepted_work_is_kept(tmp_path) -> None:
    path = str(tmp_path / "d")
    config = RuntimeConfig(max_in_flight_requests=8)
    orch = SagaOrchestrator.open(path, handlers={"undo": lambda ctx: None}, config=config)
    try:
        jid = _journey(orch)

        async def burst() -> list[object]:
            return await asyncio.gather(
                *(orch.execute_saga_journey(jid, "u", {}, UC, saga_id=f"s{i:03d}") for i in range(300)),
                return_exceptions=True)

        results = asyncio.run(burst())
        accepted = [r["saga_id"] for r in results if isinstance(r, dict)]
        refused = [r for r in results if isinstance(r, OverloadedError)]
        assert refused and accepted
        assert len(accepted) + len(refused) == 300  # nothing else went wrong
        assert orch.in_flight() == 0
        # Load gone: requests are admitted again.
        orch.execute_saga_journey_sync(jid, "u", {}, UC, saga_id="after")
    finally:
        orch.close()
    orch = SagaOrchestrator.open(path, handlers={"undo": lambda ctx: None})
    try:
        stored = {s["saga_id"] for s in orch.list_sagas_sync(user_context=UC, limit=1000)["sagas"]}
        assert stored == set(accepted) | {"after"}
    finally:
        orch.close()


def test_queue_per_saga_is_bounded(tmp_path) -> None:
    config = RuntimeConfig(max_queued_per_saga=3)
    orch = SagaOrchestrator.open(str(tmp_path / "d"), handlers={"undo": lambda ctx: None}, config=config)
    try:
        jid = _journey(orch)
        orch.execute_saga_journey_sync(jid, "u", {}, UC, saga_id="s")

        async def burst() -> list[object]:
            return await asyncio.gather(
                *(orch.advance_saga_step("s", jid, "u", {"status": "complete"}, UC) for _ in range(100)),
                return_exceptions=True)

        results = asyncio.run(burst())
        ok = [r for r in results if isinstance(r, dict)]
        refused = [r for r in results if isinstance(r, OverloadedError)]
        assert refused and ok
        assert not [r for r in results if isinstance(r, SagaError) and not isinstance(r, OverloadedError)]
        status = orch.get_saga_status_sync("s", UC)
        assert len(status["completed_milestones"]) == len(ok)  # every accepted advance applied once
        assert status["version"] == 1 + len(ok)
    finally:
        orch.close()
