"""Scrape-time gauges and the store indexes behind them (oldest active saga, failed compensations)."""

from __future__ import annotations

import tempfile
import threading

import lmdb
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from saga_journey.metrics import SagaMetrics
from saga_journey.metrics.workload import design, handlers, run_workload
from saga_journey.persistence import LmdbStore, SagaWrite
from saga_journey.runtime import ManualClock, SagaOrchestrator

WAIT = 30.0


def gauges(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for f in registry.collect() for s in f.samples if s.name == name
    }


def test_state_gauges_come_from_the_store_and_survive_a_restart(tmp_path):
    path = str(tmp_path / "data")
    m1 = SagaMetrics(CollectorRegistry())
    with SagaOrchestrator.open(path, observer=m1, handlers=handlers()) as orch:
        m1.attach(orch)
        result = run_workload(orch, 40, fail_every=3)
        counts = orch.store.count_by_status()
        first = gauges(m1.registry, "saga_sagas")
        failed_first = gauges(m1.registry, "saga_compensation_failed_sagas")
    assert sum(first.values()) == 40
    for (jt, state), n in counts.items():
        assert first[(("journey_type", jt), ("state", state))] == n
    assert sum(failed_first.values()) == result.final["compensation_failed"] > 0
    # A new process (fresh registry, counters at zero) reports the same state.
    m2 = SagaMetrics(CollectorRegistry())
    with SagaOrchestrator.open(path, observer=m2, handlers=handlers()) as orch:
        m2.attach(orch)
        assert gauges(m2.registry, "saga_sagas") == first
        assert gauges(m2.registry, "saga_compensation_failed_sagas") == failed_first
        assert m2.registry.get_sample_value("saga_sagas_started_total",
                                            {"journey_type": "order_processing"}) is None


def test_oldest_active_age_follows_the_runtime_clock(tmp_path):
    clock = ManualClock()
    release, entered = threading.Event(), threading.Event()

    def blocking_undo(ctx) -> None:
        entered.set()
        release.wait(WAIT)

    names = {h: blocking_undo for h in handlers()}
    metrics = SagaMetrics(CollectorRegistry())
    with SagaOrchestrator.open(str(tmp_path), observer=metrics, clock=clock, handlers=names) as orch:
        metrics.attach(orch)
        age = lambda state: metrics.registry.get_sample_value(  # noqa: E731
            "saga_oldest_active_saga_age_seconds", {"state": state})
        jid = design(orch)["order_processing"]
        assert age("IN_PROGRESS") == 0 and age("COMPENSATING") == 0
        old = orch.execute_saga_journey_sync(jid, "u")["saga_id"]
        clock.advance(100)
        young = orch.execute_saga_journey_sync(jid, "u")["saga_id"]
        clock.advance(20)
        assert age("IN_PROGRESS") == 120
        orch.advance_saga_step_sync(old, step_result={"status": "complete"})
        assert age("IN_PROGRESS") == 120  # advancing does not reset the age: it counts from start
        orch.advance_saga_step_sync(old, step_result={"status": "failed"})
        try:
            assert entered.wait(WAIT)
            clock.advance(7)
            assert age("COMPENSATING") == 7
            assert age("IN_PROGRESS") == 27  # only the young saga is still in progress
        finally:
            release.set()
        assert orch.wait_for_saga_sync(old, timeout=WAIT)["status"] == "FAILED"
        assert age("COMPENSATING") == 0
        orch.compensate_saga_sync(young, "done")
        assert orch.wait_for_saga_sync(young, timeout=WAIT)["status"] == "FAILED"
        assert age("IN_PROGRESS") == 0


def test_closed_store_yields_no_state_samples_and_no_error(tmp_path):
    metrics = SagaMetrics(CollectorRegistry())
    orch = SagaOrchestrator.open(str(tmp_path), observer=metrics, handlers=handlers())
    metrics.attach(orch)
    assert b"saga_live_actors 0.0" in generate_latest(metrics.registry)
    orch.close()
    text = generate_latest(metrics.registry)
    assert b"\nsaga_live_actors " not in text  # state gauges go stale rather than lie
    assert b"# TYPE saga_sagas_started_total counter" in text  # the rest still renders
    metrics.detach()
    metrics.detach()  # idempotent


