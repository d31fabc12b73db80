"""SSE event streams against a real gateway: resume with Last-Event-ID (exactly once, in order),
tenancy, bounded subscriber queues, and the global feed checked by ``verify``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from saga_journey.http.app import GATEWAY
from saga_journey.http.events import Subscriber
from saga_journey.persistence.verify import verify

from .conftest import auth

ADMIN = auth("acme-admin")
COMPLETE = {"step_result": {"status": "complete"}}
WAIT = 30


async def read_events(resp, n: int) -> list[dict[str, Any]]:
    """The next ``n`` events of an SSE response: {"id", "event", "data"} each (comments skipped)."""
    out: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    while len(out) < n:
        line = (await asyncio.wait_for(resp.content.readline(), WAIT)).decode()
        assert line, f"stream ended after {len(out)} events"
        line = line.rstrip("\n")
        if not line:
            if current:
                out.append(current)
                current = {}
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(": ")
            current[field] = json.loads(value) if field == "data" else value
    return out


async def _setup(client, journey_id: str = "orders", headers=ADMIN) -> None:
    r = await client.post("/v1/journeys", json={"journey_type": "order_processing", "journey_id": journey_id},
                          headers=auth("acme-admin") if headers is ADMIN else auth("globex-admin"))
    assert r.status == 201


async def _start(client, saga_id: str, headers=ADMIN, journey_id: str = "orders") -> None:
    r = await client.post("/v1/sagas", json={"journey_id": journey_id, "saga_id": saga_id}, headers=headers)
    assert r.status == 201, await r.text()


async def _advance(client, saga_id: str, headers=ADMIN) -> None:
    r = await client.post(f"/v1/sagas/{saga_id}/advance", json=COMPLETE, headers=headers)
    assert r.status == 200, await r.text()


async def test_per_saga_stream_resumes_exactly_once_in_order(client):
    await _setup(client)
    await _start(client, "s-1")
    await _advance(client, "s-1")
    resp = await client.get("/v1/sagas/s-1/events", headers=ADMIN)
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    first = await read_events(resp, 2)  # the whole history so far, from seq 1
    assert [e["id"] for e in first] == ["1", "2"]
    assert [e["event"] for e in first] == ["saga_started", "milestone_completed"]
    await _advance(client, "s-1")
    live = await read_events(resp, 1)
    assert live[0]["id"] == "3" and live[0]["data"]["saga"]["saga_id"] == "s-1"
    assert live[0]["data"]["at_iso"].endswith("Z") and live[0]["data"]["status"] == "IN_PROGRESS"
    resp.close()  # disconnect mid-stream; the saga goes on
    await _advance(client, "s-1")
    await _advance(client, "s-1")  # completes it
    resp = await client.get("/v1/sagas/s-1/events", headers={**ADMIN, "Last-Event-ID": "3"})
    rest = await read_events(resp, 2)
    assert [e["id"] for e in rest] == ["4", "5"]
    assert rest[-1]["data"]["status"] == "COMPLETED"
    resp.close()
    resp = await client.get("/v1/sagas/s-1/events?last_event_id=4", headers=ADMIN)
    assert [e["id"] for e in await read_events(resp, 1)] == ["5"]
    resp.close()


async def test_global_stream_disconnect_and_resume_gets_every_event_once(client, orch, tmp_path):
    await _setup(client)
    resp = await client.get("/v1/events", headers=ADMIN)  # starts now
    assert resp.status == 200
    expected: list[tuple[str, int]] = []
    for i in range(5):
        await _start(client, f"g-{i}")
        expected.append((f"g-{i}", 1))
    got = await read_events(resp, 3)
    resp.close()  # mid-stream
    for i in range(5):
        await _advance(client, f"g-{i}")
        expected.append((f"g-{i}", 2))
    for i in range(3):
        await _advance(client, f"g-{i}")
        expected.append((f"g-{i}", 3))
    resp = await client.get("/v1/events", headers={**ADMIN, "Last-Event-ID": got[-1]["id"]})
    got += await read_events(resp, len(expected) - 3)
    await _advance(client, "g-4")  # live after the replay
    expected.append(("g-4", 3))
    got += await read_events(resp, 1)
    resp.close()
    pairs = [(e["data"]["saga_id"], e["data"]["seq"]) for e in got]
    assert pairs == expected  # every event once, in commit order
    ids = [int(e["id"]) for e in got]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    await orch.__aexit__()
    report = verify(str(tmp_path / "data"))
    assert report.ok, report.to_dict()


async def test_a_tenant_sees_only_its_own_events(client):
    await _setup(client)
    await _setup(client, "g-orders", headers=auth("globex-admin"))
    globex = await client.get("/v1/events", headers=auth("globex-writer"))
    acme = await client.get("/v1/events?journey_id=orders", headers=ADMIN)
    await _start(client, "shared-id")  # acme's
    await _start(client, "shared-id", headers=auth("globex-writer"), journey_id="g-orders")
    await _start(client, "acme-2")
    seen = await read_events(globex, 1)
    assert seen[0]["data"]["saga"]["tenant_id"] == "globex"
    assert [e["data"]["saga_id"] for e in await read_events(acme, 2)] == ["shared-id", "acme-2"]
    await _advance(client, "shared-id", headers=auth("globex-writer"))
    nxt = await read_events(globex, 1)
    assert nxt[0]["data"]["saga"]["tenant_id"] == "globex" and nxt[0]["data"]["seq"] == 2
    r = await client.get("/v1/sagas/acme-2/events", headers=auth("globex-admin"))
    assert r.status == 404  # another tenant's saga
    globex.close()
    acme.close()


async def test_stream_filters_by_saga_id_and_status(client):
    await _setup(client)
    resp = await client.get("/v1/events?saga_id=f-2&saga_id=f-3&status=IN_PROGRESS", headers=ADMIN)
    for i in range(4):
        await _start(client, f"f-{i}")
    r = await client.post("/v1/sagas/f-2/compensate", json={"reason": "stop"}, headers=ADMIN)
    assert r.status == 200
    await _advance(client, "f-3")
    got = await read_events(resp, 3)
    assert [(e["data"]["saga_id"], e["data"]["seq"]) for e in got] == [("f-2", 1), ("f-3", 1), ("f-3", 2)]
    resp.close()


async def test_bad_last_event_id_is_422(client):
    r = await client.get("/v1/events", headers={**ADMIN, "Last-Event-ID": "abc"})
    assert r.status == 422


async def test_a_slow_subscriber_is_dropped_at_its_queue_bound(client):
    """A subscriber that takes nothing is dropped once ``limit`` items wait; the others go on."""
    await _setup(client)
    tail = client.app[GATEWAY].tail
    slow = Subscriber("acme/", lambda item: True, limit=3)
    tail.subscribe(slow)
    resp = await client.get("/v1/events", headers=ADMIN)
    for i in range(6):
        await _start(client, f"d-{i}")
    got = await read_events(resp, 6)
    assert [e["data"]["saga_id"] for e in got] == [f"d-{i}" for i in range(6)]
    assert slow.dropped and len(slow.queue) == 3 and slow not in tail.subscribers
    resp.close()


async def test_streams_end_at_shutdown(make_client):
    client = await make_client()
    resp = await client.get("/v1/events", headers=ADMIN)
    assert resp.status == 200
    await asyncio.wait_for(client.close(), WAIT)  # does not wait out the stream
