"""A corrupt record is a permanent server fault: 500 with the quarantine hint, no Retry-After."""

from __future__ import annotations

import asyncio

import lmdb

from saga_journey.http.app import create_app
from saga_journey.runtime import SagaOrchestrator

from .conftest import auth, settings

UC = {"tenant_id": "acme", "user_id": "alice"}


def _flip_snapshot_byte(path: str, saga_id: str) -> None:
    """Damage the stored snapshot of ``saga_id`` (whatever prefix its key carries)."""
    env = lmdb.open(path, max_dbs=16)
    try:
        db = env.open_db(b"sagas")
        with env.begin(write=True) as txn:
            keys = [k for k, _ in txn.cursor(db=db) if k.endswith(saga_id.encode())]
            assert len(keys) == 1, keys
            raw = bytearray(txn.get(keys[0], db=db))
            raw[len(raw) // 2] ^= 0xFF
            txn.put(keys[0], bytes(raw), db=db)
    finally:
        env.close()


async def test_corrupt_snapshot_answers_500_with_the_quarantine_hint(aiohttp_client, tmp_path) -> None:
    path = str(tmp_path / "data")
    loop = asyncio.get_running_loop()
    orch = SagaOrchestrator.open(path)
    journey = await orch.design_saga_journey("plain", {"milestones": ["a", "b"]}, None, UC)
    await orch.execute_saga_journey(journey["journey_id"], "alice", {}, UC, saga_id="order-1")
    await loop.run_in_executor(None, orch.close)
    _flip_snapshot_byte(path, "order-1")

    orch = SagaOrchestrator.open(path)
    try:
        client = await aiohttp_client(create_app(orch, settings()))
        resp = await client.get("/v1/sagas/order-1", headers=auth("acme-admin"))
        body = await resp.json(content_type=None)
        assert resp.status == 500, body
        assert resp.content_type == "application/problem+json"
        assert "Retry-After" not in resp.headers
        assert body["type"].endswith(":corrupt_record") and body["code"] == "corrupt_record"
        assert "saga-journey quarantine --data-dir" in body["hint"]
    finally:
        await loop.run_in_executor(None, orch.close)
