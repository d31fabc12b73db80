"""SagaMetrics against a real orchestrator: the samples match what the runtime committed."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from prometheus_client import CollectorRegistry

from saga_journey.metrics import SagaMetrics, status_class
from saga_journey.metrics.workload import design, handlers, run_workload
from saga_journey.runtime import ManualClock, RuntimeConfig, SagaOrchestrator

WAIT = 30.0


def value(metrics: SagaMetrics, name: str, **labels: str) -> float:
    v = metrics.registry.get_sample_value(name, labels)
    return 0.0 if v is None else v


def total(metrics: SagaMetrics, name: str, **match: str) -> float:
    """Sum of every sample called ``name`` whose labels include ``match``."""
    out = 0.0
    for family in metrics.registry.collect():
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in match.items()):
                out += s.value
    return out


def test_nothing_is_registered_on_import():
    code = (
        "import prometheus_client, saga_journey.metrics, saga_journey.runtime\n"
        "names = [m.name for m in prometheus_client.REGISTRY.collect()]\n"
        "assert not [n for n in names if n.startswith('saga_')], names\n"
        "print('clean')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "clean"


def test_registries_are_independent_and_duplicates_refused():
    a, b = SagaMetrics(CollectorRegistry()), SagaMetrics(CollectorRegistry())
    assert a.registry is not b.registry
    with pytest.raises(ValueError):
        SagaMetrics(a.registry)
    assert SagaMetrics().registry is not None  # a private registry when none is given


def test_samples_match_the_committed_outcomes(runtime):
    orch, metrics = runtime
    result = run_workload(orch, 60, fail_every=3, workers=6)
    assert result.rollbacks > 0 and result.final["compensation_failed"] > 0

    assert total(metrics, "saga_sagas_started_total") == 60
    assert total(metrics, "saga_sagas_completed_total") == result.final["COMPLETED"]
    for outcome in ("compensated", "compensation_failed"):
        assert total(metrics, "saga_sagas_failed_total", outcome=outcome) == result.final[outcome]
    assert total(metrics, "saga_rollback_duration_seconds_count") == result.rollbacks
    for jt, n in result.rollbacks_by_type.items():
        assert total(metrics, "saga_rollback_duration_seconds_count", journey_type=jt) == n

    # Every committed event of every saga is counted once, by kind and milestone.
    events: Counter[str] = Counter()
    steps: Counter[tuple[str, str]] = Counter()
    kind_to_outcome = {"compensation_succeeded": "succeeded",
                       "compensation_attempt_failed": "retry",
                       "compensation_exhausted": "exhausted"}
    cursor = None
    while True:
        page = orch.list_sagas_sync(limit=1000, cursor=cursor)
        for saga in page["sagas"]:
            for entry in orch.get_saga_execution_history_sync(saga["saga_id"]):
                events[entry["type"]] += 1
                if entry["type"] in kind_to_outcome:
                    steps[(entry["milestone_id"], kind_to_outcome[entry["type"]])] += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    for kind, n in events.items():
        assert total(metrics, "saga_transitions_total", event=kind) == n, kind
    for (milestone, outcome), n in steps.items():
        got = total(metrics, "saga_compensation_step_duration_seconds_count",
                    milestone=milestone, outcome=outcome)
        assert got == n, (milestone, outcome)
    assert total(metrics, "saga_compensation_retries_total") == events["compensation_attempt_failed"]
    assert total(metrics, "saga_compensation_attempts_total") == sum(steps.values())
    assert total(metrics, "saga_request_duration_seconds_count", operation="execute") == 60
    assert total(metrics, "saga_store_commit_duration_seconds_count") > 0
    assert total(metrics, "saga_store_commit_batch_size_sum") >= sum(events.values())


def test_rollback_duration_is_failure_to_last_compensation_on_the_runtime_clock(tmp_path):
    clock = ManualClock()
    metrics = SagaMetrics(CollectorRegistry())

    def slow_undo(ctx) -> None:
        clock.advance(1.5)  # each compensation takes 1.5 s of runtime time

    names = {h: slow_undo for h in handlers()}
    with SagaOrchestrator.open(str(tmp_path), observer=metrics, clock=clock, handlers=names) as orch:
        jid = design(orch)["order_processing"]
        sid = orch.execute_saga_journey_sync(jid, "u")["saga_id"]
        for mid in ("create_order", "process_payment"):
            orch.advance_saga_step_sync(sid, step_result={"status": "complete", "milestone_id": mid})
        orch.advance_saga_step_sync(sid, step_result={"status": "failed"})
        final = orch.wait_for_saga_sync(sid, timeout=WAIT)
    assert final["status"] == "FAILED" and final["compensation_status"] == "succeeded"
    labels = {"journey_type": "order_processing", "outcome": "compensated"}
    assert metrics.registry.get_sample_value("saga_rollback_duration_seconds_count", labels) == 1
    assert metrics.registry.get_sample_value("saga_rollback_duration_seconds_sum", labels) == pytest.approx(3.0)
    le = {**labels, "le": "2.5"}
    assert metrics.registry.get_sample_value("saga_rollback_duration_seconds_bucket", le) == 0
    le["le"] = "5.0"
    assert metrics.registry.get_sample_value("saga_rollback_duration_seconds_bucket", le) == 1


def test_outcome_series_exist_at_zero_once_a_journey_type_is_seen(runtime):
    orch, metrics = runtime
    run_workload(orch, 2, fail_every=0)
    for jt in ("order_processing", "enterprise_migration"):
        for outcome in ("compensated", "compensation_failed"):
            assert metrics.registry.get_sample_value(
                "saga_sagas_failed_total", {"journey_type": jt, "outcome": outcome}) == 0


def test_activation_from_snapshot_is_counted(tmp_path):
    metrics = SagaMetrics(CollectorRegistry())
    config = RuntimeConfig(idle_passivate_s=0.05)
    with SagaOrchestrator.open(str(tmp_path), observer=metrics, config=config, handlers=handlers()) as orch:
        metrics.attach(orch)
        jid = design(orch)["order_processing"]
        sid = orch.execute_saga_journey_sync(jid, "u")["saga_id"]
        deadline = time.monotonic() + WAIT
        while orch.stats()["live_actors"] and time.monotonic() < deadline:
            time.sleep(0.01)  # bounded poll: the reaper passivates on its own schedule
        assert orch.stats()["live_actors"] == 0
        assert value(metrics, "saga_actor_passivations_total") == 1
        orch.advance_saga_step_sync(sid, step_result={"status": "complete"})
        assert value(metrics, "saga_actor_activations_total") == 1
        assert value(metrics, "saga_live_actors") == 1


def test_mailbox_depth_is_read_at_scrape_time(tmp_path):
    release = threading.Event()
    entered = threading.Event()

    class Blocking(SagaMetrics):
        def on_transition(self, state, event) -> None:
            super().on_transition(state, event)
            if event.kind == "milestone_completed":
                entered.set()
                release.wait(WAIT)

    metrics = Blocking(CollectorRegistry())
    with SagaOrchestrator.open(str(tmp_path), observer=metrics, handlers=handlers()) as orch:
        metrics.attach(orch)
        jid = design(orch)["order_processing"]
        sid = orch.execute_saga_journey_sync(jid, "u")["saga_id"]
        futures = [orch._submit_advance(sid, None, None, {"status": "complete"}, None) for _ in range(3)]
        try:
            assert entered.wait(WAIT)  # the actor is now parked inside on_transition
            deadline = time.monotonic() + WAIT
            while value(metrics, "saga_mailbox_messages") < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert value(metrics, "saga_mailbox_messages") == 2
            assert value(metrics, "saga_mailbox_max_messages") == 2
        finally:
            release.set()
        for f in futures:
            assert f.result(WAIT)["status"] in ("IN_PROGRESS", "COMPLETED")
        assert value(metrics, "saga_mailbox_messages") == 0


def test_hooks_never_raise_and_labels_are_bounded():
    metrics = SagaMetrics(CollectorRegistry(), max_children=2)
    metrics.on_transition(object(), object())  # garbage in: logged once, nothing raised
    for route in ("/a", "/b", "/c", "/d"):
        metrics.on_http_request(route, 503, 0.01)
    routes = {s.labels["route"] for f in metrics.registry.collect() for s in f.samples
              if s.name == "saga_http_requests_total"}
    assert routes == {"/a", "/b", "_other"}
    assert total(metrics, "saga_http_requests_total", status_class="5xx") == 4
    assert [status_class(c) for c in (200, 302, 404, 503, 99, 600)] == \
        ["2xx", "3xx", "4xx", "5xx", "other", "other"]
