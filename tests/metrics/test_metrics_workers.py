"""State gauges of the workers of ``serve --workers``: each reports its owned shards, so the
workers' series add up to the folder's figures instead of each repeating them."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from saga_journey.metrics.collector import RuntimeStateCollector
from saga_journey.metrics.merge import merge_expositions
from saga_journey.persistence.lmdb_backend import LmdbBackend
from saga_journey.persistence.ports import StoreOptions
from saga_journey.persistence.shard_map import saga_shard
from saga_journey.persistence.store import SagaWrite
from saga_journey.runtime.model import COMPENSATING, FAILED, IN_PROGRESS

NOW = 5000.0
WORKERS = {0: frozenset({0, 2}), 1: frozenset({1, 3})}


def write(saga_id: str, status: str, at: float, journey_type: str, comp: str = "none") -> SagaWrite:
    snap = {"saga_id": saga_id, "tenant_id": "acme", "status": status, "updated_at": at,
            "journey_type": journey_type, "journey_id": "j1", "user_id": "u1",
            "compensation_status": comp, "version": 1}
    return SagaWrite(saga_id, snap, ({"seq": 1, "type": "e1", "at": at},), 1, "acme", journey_type,
                     status, None, False)


def scrape(store) -> bytes:
    orch = SimpleNamespace(
        store=store, clock=SimpleNamespace(now=lambda: NOW),
        stats=lambda: {"live_actors": 0, "pending_timers": 0, "store": store.stats()})
    registry = CollectorRegistry()
    registry.register(RuntimeStateCollector(orch))
    return generate_latest(registry)


def series(text: bytes, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value
            for f in text_string_to_metric_families(text.decode()) for s in f.samples if s.name == name}


def summed(text: bytes, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """``sum without (worker) (name)``."""
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for labels, v in series(text, name).items():
        key = tuple(kv for kv in labels if kv[0] != "worker")
        out[key] = out.get(key, 0.0) + v
    return out


def test_workers_report_their_owned_shards_and_their_series_add_up(tmp_path):
    folder = str(tmp_path / "d")
    backend = LmdbBackend(folder)
    # sagas in every shard: in progress at different times, compensating, failed compensations
    rows = []
    for i in range(40):
        jt = "order" if i % 2 else "migration"
        status = (IN_PROGRESS, COMPENSATING, FAILED)[i % 3]
        rows.append(write(f"s{i:02d}", status, 1000.0 + i, jt, "failed" if status == FAILED and i % 4 else "none"))
    whole = backend.open(StoreOptions(shards=4))
    try:
        whole.write(rows)
        whole_text = scrape(whole)
        assert {saga_shard("acme", r.saga_id, 4) for r in rows} == {0, 1, 2, 3}
    finally:
        whole.close()

    parts = []
    for worker, owned in WORKERS.items():
        store = backend.open(StoreOptions(owned_shards=owned))
        try:
            mine = [r for r in rows if saga_shard("acme", r.saga_id, 4) in owned]
            assert sum(store.count_by_status().values()) == len(rows)  # it reads the whole folder
            text = scrape(store)  # but reports its own shards
            assert sum(series(text, "saga_sagas").values()) == len(mine) < len(rows)
            parts.append((str(worker), text))
        finally:
            store.close()

    merged = merge_expositions(parts)
    for name in ("saga_sagas", "saga_compensation_failed_sagas"):
        want = {k: v for k, v in series(whole_text, name).items() if v}
        assert {k: v for k, v in summed(merged, name).items() if v} == want, name
    assert sum(series(whole_text, "saga_compensation_failed_sagas").values()) > 0
    # the oldest active saga of the folder is the oldest of the workers' (max without worker)
    ages: dict[str, float] = {}
    for labels, v in series(merged, "saga_oldest_active_saga_age_seconds").items():
        state = dict(labels)["state"]
        ages[state] = max(ages.get(state, 0.0), v)
    assert ages == {dict(k)["state"]: v for k, v in series(whole_text, "saga_oldest_active_saga_age_seconds").items()}
    assert ages[IN_PROGRESS] == NOW - 1000.0


def test_a_one_environment_store_is_read_whole(tmp_path):
    store = LmdbBackend(str(tmp_path / "one")).open()
    try:
        store.write([write("a", IN_PROGRESS, 1000.0, "order"), write("b", FAILED, 1001.0, "order", "failed")])
        assert not hasattr(store, "owned_view")
        text = scrape(store)
    finally:
        store.close()
    assert series(text, "saga_sagas")[(("journey_type", "order"), ("state", IN_PROGRESS))] == 1.0
    assert series(text, "saga_compensation_failed_sagas") == {(("journey_type", "order"),): 1.0}
