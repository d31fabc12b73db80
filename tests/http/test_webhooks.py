"""Webhook compensation handlers against a real endpoint served by the test."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from saga_journey.http.settings import WebhookSpec, parse_config
from saga_journey.http.webhooks import build_webhooks
from saga_journey.runtime import SagaOrchestrator

UC = {"tenant_id": "t", "user_id": "u"}


async def run_saga(tmp_path, aiohttp_server, answers: list[int], **spec_kw):
    seen: list[tuple[int, str | None]] = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append((body["attempt"], request.headers.get("Idempotency-Key")))
        return web.Response(status=answers.pop(0) if answers else 200)

    app = web.Application()
    app.router.add_post("/undo", hook)
    server = await aiohttp_server(app)
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        spec = WebhookSpec("undo", str(server.make_url("/undo")), timeout_s=5, **spec_kw)
        orch = SagaOrchestrator.open(str(tmp_path / "d"), handlers=build_webhooks((spec,), session, loop))
        try:
            j = await orch.design_saga_journey(
                "custom",
                {"milestones": [{"id": "a", "compensation_handler": "undo"}, "b"],
                 "retry": {"max_attempts": 4, "initial_delay_s": 0.01}},
                user_context=UC,
            )
            sid = (await orch.execute_saga_journey(j["journey_id"], "u", {"k": 1}, UC))["saga_id"]
            await orch.advance_saga_step(sid, None, None, {"status": "complete"}, UC)
            await orch.advance_saga_step(sid, None, None, {"status": "failed", "error": "boom"}, UC)
            final = await orch.wait_for_saga(sid, UC, timeout=30)
        finally:
            await loop.run_in_executor(None, orch.close)
    return final, seen, sid


async def test_5xx_is_retried_then_succeeds(tmp_path, aiohttp_server):
    final, seen, sid = await run_saga(tmp_path, aiohttp_server, [503, 500])
    assert final["compensation_status"] == "succeeded" and final["compensated_milestones"] == ["a"]
    assert [a for a, _ in seen] == [1, 2, 3]
    assert {k for _, k in seen} == {f"t/{sid}/a/compensate"}


async def test_4xx_stops_retrying(tmp_path, aiohttp_server):
    final, seen, _ = await run_saga(tmp_path, aiohttp_server, [400])
    assert final["status"] == "FAILED" and final["compensation_status"] == "failed"
    assert "answered 400" in final["compensation_error"]
    assert final["parked_reason"].startswith("non-retryable error from handler 'undo': ")
    assert "answered 400" in final["parked_reason"]
    assert [a for a, _ in seen] == [1]


async def test_4xx_retried_when_configured(tmp_path, aiohttp_server):
    final, seen, _ = await run_saga(tmp_path, aiohttp_server, [404, 429], retry_client_errors=True)
    assert final["compensation_status"] == "succeeded"
    assert [a for a, _ in seen] == [1, 2, 3]


def test_config_parsing_rejects_bad_input():
    import pytest

    from saga_journey.runtime.errors import InvalidInputError

    cfg = parse_config({
        "gateway": {"max_body_bytes": 2048},
        "runtime": {"reply_timeout_s": 5},
        "api_keys": [{"sha256": "a" * 64, "tenant_id": "t", "user_id": "u", "roles": ["write"]}],
        "webhooks": {"undo": {"url": "http://127.0.0.1:1/x", "headers": {"X-A": "b"}}},
    })
    assert cfg.gateway.max_body_bytes == 2048 and cfg.runtime.reply_timeout_s == 5
    assert cfg.gateway.webhooks[0].headers == {"X-A": "b"}
    for bad in (
        {"gateway": {"max_body_bytes": -1}},
        {"gateway": {"nope": 1}},
        {"api_keys": [{"sha256": "xyz", "tenant_id": "t", "user_id": "u"}]},
        {"api_keys": [{"sha256": "a" * 64, "tenant_id": "t", "user_id": "u", "roles": ["root"]}]},
        {"webhooks": {"undo": {"url": "ftp://x"}}},
        {"webhooks": {"undo": {"url": "http://x", "headers": {"X": "a\r\nb"}}}},
        {"runtime": {"reply_timeout_s": "5"}},
    ):
        with pytest.raises(InvalidInputError):
            parse_config(bad)