# ---- the store indexes ------------------------------------------------------------------

STATUSES = ["IN_PROGRESS", "COMPENSATING", "COMPLETED", "FAILED"]


def write(sid: str, status: str, prev: str | None, at: float, comp: str, jt: str) -> SagaWrite:
    snap = {"saga_id": sid, "status": status, "updated_at": at, "compensation_status": comp,
            "journey_type": jt, "started_at": at}
    return SagaWrite(sid, snap, (), 1, "t1", jt, status, prev, False)


def expected(model: dict[str, tuple[str, str, float, str]]):
    oldest: dict[str, float] = {}
    failed: dict[str, int] = {}
    for jt, status, since, comp in model.values():
        if status in ("IN_PROGRESS", "COMPENSATING"):
            oldest[status] = min(oldest.get(status, since), since)
        if status == "FAILED" and comp == "failed":
            failed[jt] = failed.get(jt, 0) + 1
    return oldest, failed


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from(STATUSES), st.booleans()), max_size=40),
       st.integers(0, 40))
def test_indexes_match_a_model_across_reopen(moves, reopen_at):
    with tempfile.TemporaryDirectory() as tmp:
        model: dict[str, tuple[str, str, float, str]] = {}  # saga -> (jt, status, since, comp)
        s = LmdbStore(tmp)
        try:
            for n, (i, status, comp_failed) in enumerate(moves):
                if n == reopen_at:
                    s.close()
                    s = LmdbStore(tmp)
                sid = f"s{i}"
                at = 1_700_000_000.0 + n * 1.5
                jt, prev, since, _ = model.get(sid, ("order" if i % 2 else "migration", None, at, ""))
                comp = "failed" if comp_failed else "succeeded"
                s.write([write(sid, status, prev, at, comp, jt)])
                model[sid] = (jt, status, since if prev == status else at, comp)
            s.close()
            s = LmdbStore(tmp)
            oldest, failed = expected(model)
            assert s.oldest_active() == oldest
            assert s.count_compensation_failed() == failed
        finally:
            s.close()


def test_indexes_are_back_filled_for_a_store_created_without_them(tmp_path):
    s = LmdbStore(tmp_path)
    s.write([write("a", "IN_PROGRESS", None, 100.0, "none", "order"),
             write("b", "IN_PROGRESS", None, 50.0, "none", "order")])
    s.write([write("b", "COMPENSATING", "IN_PROGRESS", 60.0, "running", "order"),
             write("c", "IN_PROGRESS", None, 70.0, "none", "order")])
    s.write([write("c", "FAILED", "IN_PROGRESS", 80.0, "failed", "order")])
    before = (s.oldest_active(), s.count_compensation_failed())
    s.close()
    env = lmdb.open(str(tmp_path), max_dbs=16)
    with env.begin(write=True) as txn:
        for name in (b"since", b"comp_failed", b"comp_failed_n"):
            txn.drop(env.open_db(name, txn=txn), delete=True)
    env.close()
    s = LmdbStore(tmp_path)
    try:
        # Back-filled from snapshots: the entry time of a status is the snapshot's updated_at.
        assert s.oldest_active() == {"IN_PROGRESS": 100.0, "COMPENSATING": 60.0} == before[0]
        assert s.count_compensation_failed() == {"order": 1} == before[1]
    finally:
        s.close()


def test_oldest_active_on_a_big_store(tmp_path):
    with LmdbStore(tmp_path) as s:
        s.write([write(f"s{i:05d}", "IN_PROGRESS", None, 1000.0 + (i * 7919) % 10007, "none", "o")
                 for i in range(10_000)])
        assert s.oldest_active() == {"IN_PROGRESS": 1000.0}
        s.write([write("s00000", "COMPLETED", "IN_PROGRESS", 5.0, "none", "o")])
        assert s.oldest_active() == {"IN_PROGRESS": 1001.0}
