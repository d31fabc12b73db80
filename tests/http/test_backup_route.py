"""POST /v1/admin/backup: a consistent copy while writes run; admin only; the destination is checked."""

from __future__ import annotations

import asyncio

from saga_journey.persistence.lmdb_store import LmdbStore
from saga_journey.persistence.recent import Query
from saga_journey.persistence.verify import verify

from .conftest import auth

ADMIN = auth("acme-admin")


async def test_backup_while_writes_run_opens_and_verifies(client, tmp_path):
    r = await client.post("/v1/journeys", json={"journey_type": "order_processing", "journey_id": "orders"},
                          headers=ADMIN)
    assert r.status == 201
    stop = asyncio.Event()
    started: list[str] = []

    async def writer() -> None:
        i = 0
        while not stop.is_set():
            sid = f"b-{i}"
            r = await client.post("/v1/sagas", json={"journey_id": "orders", "saga_id": sid}, headers=ADMIN)
            assert r.status == 201
            started.append(sid)
            i += 1

    task = asyncio.create_task(writer())
    while len(started) < 20:
        await asyncio.sleep(0.01)
    dest = tmp_path / "backup"
    r = await client.post("/v1/admin/backup", json={"dest": str(dest)}, headers=ADMIN)
    body = await r.json()
    at_backup = len(started)
    stop.set()
    await task
    assert r.status == 200, body
    assert body["dest"] == str(dest) and body["bytes"] > 0 and body["seconds"] >= 0
    report = verify(str(dest))
    assert report.ok, report.to_dict()
    with LmdbStore(str(dest)) as store:
        copied = store.find_sagas(Query("acme"), limit=1000)[0]
    assert 20 <= len(copied) <= at_backup + 1  # a consistent point in the middle of the writes


async def test_backup_refuses_a_folder_with_files_and_non_admins(client, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    r = await client.post("/v1/admin/backup", json={"dest": str(busy)}, headers=ADMIN)
    assert r.status == 409
    r = await client.post("/v1/admin/backup", json={"dest": str(tmp_path / "b")}, headers=auth("globex-writer"))
    assert r.status == 403
    for dest in ("", "relative/folder"):  # a relative path would land in the server's cwd
        r = await client.post("/v1/admin/backup", json={"dest": dest}, headers=ADMIN)
        assert r.status == 422, dest
    empty = tmp_path / "empty"
    empty.mkdir()
    r = await client.post("/v1/admin/backup", json={"dest": str(empty)}, headers=ADMIN)
    assert r.status == 200
