"""Issue 9, defect 4: a header that decides identity may appear only once per request.

A proxy that picks the last copy must never disagree with us about who the caller is, so a
request carrying two is refused before any credential is looked at.
"""

from __future__ import annotations

from multidict import CIMultiDict

from .test_gateway import A, design, problem

ACME = A["Authorization"]
GLOBEX = "Bearer globex-admin"


async def test_two_authorization_headers_are_refused(client, orch):
    body = {"journey_type": "order_processing", "journey_id": "j-dup"}
    for first, second in ((ACME, GLOBEX), (GLOBEX, ACME), (ACME, ACME)):
        headers = CIMultiDict([("Authorization", first), ("Authorization", second)])
        resp = await client.post("/v1/journeys", json=body, headers=headers)
        detail = (await problem(resp, 400, "repeated_header"))["detail"]
        assert "Authorization" in detail
        resp = await client.get("/v1/journeys", headers=headers)
        await problem(resp, 400, "repeated_header")
    # Nothing was stored under either tenant.
    assert orch.list_journeys_sync({"tenant_id": "acme"}) == []
    assert orch.list_journeys_sync({"tenant_id": "globex"}) == []
    # One header still works.
    resp = await client.get("/v1/journeys", headers=A)
    assert resp.status == 200


async def test_two_idempotency_keys_are_refused(client, orch):
    journey = await design(client)
    headers = CIMultiDict(
        [("Authorization", ACME), ("Idempotency-Key", "k1"), ("Idempotency-Key", "k2")]
    )
    resp = await client.post("/v1/sagas", json={"journey_id": journey["journey_id"]}, headers=headers)
    detail = (await problem(resp, 400, "repeated_header"))["detail"]
    assert "Idempotency-Key" in detail
    assert orch.list_sagas_sync(user_context={"tenant_id": "acme"})["sagas"] == []
