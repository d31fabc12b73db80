"""Regression tests for issue 9 defect 1 and its footguns, through a real aiohttp server.

msgpack ExtType/Timestamp values in context, requirements or step_result were stored and then
broke every read of the tenant's sagas, journeys or history with 500. They are refused at the
door now (400 problem+json, nothing stored). Unknown query parameters and unknown requirements
keys are refused (422) instead of ignored.
"""

from __future__ import annotations

import json

import msgpack
import pytest

from .conftest import auth
from .test_gateway import design, problem, start

A = auth("acme-admin")
MP = {**A, "Content-Type": "application/msgpack"}
EXT = msgpack.ExtType(5, b"\x01\x02")
STAMP = msgpack.Timestamp(1_700_000_000, 0)


def _strict_unpack(raw: bytes):
    def refuse(code: int, data: bytes):
        raise AssertionError(f"reply holds an ExtType {code}")

    return msgpack.unpackb(raw, raw=False, strict_map_key=True, ext_hook=refuse, timestamp=0)


async def read_everything(client, saga_id: str | None, journey_id: str, strict: bool = True) -> dict:
    """Every read route, JSON and msgpack; each must answer 200 with a decodable body.

    ``strict``: the msgpack reply must hold no extension types and equal the JSON one.
    """
    paths = ["/v1/sagas?limit=1000", "/v1/journeys", f"/v1/journeys/{journey_id}", "/v1/journey-templates"]
    if saga_id is not None:
        paths += [f"/v1/sagas/{saga_id}", f"/v1/sagas/{saga_id}/history"]
    seen = {}
    for path in paths:
        resp = await client.get(path, headers=A)
        assert resp.status == 200, (path, await resp.text())
        seen[path] = json.loads(await resp.read())
        resp = await client.get(path, headers={**A, "Accept": "application/msgpack"})
        assert resp.status == 200, (path, await resp.text())
        if strict:
            assert _strict_unpack(await resp.read()) == seen[path]
        else:
            msgpack.unpackb(await resp.read(), strict_map_key=False)
    return seen


@pytest.mark.parametrize("bad", [EXT, STAMP], ids=["ExtType", "Timestamp"])
async def test_extension_values_are_refused_at_the_door_and_reads_stay_whole(client, bad):
    journey = await design(client)
    saga = await start(client, journey["journey_id"])
    before = await read_everything(client, saga["saga_id"], journey["journey_id"])

    cases = [
        ("/v1/sagas", {"journey_id": journey["journey_id"], "context": {"when": bad}}),
        ("/v1/journeys", {"journey_type": "order_processing", "requirements": {"metadata": {"x": bad}}}),
        (f"/v1/sagas/{saga['saga_id']}/advance", {"step_result": {"status": "complete", "at": bad}}),
        (f"/v1/sagas/{saga['saga_id']}/fail", {"error": "boom", "result": {"at": [bad]}}),
    ]
    for url, body in cases:
        resp = await client.post(url, data=msgpack.packb(body, datetime=False), headers=MP)
        await problem(resp, 400, "malformed_body")
    assert await read_everything(client, saga["saga_id"], journey["journey_id"]) == before


@pytest.mark.parametrize(
    "body",
    [
        b'{"journey_id": "J", "context": {"n": 100000000000000000000000}}',
        b'{"journey_id": "J", "context": {"s": "\\ud800"}}',
        b'{"journey_id": "J", "context": {"f": 1e400}}',
        b'{"journey_id": "J", "context": {"f": -Infinity}}',
    ],
    ids=["huge-int", "lone-surrogate", "overflowing-float", "infinity"],
)
async def test_json_values_no_encoding_carries_are_refused(client, body):
    journey = await design(client)
    body = body.replace(b'"J"', json.dumps(journey["journey_id"]).encode())
    resp = await client.post("/v1/sagas", data=body, headers={**A, "Content-Type": "application/json"})
    await problem(resp, 400, "malformed_body")
    listed = await read_everything(client, None, journey["journey_id"])
    assert listed["/v1/sagas?limit=1000"]["sagas"] == []


@pytest.mark.parametrize(
    "field,value",
    [("reason", "\udcff"), ("reason", 2**64)],
)
async def test_bad_reason_values_are_refused(client, field, value):
    journey = await design(client)
    saga = await start(client, journey["journey_id"])
    body = json.dumps({field: value}).encode()
    resp = await client.post(
        f"/v1/sagas/{saga['saga_id']}/compensate", data=body, headers={**A, "Content-Type": "application/json"}
    )
    await problem(resp, 400, "malformed_body")
    seen = await read_everything(client, saga["saga_id"], journey["journey_id"])
    assert seen[f"/v1/sagas/{saga['saga_id']}"]["status"] == "IN_PROGRESS"


