"""POST /v1/admin/prune: online pruning for gateway users (admin only, bounded rounds, counted
in metrics), and the 410 a stream gets when it resumes from below the feed retention's floor."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from saga_journey.client import AsyncSagaClient
from saga_journey.http.app import GATEWAY, create_app
from saga_journey.metrics import SagaMetrics
from saga_journey.runtime import ManualClock, SagaOrchestrator
from saga_journey.runtime.config import RuntimeConfig
from saga_journey.runtime.errors import SagaError
from saga_journey.runtime.journeys import TEMPLATES

from .conftest import auth, settings

ADMIN = auth("acme-admin")
HOUR = 3600.0
STEPS = [m for m, _ in TEMPLATES["order_processing"]]


@pytest.fixture
async def env(tmp_path, aiohttp_client) -> Any:
    clock = ManualClock()
    metrics = SagaMetrics(CollectorRegistry())
    handlers = {h: (lambda ctx: None) for steps in TEMPLATES.values() for _, h in steps}
    config = RuntimeConfig(prune_interval_s=10 * 365 * 86400.0, feed_retention_entries=6, feed_sweep_batch=100)
    orch = SagaOrchestrator.open(str(tmp_path / "data"), clock=clock, handlers=handlers, observer=metrics,
                                 config=config)
    metrics.attach(orch)
    client = await aiohttp_client(create_app(orch, settings()))
    r = await client.post("/v1/journeys", json={"journey_type": "order_processing", "journey_id": "orders"},
                          headers=ADMIN)
    assert r.status == 201
    yield client, orch, clock, metrics
    await asyncio.get_running_loop().run_in_executor(None, orch.close)


async def _complete(client, saga_id: str) -> None:
    r = await client.post("/v1/sagas", json={"journey_id": "orders", "saga_id": saga_id}, headers=ADMIN)
    assert r.status == 201
    for m in STEPS:
        r = await client.post(f"/v1/sagas/{saga_id}/advance", json={"step_result": {"status": "complete",
                              "milestone_id": m}}, headers=ADMIN)
        assert r.status == 200, await r.text()


async def _prune(client, headers=ADMIN, **body: Any) -> tuple[int, Any]:
    r = await client.post("/v1/admin/prune", json=body, headers=headers)
    return r.status, await r.json()


async def _ids(client) -> set[str]:
    r = await client.get("/v1/sagas?limit=1000", headers=ADMIN)
    return {s["saga_id"] for s in (await r.json())["sagas"]}


async def test_prune_removes_exactly_the_expired_sagas_in_bounded_rounds(env):
    client, orch, clock, metrics = env
    for i in range(3):
        await _complete(client, f"old-{i}")
    clock.advance(2 * HOUR)
    await _complete(client, "fresh")
    r = await client.post("/v1/sagas", json={"journey_id": "orders", "saga_id": "running"}, headers=ADMIN)
    assert r.status == 201
    for who in ("acme-reader", "globex-writer"):
        status, _ = await _prune(client, auth(who), older_than_s=HOUR)
        assert status == 403, who
    for bad in ({"older_than_s": 0}, {"older_than_s": "1h"}, {"older_than_s": HOUR, "limit": 0},
                {"older_than_s": HOUR, "what": 1}, {}):
        status, problem = await _prune(client, **bad)
        assert status == 422 and problem["code"] == "invalid_input", (bad, problem)

    status, counted = await _prune(client, older_than_s=HOUR, dry_run=True)
    assert status == 200 and counted["expired"] == 3 and counted["dry_run"] is True
    assert await _ids(client) == {"old-0", "old-1", "old-2", "fresh", "running"}  # a count changes nothing

    status, first = await _prune(client, older_than_s=HOUR, limit=2)
    assert status == 200 and first["pruned"] == 2 and first["more"] is True
    status, second = await _prune(client, older_than_s=HOUR, limit=2)
    assert second["pruned"] == 1 and second["more"] is False
    assert second["by_journey_type"] == {"order_processing": 1}
    assert await _ids(client) == {"fresh", "running"}
    sample = metrics.registry.get_sample_value("saga_pruned_sagas_total", {"journey_type": "order_processing"})
    assert sample == 3
    assert orch.store.count_by_status() == {("order_processing", "COMPLETED"): 1,
                                            ("order_processing", "IN_PROGRESS"): 1}
    r = await client.get("/v1/sagas/old-0", headers=ADMIN)
    assert r.status == 404


async def test_a_last_event_id_below_the_feed_floor_is_answered_410(env):
    client, orch, _, _ = env
    await _complete(client, "a")  # 5 history entries
    await _complete(client, "b")  # 10 in all; the feed keeps 6
    assert orch.store.feed_end() == 10
    status, body = await _prune(client, older_than_s=100 * HOUR)  # nothing expired; the feed is cut
    assert status == 200 and body["pruned"] == 0
    assert orch.store.feed_floor() == 4
    r = await client.get("/v1/events", headers={**ADMIN, "Last-Event-ID": "3"})
    problem = await r.json()
    assert r.status == 410 and problem["code"] == "events_pruned" and problem["floor"] == 4
    assert not client.app[GATEWAY].tail.subscribers  # refused before subscribing: nothing left behind
    # from the floor on, everything still kept is replayed, exactly once, in order
    r = await client.get("/v1/events", headers={**ADMIN, "Last-Event-ID": "4"})
    assert r.status == 200
    ids: list[int] = []
    while len(ids) < 6:
        line = (await r.content.readline()).decode()
        if line.startswith("id: "):
            ids.append(int(line[4:]))
    r.close()
    assert ids == [5, 6, 7, 8, 9, 10]
    # the Python client raises the 410 as a typed error (it does not retry it)
    async with AsyncSagaClient(str(client.make_url("")).rstrip("/"), "acme-admin", retries=0) as c:
        with pytest.raises(SagaError) as caught:
            async for _ in c.events(last_event_id="3"):
                pass
    assert caught.value.details["http_status"] == 410
    assert caught.value.details["problem_code"] == "events_pruned" and caught.value.details["floor"] == 4
