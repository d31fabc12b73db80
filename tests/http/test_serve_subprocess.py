"""`saga-journey serve` as a real subprocess, with webhook compensation handlers served by the test."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from contextlib import closing

import aiohttp
from aiohttp import web

from saga_journey.http.auth import hash_token

TOKEN = "tok-acme-ops"
ORDER = [
    ("create_order", "cancel_order"),
    ("process_payment", "refund_payment"),
    ("reserve_inventory", "release_inventory"),
    ("ship_product", "cancel_shipment"),
]


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hooks:
    """The user's compensation service: records calls; refund_payment fails once with 503."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.three = asyncio.Event()
        self.refund_failures = 1

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await request.json()
        self.calls.append({"name": name, "key": request.headers.get("Idempotency-Key"),
                           "auth": request.headers.get("X-Hook-Secret"), **body})
        if name == "refund_payment" and self.refund_failures:
            self.refund_failures -= 1
            return web.Response(status=503, text="try later")
        if len({c["name"] for c in self.calls}) == 3:
            self.three.set()
        return web.json_response({"ok": True})


async def test_serve_subprocess_webhook_compensation_and_sigterm(tmp_path):
    hooks = Hooks()
    app = web.Application()
    app.router.add_post("/hooks/{name}", hooks.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    hook_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()
    cfg = tmp_path / "saga.toml"
    lines = [
        "[gateway]", "shutdown_timeout_s = 5", "",
        "[[api_keys]]", f'sha256 = "{hash_token(TOKEN)}"', 'tenant_id = "acme"', 'user_id = "ops"',
        'roles = ["admin"]', "",
    ]
    for _, handler in ORDER:
        lines += [f"[webhooks.{handler}]", f'url = "http://127.0.0.1:{hook_port}/hooks/{handler}"',
                  "timeout_s = 5", 'headers = { X-Hook-Secret = "s3cret" }', ""]
    cfg.write_text("\n".join(lines))
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "saga_journey.runtime.cli", "serve", "--create", "--data-dir", str(tmp_path / "data"),
        "--host", "127.0.0.1", "--port", str(port), "--config", str(cfg),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert b"listening on" in line, line + await proc.stderr.read()
        base = f"http://127.0.0.1:{port}"
        h = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(base, headers=h) as s:
            async with s.post("/v1/journeys", json={"journey_type": "order_processing",
                                                    "requirements": {"retry": {"initial_delay_s": 0.01}}}) as r:
                assert r.status == 201, await r.text()
                journey = await r.json()
                assert journey["missing_handlers"] == []
            async with s.post("/v1/sagas", json={"journey_id": journey["journey_id"],
                                                 "context": {"order_id": "o-42"}}) as r:
                saga = await r.json()
            sid = saga["saga_id"]
            for milestone, _ in ORDER[:3]:
                async with s.post(f"/v1/sagas/{sid}/advance", json={"step_result": {
                        "status": "complete", "milestone_id": milestone, "ref": f"{milestone}-ref"}}) as r:
                    assert r.status == 200
            async with s.post(f"/v1/sagas/{sid}/fail", json={"milestone_id": "ship_product",
                                                             "error": "carrier refused"}) as r:
                assert r.status == 200
            await asyncio.wait_for(hooks.three.wait(), 30)
            status = None
            for _ in range(200):  # bounded: the last outcome commits right after the 3rd call
                async with s.get(f"/v1/sagas/{sid}") as r:
                    status = await r.json()
                if status["status"] == "FAILED":
                    break
                await asyncio.sleep(0.05)
            assert status["status"] == "FAILED" and status["compensation_status"] == "succeeded"
            assert status["compensated_milestones"] == ["reserve_inventory", "process_payment", "create_order"]
            async with s.get("/metrics") as r:  # served by the same process, from SagaMetrics
                assert r.status == 200
                exposition = await r.text()
            assert (
                'saga_rollback_duration_seconds_count{journey_type="order_processing",'
                'outcome="compensated"} 1.0'
            ) in exposition
        names = [c["name"] for c in hooks.calls]
        assert names == ["release_inventory", "refund_payment", "refund_payment", "cancel_order"]
        for call in hooks.calls:
            assert call["key"] == f"acme/{sid}/{call['milestone_id']}/compensate"
            assert call["auth"] == "s3cret"
            assert call["saga_id"] == sid and call["context"] == {"order_id": "o-42"}
            assert call["step_result"]["ref"] == f"{call['milestone_id']}-ref"
        assert [c["attempt"] for c in hooks.calls if c["name"] == "refund_payment"] == [1, 2]
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 30)
        out = await proc.stdout.read()
        assert rc == 0 and b"stopped" in out
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await runner.cleanup()
