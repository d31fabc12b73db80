"""Retention: the background pruner (ManualClock) and `saga-journey prune` remove exactly the
expired finished sagas, with every index, count, metric and `verify` agreeing afterwards."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from saga_journey.metrics import SagaMetrics
from saga_journey.persistence.keys import scoped_key
from saga_journey.persistence.verify import verify
from saga_journey.runtime import ManualClock, NotFoundError, SagaOrchestrator
from saga_journey.runtime.config import RuntimeConfig
from saga_journey.runtime.errors import InvalidInputError
from saga_journey.runtime.journeys import TEMPLATES

UC = {"tenant_id": "acme", "user_id": "u1"}
HOUR = 3600.0
WAIT = 20


def noop(ctx) -> None:
    return None


def broken(ctx) -> None:
    raise ConnectionError("refund service down")


HANDLERS = {h: noop for _, h in TEMPLATES["order_processing"]}


def open_orch(path, clock, **config: Any) -> tuple[SagaOrchestrator, SagaMetrics]:
    metrics = SagaMetrics(CollectorRegistry())
    orch = SagaOrchestrator.open(
        str(path), clock=clock, observer=metrics, handlers=HANDLERS,
        config=RuntimeConfig(prune_interval_s=60.0, **config),
    )
    metrics.attach(orch)
    return orch, metrics


def design(orch, journey_id: str, **requirements: Any) -> str:
    return orch.design_saga_journey_sync(
        "order_processing", requirements or None, user_context=UC, journey_id=journey_id
    )["journey_id"]


def complete(orch, journey_id: str, saga_id: str, key: str | None = None) -> None:
    orch.execute_saga_journey_sync(journey_id, "u1", {}, UC, saga_id=saga_id, idempotency_key=key)
    for m, _ in TEMPLATES["order_processing"]:
        orch.advance_saga_step_sync(saga_id, None, "u1", {"status": "complete", "milestone_id": m}, UC)
    assert orch.get_saga_status_sync(saga_id, UC)["status"] == "COMPLETED"


def fail(orch, journey_id: str, saga_id: str) -> dict[str, Any]:
    orch.execute_saga_journey_sync(journey_id, "u1", {}, UC, saga_id=saga_id)
    orch.advance_saga_step_sync(saga_id, None, "u1", {"status": "complete", "milestone_id": "create_order"}, UC)
    orch.advance_saga_step_sync(saga_id, None, "u1", {"status": "complete", "milestone_id": "process_payment"}, UC)
    orch.advance_saga_step_sync(saga_id, None, "u1", {"status": "failed", "milestone_id": "reserve_inventory"}, UC)
    return orch.wait_for_saga_sync(saga_id, UC, timeout=WAIT)


def ids(orch) -> set[str]:
    out, cursor = set(), None
    while True:
        page = orch.list_sagas_sync(user_context=UC, limit=1000, cursor=cursor)
        out |= {s["saga_id"] for s in page["sagas"]}
        cursor = page["next_cursor"]
        if cursor is None:
            return out


def prune_rounds(orch, clock: ManualClock, seconds: float) -> None:
    """Move time on and wait until the pruner has looked and found nothing more to remove."""
    orch.pruner.idle.clear()
    clock.advance(seconds)
    assert orch.pruner.idle.wait(WAIT), "the pruner did not finish its rounds"


def pruned_metric(metrics: SagaMetrics, journey_type: str = "order_processing") -> float:
    return metrics.registry.get_sample_value("saga_pruned_sagas_total", {"journey_type": journey_type}) or 0.0


def test_background_pruner_removes_exactly_the_expired_sagas(tmp_path) -> None:
    clock = ManualClock()
    orch, metrics = open_orch(tmp_path / "d", clock, retention_s=24 * HOUR, prune_batch=2)
    try:
        plain = design(orch, "plain")
        quick = design(orch, "quick", retention_s=HOUR)
        forever = design(orch, "forever", retention_s=3650 * 24 * HOUR)
        orch.design_saga_journey_sync(
            "order_processing", {"retry": {"max_attempts": 1}}, user_context=UC, journey_id="parks",
        )
        for i in range(5):
            complete(orch, plain, f"done-{i}", key=f"start-done-{i}")
        compensated = fail(orch, plain, "comp-0")
        assert compensated["compensation_status"] == "succeeded"
        complete(orch, quick, "quick-0")
        complete(orch, forever, "kept-forever")
        orch.register_compensation_handler("refund_payment", broken)
        parked = fail(orch, "parks", "parked-0")
        assert parked["parked"] is True
        orch.execute_saga_journey_sync(plain, "u1", {}, UC, saga_id="running-0")
        everything = ids(orch)
        assert len(everything) == 10

        prune_rounds(orch, clock, 2 * HOUR)  # the journey's own hour has passed; not the day
        assert ids(orch) == everything - {"quick-0"}
        assert pruned_metric(metrics) == 1

        prune_rounds(orch, clock, 23 * HOUR)  # past the global day: six more, two per round
        kept = {"kept-forever", "parked-0", "running-0"}
        assert ids(orch) == kept
        assert pruned_metric(metrics) == 7
        for sid in ("done-0", "comp-0", "quick-0"):
            with pytest.raises(NotFoundError):
                orch.get_saga_status_sync(sid, UC)
            assert orch.store.load_history(scoped_key("acme", sid)) == []
        assert orch.store.get_idempotency(scoped_key("acme", "start-done-0")) is None
        counts = orch.store.count_by_status()
        assert counts == {("order_processing", "COMPLETED"): 1, ("order_processing", "FAILED"): 1,
                          ("order_processing", "IN_PROGRESS"): 1}
        assert metrics.registry.get_sample_value(
            "saga_sagas", {"journey_type": "order_processing", "state": "COMPLETED"}) == 1
        assert orch.store.count_compensation_failed() == {"order_processing": 1}  # parked: kept
        # a pruned id can be used again, from seq 1
        complete(orch, plain, "done-0")
        assert len(orch.get_saga_execution_history_sync("done-0", UC)) == 5
    finally:
        orch.close()
    report = verify(str(tmp_path / "d"))
    assert report.ok, report.to_dict()


def test_without_any_retention_nothing_is_pruned(tmp_path) -> None:
    clock = ManualClock()
    orch, metrics = open_orch(tmp_path / "d", clock)
    try:
        complete(orch, design(orch, "plain"), "done-0")
        prune_rounds(orch, clock, 100 * 366 * 24 * HOUR)
        assert ids(orch) == {"done-0"} and pruned_metric(metrics) == 0
    finally:
        orch.close()


def test_a_repaired_parked_saga_becomes_prunable(tmp_path) -> None:
    clock = ManualClock()
    orch, _ = open_orch(tmp_path / "d", clock, retention_s=HOUR)
    try:
        orch.register_compensation_handler("refund_payment", broken)
        orch.design_saga_journey_sync(
            "order_processing", {"retry": {"max_attempts": 1}}, user_context=UC, journey_id="parks",
        )
        assert fail(orch, "parks", "p")["parked"]
        prune_rounds(orch, clock, 10 * HOUR)
        assert ids(orch) == {"p"}  # parked sagas are never pruned, however old
        orch.register_compensation_handler("refund_payment", noop)
        orch.retry_compensation_sync("p", "refund service back", UC)
        assert orch.wait_for_saga_sync("p", UC, timeout=WAIT)["compensation_status"] == "succeeded"
        prune_rounds(orch, clock, 2 * HOUR)
        assert ids(orch) == set()
    finally:
        orch.close()
    assert verify(str(tmp_path / "d")).ok


def test_retention_is_validated() -> None:
    from saga_journey.http.settings import parse_config
    from saga_journey.runtime.journeys import build_journey

    with pytest.raises(InvalidInputError, match="requirements.retention_s"):
        build_journey(journey_id="j", version=1, journey_type="order_processing", tenant_id="t",
                      requirements={"retention_s": -1}, compensation_handlers=None, created_at=0.0)
    with pytest.raises(InvalidInputError, match="retention_s"):  # a typo is refused, not kept as data
        build_journey(journey_id="j", version=1, journey_type="order_processing", tenant_id="t",
                      requirements={"retention_days": 30}, compensation_handlers=None, created_at=0.0)
    with pytest.raises(InvalidInputError, match="runtime.retention_s"):
        parse_config({"runtime": {"retention_s": 0}})
    assert parse_config({"runtime": {"retention_s": 86400}}).runtime.retention_s == 86400.0


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "saga_journey.runtime.cli", *args],
                          capture_output=True, text=True, timeout=120)


def old_store(data) -> None:
    """7 finished sagas 40 days old (with idempotency keys), one parked (never pruned), one
    finished yesterday: the prune commands' test folder."""
    orch, _ = open_orch(data, ManualClock(time.time() - 40 * 24 * HOUR))
    try:
        plain = design(orch, "plain")
        for i in range(7):
            complete(orch, plain, f"old-{i}", key=f"k-{i}")
        orch.register_compensation_handler("refund_payment", broken)
        orch.design_saga_journey_sync(
            "order_processing", {"retry": {"max_attempts": 1}}, user_context=UC, journey_id="parks",
        )
        assert fail(orch, "parks", "old-parked")["parked"]
    finally:
        orch.close()
    orch, _ = open_orch(data, ManualClock(time.time() - 24 * HOUR))
    try:
        complete(orch, "plain", "recent-0")
    finally:
        orch.close()


