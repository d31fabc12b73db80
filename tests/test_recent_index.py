"""The list index and the commit feed: kept by the writer, rebuilt for older folders, checked by verify."""

from __future__ import annotations

import lmdb

from saga_journey.persistence import recent
from saga_journey.persistence.verify import verify
from saga_journey.runtime import SagaOrchestrator

UC = {"tenant_id": "acme", "user_id": "alice"}


def _folder(path: str, n: int = 3) -> None:
    orch = SagaOrchestrator.open(path)
    try:
        orch.design_saga_journey_sync("plain", {"milestones": ["a", "b"]}, user_context=UC, journey_id="orders")
        for i in range(n):
            orch.execute_saga_journey_sync("orders", "alice", {}, UC, saga_id=f"r-{i}")
        orch.advance_saga_step_sync("r-0", None, None, {"status": "complete"}, UC)
        assert orch.store.feed_end() == n + 1  # one position per history entry
    finally:
        orch.close()


def _edit(path: str, fn) -> None:
    env = lmdb.open(path, max_dbs=16)
    try:
        with env.begin(write=True) as txn:
            fn(txn, env.open_db(b"recent", txn=txn), env.open_db(b"feed", txn=txn))
    finally:
        env.close()


def test_verify_reports_a_missing_index_entry_and_a_bad_feed_entry(tmp_path) -> None:
    path = str(tmp_path / "data")
    _folder(path)
    assert verify(path).ok, verify(path).to_dict()

    def damage(txn, rec, feed) -> None:
        key = next(k for k in txn.cursor(db=rec).iternext(values=False) if k.startswith(recent.TENANT))
        txn.delete(key, db=rec)
        first = txn.cursor(db=feed)
        assert first.first()
        txn.put((99).to_bytes(8, "big"), first.value(), db=feed)  # a live entry named twice

    _edit(path, damage)
    report = verify(path)
    assert any(line.startswith("recent ") and "missing or stale" in line for line in report.inconsistent)
    assert any(line.startswith("feed 99 repeats") for line in report.inconsistent)


def test_a_folder_without_the_index_gets_it_rebuilt_on_open(tmp_path) -> None:
    path = str(tmp_path / "data")
    _folder(path)

    def drop(txn, rec, feed) -> None:
        txn.drop(rec, delete=True)

    _edit(path, drop)
    orch = SagaOrchestrator.open(path)
    try:
        page = orch.list_sagas_sync(user_context=UC, order="oldest")
        assert [s["saga_id"] for s in page["sagas"]] == ["r-1", "r-2", "r-0"]
    finally:
        orch.close()
    assert verify(path).ok, verify(path).to_dict()
