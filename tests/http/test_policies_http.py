"""Policy bounds and internal errors over HTTP: 422 naming the field, never a 500 that wedges."""

from __future__ import annotations

from saga_journey.actors import saga_actor
from saga_journey.runtime.model import ReportStep

from .conftest import auth
from .test_gateway import advance, problem, start

A = auth("acme-admin")
STEPS = [{"id": "reserve", "compensation_handler": "cancel_order"}, {"id": "charge"}]


async def design(client, **requirements):
    body = {"journey_type": "checkout", "requirements": {"milestones": STEPS, **requirements}}
    return await client.post("/v1/journeys", json=body, headers=A)


async def test_out_of_range_policy_is_422_naming_field_value_and_range(client):
    body = await problem(await design(client, retry={"backoff": 1e308}), 422, "invalid_input")
    assert body["field"] == "requirements.retry.backoff" and body["value"] == 1e308
    assert (body["minimum"], body["maximum"]) == (1, 100)
    assert "requirements.retry.backoff" in body["detail"] and "[1, 100]" in body["detail"]
    body = await problem(await design(client, deadline_s=1e20), 422, "invalid_input")
    assert body["field"] == "requirements.deadline_s" and body["value"] == 1e20
    assert (await client.get("/v1/journeys", headers=A)).status == 200


async def test_retryable_reports_near_the_attempt_bound_never_answer_500(client):
    forward = {"max_attempts": 1000, "backoff": 100, "initial_delay_s": 0.001, "max_delay_s": 1}
    resp = await design(client, forward_retry=forward)
    assert resp.status == 201, await resp.text()
    saga = await start(client, (await resp.json())["journey_id"])
    for n in range(1, 165):  # 100.0 ** 155 overflowed: the 156th report answered 500
        r = await advance(client, saga["saga_id"], {"status": "failed", "retryable": True})
        assert r.status == 200, await r.text()
    assert (await r.json())["milestone_attempts"] == 164


async def test_internal_error_answers_500_and_parks_the_saga(client, orch, monkeypatch):
    real = saga_actor.decide

    def broken(journey, state, message):
        if isinstance(message, ReportStep) and state.completed:
            raise ZeroDivisionError("division by zero")
        return real(journey, state, message)

    resp = await design(client)
    saga = await start(client, (await resp.json())["journey_id"])
    sid = saga["saga_id"]
    assert (await advance(client, sid, {"status": "complete"})).status == 200
    monkeypatch.setattr(saga_actor, "decide", broken)
    assert (await advance(client, sid, {"status": "complete"})).status == 500
    parked = await orch.wait_for_saga(sid, {"tenant_id": "acme"}, timeout=10)
    assert parked["parked"] is True
    assert "ZeroDivisionError: division by zero" in parked["parked_reason"]
    status = await (await client.get(f"/v1/sagas/{sid}", headers=A)).json()
    assert status["parked_reason"] == parked["parked_reason"]
    history = await (await client.get(f"/v1/sagas/{sid}/history", headers=A)).json()
    assert history["events"][-1]["type"] == "saga_faulted"
