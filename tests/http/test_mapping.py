"""Error mapping, admission control and the metrics hook, without the runtime in the way."""

from __future__ import annotations

import json

import pytest
from aiohttp import web

from saga_journey.http.admission import Admission
from saga_journey.http.app import GATEWAY, create_app
from saga_journey.http.problems import Problem, from_saga_error
from saga_journey.runtime import errors as e

from .conftest import auth, settings


@pytest.mark.parametrize(
    ("exc", "status", "retry"),
    [
        (e.NotFoundError("x"), 404, False),
        (e.InvalidInputError("x"), 422, False),
        (e.IdempotencyKeyReusedError("x"), 422, False),
        (e.HandlerMissingError("x", missing=["h"]), 422, False),
        (e.InvalidTransitionError("x"), 409, False),
        (e.ConflictError("x"), 409, False),
        (e.RequestInFlightError("x"), 409, False),
        (e.OverloadedError("x"), 503, True),
        (e.StorageError("x"), 503, True),
        (e.CorruptRecordError("x"), 500, False),
        (e.RuntimeClosedError("x"), 503, True),
    ],
)
def test_saga_errors_map_to_problems(exc, status, retry):
    resp = from_saga_error(exc, 2)
    assert resp.status == status and resp.content_type == "application/problem+json"
    body = json.loads(resp.body)
    assert body["code"] == exc.code and body["status"] == status and body["detail"] == "x"
    assert ("Retry-After" in resp.headers) is retry
    if retry:
        assert resp.headers["Retry-After"] == "2"


def test_admission_bounds():
    adm = Admission(max_in_flight=2, max_per_saga=1, retry_after_s=3)
    adm.enter()
    adm.enter()
    with pytest.raises(Problem) as info:
        adm.enter()
    assert info.value.status == 429 and info.value.headers == {"Retry-After": "3"}
    adm.leave()
    adm.enter()
    with adm.saga("t1", "s1"):
        with pytest.raises(Problem):
            with adm.saga("t1", "s1"):
                pass
        with adm.saga("t1", "s2"), adm.saga("t2", "s1"):  # another tenant's s1: its own queue
            assert adm.queued("t1", "s1") == adm.queued("t1", "s2") == adm.queued("t2", "s1") == 1
    assert adm.queued("t1", "s1") == adm.queued("t2", "s1") == 0


async def test_metrics_handler_is_mounted_unauthenticated(aiohttp_client, orch):
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text="saga_up 1\n")

    client = await aiohttp_client(create_app(orch, settings(), metrics_handler=metrics))
    resp = await client.get("/metrics")
    assert resp.status == 200 and await resp.text() == "saga_up 1\n"
    doc = await (await client.get("/openapi.json")).json()
    assert "/metrics" in doc["paths"]


async def test_in_flight_limit_answers_429(make_client):
    client = await make_client(max_in_flight=1)
    gateway_admission = client.server.app[GATEWAY].admission
    gateway_admission.enter()  # occupy the only slot, as a slow request would
    try:
        resp = await client.get("/v1/sagas", headers=auth("acme-admin"))
        assert resp.status == 429 and resp.headers["Retry-After"] == "1"
        assert (await resp.json())["code"] == "too_many_requests"
        assert (await client.get("/healthz")).status == 200  # operations endpoints bypass it
    finally:
        gateway_admission.leave()
    assert (await client.get("/v1/sagas", headers=auth("acme-admin"))).status == 200


async def test_list_sagas_paginates(client):
    h = auth("acme-admin")
    journey = await (await client.post("/v1/journeys", json={"journey_type": "order_processing"}, headers=h)).json()
    ids = set()
    for _ in range(5):
        r = await client.post("/v1/sagas", json={"journey_id": journey["journey_id"]}, headers=h)
        ids.add((await r.json())["saga_id"])
    seen, cursor = [], None
    for _ in range(10):
        url = "/v1/sagas?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await (await client.get(url, headers=h)).json()
        seen += [s["saga_id"] for s in page["sagas"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5


def test_json_replies_refuse_and_accept_what_json_dumps_does() -> None:
    """orjson renders replies; what json.dumps(allow_nan=False) refuses (then marked by render)
    is refused too, NaN included (orjson alone would write null)."""
    import json as _json

    import pytest as _pytest

    from saga_journey.http.codec import dumps

    for ok in ({"a": None, "b": [1, 2.5, "é"], "c": {"d": True}}, {1: "int key"}, {"big": 2**70}):
        assert _json.loads(dumps(ok)) == _json.loads(_json.dumps(ok))
    for bad in ({"a": float("nan")}, {"a": [None, float("inf")]}, {"a": {"b": -float("inf")}}):
        with _pytest.raises(ValueError):
            dumps(bad)
