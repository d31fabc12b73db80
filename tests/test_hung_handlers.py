"""A compensation handler that never returns is abandoned after its timeout and retried per
policy; abandoned threads are bounded (a Python thread cannot be killed)."""

from __future__ import annotations

import asyncio
import threading

from saga_journey.runtime import RuntimeConfig, SagaOrchestrator

UC = {"tenant_id": "default", "user_id": "ops"}


def _design(orch: SagaOrchestrator, retry: dict) -> str:
    return orch.design_saga_journey_sync(
        "hang", {"milestones": [{"id": m, "compensation_handler": "undo"} for m in ("a", "b", "c")],
                 "retry": retry}, None, UC, journey_id="hang")["journey_id"]


def _fail_after_two(orch: SagaOrchestrator, jid: str, sid: str) -> None:
    orch.execute_saga_journey_sync(jid, "u", {}, UC, saga_id=sid)
    for m in ("a", "b"):
        orch.advance_saga_step_sync(sid, jid, "u", {"status": "complete", "milestone_id": m}, UC)
    orch.advance_saga_step_sync(sid, jid, "u", {"status": "failed", "error": "boom"}, UC)


def test_hung_sync_handler_is_abandoned_and_retried(tmp_path) -> None:
    release = threading.Event()
    calls: list[tuple[str, int]] = []

    def undo(ctx) -> None:
        calls.append((ctx.milestone_id, ctx.attempt))
        if ctx.milestone_id == "b" and ctx.attempt == 1:
            release.wait()  # hangs until the test ends

    orch = SagaOrchestrator.open(str(tmp_path / "d"), handlers={"undo": undo})
    try:
        jid = _design(orch, {"max_attempts": 3, "initial_delay_s": 0, "handler_timeout_s": 0.2})
        _fail_after_two(orch, jid, "s")
        final = orch.wait_for_saga_sync("s", UC, timeout=20)
        assert final["status"] == "FAILED" and final["compensation_status"] == "succeeded"
        assert calls == [("b", 1), ("b", 2), ("a", 1)]
        history = orch.get_saga_execution_history_sync("s", UC)
        failed = [h for h in history if h["type"] == "compensation_attempt_failed"]
        assert len(failed) == 1 and "HandlerTimeout" in failed[0]["error"]
        assert orch.stats()["abandoned_handler_threads"] == 1
        release.set()  # the abandoned call returns late: its outcome is stale and ignored
        orch.compensate_saga_sync  # noqa: B018 - the runtime stays usable
    finally:
        release.set()
        orch.close()


def test_hung_async_handler_is_cancelled_and_retried(tmp_path) -> None:
    attempts: list[int] = []

    async def undo(ctx) -> None:
        attempts.append(ctx.attempt)
        if ctx.milestone_id == "b" and ctx.attempt == 1:
            await asyncio.Event().wait()  # never returns

    orch = SagaOrchestrator.open(str(tmp_path / "d"), handlers={"undo": undo})
    try:
        jid = _design(orch, {"max_attempts": 3, "initial_delay_s": 0, "handler_timeout_s": 0.2})
        _fail_after_two(orch, jid, "s")
        assert orch.wait_for_saga_sync("s", UC, timeout=20)["compensation_status"] == "succeeded"
        assert orch.stats()["abandoned_handler_threads"] == 0  # async calls hold no thread
    finally:
        orch.close()


def test_abandoned_threads_are_bounded(tmp_path) -> None:
    release = threading.Event()

    def undo(ctx) -> None:
        release.wait()  # every call hangs

    config = RuntimeConfig(max_abandoned_handler_threads=2, max_handler_threads=3)
    orch = SagaOrchestrator.open(str(tmp_path / "d"), handlers={"undo": undo}, config=config)
    try:
        baseline = threading.active_count()
        jid = _design(orch, {"max_attempts": 4, "initial_delay_s": 0.05, "backoff": 1, "handler_timeout_s": 0.1})
        sagas = [f"s{i}" for i in range(6)]
        for sid in sagas:
            _fail_after_two(orch, jid, sid)
        finals = [orch.wait_for_saga_sync(sid, UC, timeout=30) for sid in sagas]
        # Every rollback ends parked (the handler never returns): none hangs, none is silent.
        assert all(f["status"] == "FAILED" and f["parked"] for f in finals)
        stats = orch.stats()
        assert 2 <= stats["abandoned_handler_threads"] <= 3 and stats["handler_threads"] <= 3
        errors = " ".join(f["compensation_error"] for f in finals)
        assert "abandoned (limit 2)" in errors
        timed_out = [h for sid in sagas for h in orch.get_saga_execution_history_sync(sid, UC)
                     if "HandlerTimeout" in (h.get("error") or "")]
        assert 2 <= len(timed_out) <= 3
        # Threads: at most 3 hung handler threads, whatever the number of sagas.
        assert threading.active_count() <= baseline + 3
    finally:
        release.set()
        orch.close()