async def test_msgpack_non_string_keys_are_refused(client):
    journey = await design(client)
    body = msgpack.packb({"journey_id": journey["journey_id"], "context": {1: "one"}})
    await problem(await client.post("/v1/sagas", data=body, headers=MP), 400, "malformed_body")


@pytest.mark.parametrize(
    "path",
    ["/v1/sagas?statuss=COMPLETED", "/v1/sagas?parkd=true", "/v1/journeys?x=1", "/v1/journey-templates?a=b",
     "/v1/sagas/s-1?verbose=1", "/v1/sagas/s-1/history?limit=5&afterseq=3", "/v1/journeys/j-1?versoin=2",
     "/healthz?x=1"],
)
async def test_unknown_query_parameters_are_refused(client, path):
    body = await problem(await client.get(path, headers=A), 422, "invalid_input")
    assert body["unknown"] and isinstance(body["allowed"], list)
    assert all(name in body["detail"] for name in body["unknown"])


async def test_unknown_query_parameters_on_writes_are_refused(client):
    journey = await design(client)
    resp = await client.post("/v1/sagas?dry_run=1", json={"journey_id": journey["journey_id"]}, headers=A)
    body = await problem(resp, 422, "invalid_input")
    assert body["unknown"] == ["dry_run"] and body["allowed"] == []
    listed = await read_everything(client, None, journey["journey_id"])
    assert listed["/v1/sagas?limit=1000"]["sagas"] == []


async def test_allowed_query_parameters_match_the_openapi_document(client):
    spec = await (await client.get("/openapi.json")).json()
    resp = await client.get("/v1/sagas?bogus=1", headers=A)
    body = await problem(resp, 422, "invalid_input")
    documented = [p["name"] for p in spec["paths"]["/v1/sagas"]["get"]["parameters"] if p["in"] == "query"]
    assert body["allowed"] == sorted(documented)
    ok = await client.get("/v1/sagas?status=COMPLETED&limit=5&journey_type=order_processing", headers=A)
    assert ok.status == 200


async def test_unknown_requirements_keys_are_refused(client):
    resp = await client.post(
        "/v1/journeys", json={"journey_type": "order_processing", "requirements": {"deadline_sec": 5}}, headers=A
    )
    body = await problem(resp, 422, "invalid_input")
    assert "deadline_sec" in body["detail"] and "deadline_s" in body["detail"]
    assert (await (await client.get("/v1/journeys", headers=A)).json())["journeys"] == []
    journey = await design(client, requirements={"deadline_s": 5, "metadata": {"shop": "eu-1"}})
    assert journey["requirements"] == {"metadata": {"shop": "eu-1"}} and journey["deadline_s"] == 5


async def test_values_stored_before_the_rule_never_poison_a_read(client, orch, monkeypatch):
    """Data written by an earlier release (simulated: the door check switched off) stays readable."""
    journey = await design(client)
    good = await start(client, journey["journey_id"], context={"ok": 1})
    monkeypatch.setattr("saga_journey.runtime.inputs.check_value", lambda value, what: value)
    legacy = await orch.execute_saga_journey(
        journey["journey_id"], "user_1", {"blob": b"\x00", "ext": EXT, "n": {1: "x"}}, {"tenant_id": "acme"}
    )
    await orch.advance_saga_step(legacy["saga_id"], step_result={"status": "complete", "at": STAMP},
                                 user_context={"tenant_id": "acme"})
    monkeypatch.undo()
    # JSON marks what it cannot carry; msgpack carries what was stored, as it was stored.
    seen = await read_everything(client, legacy["saga_id"], journey["journey_id"], strict=False)
    sagas = {s["saga_id"]: s for s in seen["/v1/sagas?limit=1000"]["sagas"]}
    assert sagas[good["saga_id"]]["context"] == {"ok": 1}
    assert sagas[legacy["saga_id"]]["context"] == {
        "blob": "<unreadable bytes value>", "ext": "<unreadable ExtType value>", "n": {"1": "x"}
    }
    history = seen[f"/v1/sagas/{legacy['saga_id']}/history"]["events"]
    assert history[-1]["result"]["at"] == "<unreadable Timestamp value>"
