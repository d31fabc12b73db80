"""The seed scenarios and the error catalogue, through a real aiohttp server."""

from __future__ import annotations

import asyncio
import json

import msgpack

from saga_journey.http.docs import docs_routes
from saga_journey.http.ui_routes import static_routes
from saga_journey.http.problems import PROBLEM_JSON

from .conftest import auth

ORDER = ["create_order", "process_payment", "reserve_inventory", "ship_product"]
A = auth("acme-admin")


async def design(client, headers=A, **body):
    body = {"journey_type": "order_processing", **body}
    resp = await client.post("/v1/journeys", json=body, headers=headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def start(client, journey_id, headers=A, **body):
    resp = await client.post("/v1/sagas", json={"journey_id": journey_id, **body}, headers=headers)
    assert resp.status == 201, await resp.text()
    assert resp.headers["Location"].startswith("/v1/sagas/")
    return await resp.json()


async def advance(client, saga_id, step_result, headers=A, **extra):
    return await client.post(
        f"/v1/sagas/{saga_id}/advance", json={"step_result": step_result}, headers={**headers, **extra}
    )


async def problem(resp, status, code):
    assert resp.status == status, await resp.text()
    assert resp.content_type == PROBLEM_JSON
    body = await resp.json()
    assert body["status"] == status and body["code"] == code
    assert body["type"].endswith(code) and body["title"] and body["detail"]
    return body


async def test_order_processing_success(client, orch, observer):
    journey = await design(client, context_free=None) if False else await design(client)
    assert [m["id"] for m in journey["milestones"]] == ORDER
    saga = await start(client, journey["journey_id"], context={"order_id": "o-1"})
    assert saga["status"] == "IN_PROGRESS" and saga["user_id"] == "alice" and saga["tenant_id"] == "acme"
    for m in ORDER:
        resp = await advance(client, saga["saga_id"], {"status": "complete", "milestone_id": m})
        assert resp.status == 200
    final = await resp.json()
    assert final["status"] == "COMPLETED" and final["completed_milestones"] == ORDER
    status = await (await client.get(f"/v1/sagas/{saga['saga_id']}", headers=A)).json()
    assert status["status"] == "COMPLETED"
    hist = await (await client.get(f"/v1/sagas/{saga['saga_id']}/history", headers=A)).json()
    assert [e["seq"] for e in hist["events"]] == [1, 2, 3, 4, 5]
    page = await (await client.get("/v1/sagas?status=COMPLETED&journey_type=order_processing", headers=A)).json()
    assert [s["saga_id"] for s in page["sagas"]] == [saga["saga_id"]]
    routes = {r for r, _ in observer.http}
    assert "/v1/sagas/{saga_id}/advance" in routes and "/v1/sagas/{saga_id}" in routes
    assert not any(saga["saga_id"] in r for r in routes)


async def test_failure_compensates_in_reverse(client, orch, calls):
    journey = await design(client)
    saga = await start(client, journey["journey_id"])
    sid = saga["saga_id"]
    for m in ORDER[:3]:
        assert (await advance(client, sid, {"status": "complete"})).status == 200
    resp = await client.post(f"/v1/sagas/{sid}/fail", json={"error": "carrier refused", "milestone_id": "ship_product"}, headers=A)
    assert resp.status == 200
    assert (await resp.json())["status"] in ("COMPENSATING", "FAILED")
    final = await orch.wait_for_saga(sid, {"tenant_id": "acme"}, timeout=30)
    assert final["status"] == "FAILED" and final["compensation_status"] == "succeeded"
    assert final["compensated_milestones"] == ["reserve_inventory", "process_payment", "create_order"]
    assert calls.names == [
        ("release_inventory", "reserve_inventory"), ("refund_payment", "process_payment"), ("cancel_order", "create_order"),
    ]
    # a terminal saga accepts no more reports
    await problem(await advance(client, sid, {"status": "complete"}), 409, "invalid_transition")


async def test_compensation_failure_is_reported(client, orch, calls):
    calls.fail.add("refund_payment")
    journey = await design(client, requirements={"retry": {"max_attempts": 2, "initial_delay_s": 0}})
    sid = (await start(client, journey["journey_id"]))["saga_id"]
    for _ in range(2):
        await advance(client, sid, {"status": "complete"})
    resp = await client.post(f"/v1/sagas/{sid}/compensate", json={"reason": "customer cancelled"}, headers=A)
    assert resp.status == 200
    final = await orch.wait_for_saga(sid, {"tenant_id": "acme"}, timeout=30)
    assert final["status"] == "FAILED" and final["compensation_status"] == "failed"
    assert "refund_payment is down" in final["compensation_error"]
    status = await (await client.get(f"/v1/sagas/{sid}", headers=A)).json()
    assert status["compensation_error"] == final["compensation_error"]
    assert status["parked"] is True and status["failed_compensation"] == "process_payment"


async def test_operator_repairs_a_parked_saga_over_http(client, orch, calls):
    calls.fail.add("refund_payment")
    journey = await design(client, requirements={"retry": {"max_attempts": 1, "initial_delay_s": 0}})
    sid = (await start(client, journey["journey_id"]))["saga_id"]
    for _ in range(2):
        await advance(client, sid, {"status": "complete"})
    await client.post(f"/v1/sagas/{sid}/compensate", json={"reason": "customer cancelled"}, headers=A)
    parked = await orch.wait_for_saga(sid, {"tenant_id": "acme"}, timeout=30)
    assert parked["parked"] is True
    url = f"/v1/sagas/{sid}/skip-compensation"
    for body in ({"milestone_id": "process_payment", "reason": "  "}, {"milestone_id": "a b", "reason": "x"}):
        assert (await client.post(url, json=body, headers=A)).status == 422
    blank = await client.post(f"/v1/sagas/{sid}/retry-compensation", json={"reason": " "}, headers=A)
    assert blank.status == 422
    bad = await client.post(url, json={"milestone_id": "create_order", "reason": "x"}, headers=A)
    assert bad.status == 409  # only the compensation that failed can be skipped
    reader = await client.post(url, json={"milestone_id": "process_payment", "reason": "x"},
                               headers={"Authorization": "Bearer acme-reader"})
    assert reader.status == 403
    other = await client.post(f"/v1/sagas/{sid}/retry-compensation", json={"reason": "x"},
                              headers={"Authorization": "Bearer globex-admin"})
    assert other.status == 404
    ok = await client.post(url, json={"milestone_id": "process_payment", "reason": "refunded in PSP"},
                           headers=A)
    assert ok.status == 200
    final = await orch.wait_for_saga(sid, {"tenant_id": "acme"}, timeout=30)
    assert final["compensation_status"] == "succeeded"
    assert final["manually_compensated"] == ["process_payment"]
    assert final["compensated_milestones"] == ["create_order"]
    again = await client.post(f"/v1/sagas/{sid}/retry-compensation", json={"reason": "x"}, headers=A)
    assert again.status == 409  # no longer parked
    history = await (await client.get(f"/v1/sagas/{sid}/history", headers=A)).json()
    skipped = [e for e in history["events"] if e["type"] == "compensation_skipped"]
    assert skipped[0]["by"] == "alice" and skipped[0]["reason"] == "refunded in PSP"


async def test_idempotent_retries(client):
    journey = await design(client)
    key = {"Idempotency-Key": "start-1"}
    first = await client.post("/v1/sagas", json={"journey_id": journey["journey_id"]}, headers={**A, **key})
    again = await client.post("/v1/sagas", json={"journey_id": journey["journey_id"]}, headers={**A, **key})
    assert first.status == again.status == 201
    a, b = await first.json(), await again.json()
    assert a["saga_id"] == b["saga_id"] and b["replayed"] is True
    other = await client.post("/v1/sagas", json={"journey_id": journey["journey_id"], "context": {"x": 1}}, headers={**A, **key})
    await problem(other, 422, "idempotency_key_reused")
    sid = a["saga_id"]
    r1 = await advance(client, sid, {"status": "complete"}, **{"Idempotency-Key": "adv-1"})
    r2 = await advance(client, sid, {"status": "complete"}, **{"Idempotency-Key": "adv-1"})
    assert (await r1.json())["completed_milestones"] == ["create_order"]
    body2 = await r2.json()
    assert body2["replayed"] is True and body2["completed_milestones"] == ["create_order"]
    status = await (await client.get(f"/v1/sagas/{sid}", headers=A)).json()
    assert status["completed_milestones"] == ["create_order"]  # applied once
    # the same key in another tenant is another key
    g = auth("globex-admin")
    gj = await design(client, headers=g)
    resp = await client.post("/v1/sagas", json={"journey_id": gj["journey_id"]}, headers={**g, **key})
    assert resp.status == 201 and "replayed" not in await resp.json()
    # design is idempotent too
    d1 = await client.post("/v1/journeys", json={"journey_type": "order_processing"}, headers={**A, "Idempotency-Key": "d"})
    d2 = await client.post("/v1/journeys", json={"journey_type": "order_processing"}, headers={**A, "Idempotency-Key": "d"})
    assert (await d1.json())["journey_id"] == (await d2.json())["journey_id"]


async def test_cross_tenant_is_404(client):
    journey = await design(client)
    sid = (await start(client, journey["journey_id"]))["saga_id"]
    g = auth("globex-admin")
    await problem(await client.get(f"/v1/sagas/{sid}", headers=g), 404, "not_found")
    await problem(await client.get(f"/v1/sagas/{sid}/history", headers=g), 404, "not_found")
    await problem(await advance(client, sid, {"status": "complete"}, headers=g), 404, "not_found")
    await problem(await client.post(f"/v1/sagas/{sid}/compensate", headers=g), 404, "not_found")
    await problem(await client.get(f"/v1/journeys/{journey['journey_id']}", headers=g), 404, "not_found")
    await problem(await client.post("/v1/sagas", json={"journey_id": journey["journey_id"]}, headers=g), 404, "not_found")
    assert (await (await client.get("/v1/sagas", headers=g)).json())["sagas"] == []
    assert (await (await client.get("/v1/journeys", headers=g)).json())["journeys"] == []
    # acme's saga is untouched
    status = await (await client.get(f"/v1/sagas/{sid}", headers=A)).json()
    assert status["status"] == "IN_PROGRESS" and status["completed_milestones"] == []


async def test_auth(client):
    await problem(await client.get("/v1/sagas"), 401, "unauthorized")
    resp = await client.get("/v1/sagas", headers=auth("wrong"))
    await problem(resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    await problem(await client.post("/v1/journeys", json={"journey_type": "order_processing"}, headers=auth("acme-reader")), 403, "forbidden")
    await problem(await client.post("/v1/journeys", json={"journey_type": "order_processing"}, headers=auth("globex-writer")), 403, "forbidden")
    assert (await client.get("/v1/sagas", headers=auth("acme-reader"))).status == 200
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert (await client.get(path)).status == 200


async def test_malformed_and_invalid_bodies(client):
    journey = await design(client)
    sid = (await start(client, journey["journey_id"]))["saga_id"]
    url = f"/v1/sagas/{sid}/advance"
    h = {**A, "Content-Type": "application/json"}
    await problem(await client.post(url, data=b"{not json", headers=h), 400, "malformed_body")
    await problem(await client.post(url, data=b'{"step_result": NaN}', headers=h), 400, "malformed_body")
    await problem(await client.post(url, data=b"[" * 5000 + b"]" * 5000, headers=h), 400, "malformed_body")
    mp = {**A, "Content-Type": "application/msgpack"}
    await problem(await client.post(url, data=b"\xc1\xc1", headers=mp), 400, "malformed_body")
    await problem(await client.post(url, data=msgpack.packb({"step_result": {"status": "complete", "b": b"\x00"}}), headers=mp), 400, "malformed_body")
    await problem(await client.post(url, data=b"x", headers={**A, "Content-Type": "text/plain"}), 415, "unsupported_media_type")
    body = await problem(await client.post(url, json={"step_result": {"status": "complete"}, "extra": 1}, headers=A), 422, "invalid_input")
    assert body["unknown"] == ["extra"]
    await problem(await client.post(url, json=[1, 2], headers=A), 422, "invalid_input")
    await problem(await client.post(url, json={"step_result": {"status": "done"}}, headers=A), 422, "invalid_input")
    await problem(await client.post(url, json={"step_result": {"status": "complete", "n": 2**70}}, headers=A), 400, "malformed_body")
    await problem(await client.post(url, json={"step_result": {"status": "complete", "milestone_id": "ship_product"}}, headers=A), 409, "invalid_transition")
    await problem(await client.get("/v1/sagas?limit=0", headers=A), 422, "invalid_input")
    await problem(await client.get("/v1/sagas?status=DONE", headers=A), 422, "invalid_input")
    # nothing was applied
    status = await (await client.get(f"/v1/sagas/{sid}", headers=A)).json()
    assert status["version"] == 1 and status["completed_milestones"] == []


async def test_huge_ids_unicode_and_routing(client):
    await problem(await client.get("/v1/sagas/" + "x" * 5000, headers=A), 404, "not_found")
    await problem(await client.get("/v1/sagas/%C3%A9t%C3%A9", headers=A), 404, "not_found")
    await problem(await client.post("/v1/sagas", json={"journey_id": "é" * 10}, headers=A), 422, "invalid_input")
    resp = await client.delete("/v1/sagas", headers=A)
    await problem(resp, 405, "method_not_allowed")
    assert "GET" in resp.headers["Allow"]
    await problem(await client.get("/nowhere"), 404, "not_found")
    journey = await design(client)
    ctx = {"name": "Zoë 🚀 東京", "nested": {"ü": ["ß", "∑"]}}
    saga = await start(client, journey["journey_id"], context=ctx)
    assert saga["context"] == ctx
    status = await (await client.get(f"/v1/sagas/{saga['saga_id']}", headers=A)).json()
    assert status["context"] == ctx


async def test_msgpack_in_and_out(client):
    journey = await design(client)
    h = {**A, "Content-Type": "application/msgpack", "Accept": "application/msgpack"}
    resp = await client.post("/v1/sagas", data=msgpack.packb({"journey_id": journey["journey_id"], "context": {"k": "v"}}), headers=h)
    assert resp.status == 201 and resp.content_type == "application/msgpack"
    saga = msgpack.unpackb(await resp.read())
    resp = await client.post(f"/v1/sagas/{saga['saga_id']}/advance", data=msgpack.packb({"step_result": {"status": "complete"}}), headers=h)
    assert msgpack.unpackb(await resp.read())["completed_milestones"] == ["create_order"]


async def test_oversized_body_is_413(make_client):
    client = await make_client(max_body_bytes=1000)
    resp = await client.post("/v1/journeys", data=b"{" + b" " * 5000 + b"}", headers={**A, "Content-Type": "application/json"})
    await problem(resp, 413, "body_too_large")
    # chunked (no Content-Length) is bounded too
    async def gen():
        for _ in range(10):
            yield b" " * 500

    resp = await client.post("/v1/journeys", data=gen(), headers={**A, "Content-Type": "application/json"})
    await problem(resp, 413, "body_too_large")


async def test_concurrent_advances_to_one_saga_are_serial(client):
    journey = await design(client, requirements={"milestones": [f"m{i}" for i in range(40)]}, journey_type="long")
    sid = (await start(client, journey["journey_id"]))["saga_id"]
    results = await asyncio.gather(*(advance(client, sid, {"status": "complete"}) for _ in range(40)))
    assert all(r.status == 200 for r in results)
    bodies = [await r.json() for r in results]
    assert sorted(b["version"] for b in bodies) == list(range(2, 42))  # each applied exactly once
    status = await (await client.get(f"/v1/sagas/{sid}", headers=A)).json()
    assert status["status"] == "COMPLETED" and len(status["completed_milestones"]) == 40


async def test_per_saga_queue_bound(make_client):
    client = await make_client(max_queued_per_saga=1)
    journey = await design(client, requirements={"milestones": [f"m{i}" for i in range(30)]}, journey_type="long")
    sid = (await start(client, journey["journey_id"]))["saga_id"]
    results = await asyncio.gather(*(advance(client, sid, {"status": "complete"}) for _ in range(30)))
    statuses = [r.status for r in results]
    assert set(statuses) <= {200, 429} and 200 in statuses
    for r in results:
        if r.status == 429:
            await problem(r, 429, "saga_queue_full")
            assert r.headers["Retry-After"] == "1"
    done = await (await client.get(f"/v1/sagas/{sid}", headers=A)).json()
    assert len(done["completed_milestones"]) == statuses.count(200)


async def test_openapi_lists_every_route(client):
    doc = await (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    ops = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    # the /docs page, the /ui/ console and their assets: not API operations
    pages = {path for path, _, _ in docs_routes() + static_routes()}
    for route in client.app.router.routes():
        info = route.resource.get_info()
        path = info.get("path") or info.get("formatter")
        if route.method != "HEAD" and path not in pages:
            assert (route.method, path) in ops
    assert json.dumps(doc)  # serialisable


async def test_ids_with_trailing_newline_are_rejected(client):
    journey = await design(client)
    await problem(
        await client.post("/v1/sagas", json={"journey_id": journey["journey_id"], "saga_id": "s1\n"}, headers=A),
        422, "invalid_input",
    )
    await problem(await client.get("/v1/sagas/s1%0A", headers=A), 404, "not_found")


async def test_get_saga_wait_long_polls_until_the_version_passes(client):
    journey = await design(client)
    saga = await start(client, journey["journey_id"])
    sid, version = saga["saga_id"], saga["version"]
    poll = asyncio.create_task(client.get(f"/v1/sagas/{sid}?wait=10&version={version}", headers=A))
    await asyncio.sleep(0.05)
    assert not poll.done()  # nothing happened yet: the request waits
    assert (await advance(client, sid, {"status": "complete"})).status == 200
    resp = await poll
    assert resp.status == 200
    body = await resp.json()
    assert body["version"] == version + 1 and body["status"] == "IN_PROGRESS"


async def test_get_saga_wait_answers_the_status_at_the_timeout(client):
    journey = await design(client)
    saga = await start(client, journey["journey_id"])
    resp = await client.get(f"/v1/sagas/{saga['saga_id']}?wait=0.05&version={saga['version']}", headers=A)
    assert resp.status == 200
    assert (await resp.json())["version"] == saga["version"]
    resp = await client.get(f"/v1/sagas/{saga['saga_id']}?wait=0.05", headers=A)  # not terminal
    assert (await resp.json())["status"] == "IN_PROGRESS"


async def test_get_saga_wait_refuses_bad_values(client):
    journey = await design(client)
    saga = await start(client, journey["journey_id"])
    for bad in ("wait=-1", "wait=61", "wait=nan", "wait=soon", "wait=1&version=-3"):
        await problem(await client.get(f"/v1/sagas/{saga['saga_id']}?{bad}", headers=A), 422, "invalid_input")