def test_prune_cli_removes_only_sagas_older_than_the_cutoff(tmp_path) -> None:
    data = tmp_path / "d"
    old_store(data)

    refused = _cli("prune", "--older-than", "30d", "--data-dir", str(data))
    assert refused.returncode == 2 and "7 saga(s) would be removed; pass --yes" in refused.stderr
    done = _cli("prune", "--older-than", "30d", "--data-dir", str(data), "--yes", "--batch", "3")
    assert done.returncode == 0, done.stderr
    assert "pruned 7 saga(s)" in done.stdout
    again = _cli("prune", "--older-than", "30d", "--data-dir", str(data), "--yes")
    assert "nothing to prune" in again.stdout
    checked = _cli("verify", "--data-dir", str(data))
    assert checked.returncode == 0, checked.stdout
    assert "2 sagas" in checked.stdout
    orch, _ = open_orch(data, ManualClock())
    try:
        assert ids(orch) == {"old-parked", "recent-0"}
        assert orch.store.count_by_status() == {("order_processing", "COMPLETED"): 1,
                                                ("order_processing", "FAILED"): 1}
    finally:
        orch.close()
    assert _cli("prune", "--older-than", "soon", "--data-dir", str(data)).returncode == 2


class _Timers:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def call_later(self, delay, callback):
        self.delays.append(delay)
        from saga_journey.runtime.timers import TimerHandle

        return TimerHandle()


class _NothingExpired:
    def count_expired(self, now, retention_s, limit=None) -> int:
        return 0

    def feed_pending(self, keep) -> bool:
        return False


@pytest.mark.parametrize("interval", [0.0, -5.0, float("nan")])
def test_a_degenerate_prune_interval_does_not_spin(interval) -> None:
    from saga_journey.runtime.observer import RuntimeObserver
    from saga_journey.runtime.retention import MIN_INTERVAL_S, Pruner

    timers = _Timers()
    pruner = Pruner(_NothingExpired(), timers, ManualClock(), RuntimeConfig(prune_interval_s=interval),
                    RuntimeObserver())
    pruner.start()
    pruner.run_round()
    assert timers.delays == [MIN_INTERVAL_S, MIN_INTERVAL_S] and pruner.idle.is_set()
