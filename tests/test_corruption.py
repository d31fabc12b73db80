"""Corrupt records are quarantined: reported, counted, listed; every other saga recovers and
the process never crash-loops on them (recovery, activation, list_sagas survive)."""

from __future__ import annotations

import subprocess
import sys
import threading

import lmdb
import pytest

from saga_journey.persistence.records import encode_record
from saga_journey.runtime import CorruptRecordError, SagaOrchestrator

UC = {"tenant_id": "default", "user_id": "ops"}


def _journey(orch: SagaOrchestrator) -> str:
    j = orch.design_saga_journey_sync(
        "q", {"milestones": [{"id": m, "compensation_handler": "undo"} for m in ("a", "b", "c")]},
        None, UC, journey_id="q")
    return j["journey_id"]


def _poke(path: str, saga_id: str, value: bytes | None = None) -> None:
    """Overwrite (or flip a byte of) a stored snapshot, as disk or software corruption would."""
    env = lmdb.open(path, max_dbs=16)
    try:
        db = env.open_db(b"sagas")
        with env.begin(write=True) as txn:
            raw = bytearray(txn.get(saga_id.encode(), db=db))
            if value is None:
                raw[len(raw) // 2] ^= 0xFF
                value = bytes(raw)
            txn.put(saga_id.encode(), value, db=db)
    finally:
        env.close()


@pytest.mark.parametrize("kind", ["crc", "malformed"])
def test_corrupt_snapshot_is_quarantined_and_others_recover(tmp_path, kind) -> None:
    path = str(tmp_path / "data")
    gate = threading.Event()
    calls: list[tuple[str, str]] = []

    def undo(ctx) -> None:
        calls.append((ctx.saga_id, ctx.milestone_id))
        if not gate.is_set():
            raise RuntimeError("downstream unavailable")

    orch = SagaOrchestrator.open(path, handlers={"undo": undo})
    jid = _journey(orch)
    ids = []
    for i in range(4):
        sid = f"s{i}"
        orch.execute_saga_journey_sync(jid, "u", {}, UC, saga_id=sid)
        orch.advance_saga_step_sync(sid, jid, "u", {"status": "complete", "milestone_id": "a"}, UC)
        ids.append(sid)
    done = "s3"
    orch.advance_saga_step_sync(done, jid, "u", {"status": "complete", "milestone_id": "b"}, UC)
    for sid in ids[:3]:  # these owe compensation when the process goes away
        orch.advance_saga_step_sync(sid, jid, "u", {"status": "failed", "error": "x"}, UC)
    orch.close()

    bad = "s1"
    _poke(path, f"default/{bad}", None if kind == "crc" else encode_record({"saga_id": bad, "tenant_id": "default", "status": "COMPENSATING"}))
    gate.set()
    before = len(calls)
    orch = SagaOrchestrator.open(path, handlers={"undo": undo})  # must not raise
    try:
        for sid in ("s0", "s2"):
            assert orch.wait_for_saga_sync(sid, UC, timeout=10)["status"] == "FAILED"
        listed = {s["saga_id"] for s in orch.list_sagas_sync(user_context=UC)["sagas"]}
        assert listed == {"s0", "s2", "s3"}
        with pytest.raises(CorruptRecordError):
            orch.get_saga_status_sync(bad, UC)
        with pytest.raises(CorruptRecordError):
            orch.advance_saga_step_sync(bad, jid, "u", {"status": "complete"}, UC)
        assert orch.stats()["store"]["quarantined_records"] == 1
        assert [q["where"] for q in orch.store.quarantined()] == [f"sagas/default/{bad}"]
        # The healthy in-progress saga still moves.
        assert orch.advance_saga_step_sync(done, jid, "u", {"status": "complete"}, UC)["status"] == "COMPLETED"
    finally:
        orch.close()
    assert all(sid != bad for sid, _ in calls[before:])  # its owed work is not run blindly

    cli = [sys.executable, "-m", "saga_journey.runtime.cli"]
    out = subprocess.run([*cli, "quarantine", "--data-dir", path], capture_output=True, text=True)
    if kind == "crc":
        assert out.returncode == 1 and f"sagas/default/{bad}" in out.stdout, out
    ver = subprocess.run([*cli, "verify", "--data-dir", path], capture_output=True, text=True)
    assert ver.returncode == 1, ver.stdout


def test_verify_passes_on_a_healthy_store_and_refuses_an_open_one(tmp_path) -> None:
    path = str(tmp_path / "data")
    orch = SagaOrchestrator.open(path, handlers={"undo": lambda ctx: None})
    jid = _journey(orch)
    orch.execute_saga_journey_sync(jid, "u", {}, UC, saga_id="x")
    cli = [sys.executable, "-m", "saga_journey.runtime.cli", "verify", "--data-dir", path]
    busy = subprocess.run(cli, capture_output=True, text=True)
    assert busy.returncode == 2 and "open in another process" in busy.stderr
    orch.close()
    ok = subprocess.run(cli, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout
    assert "0 corrupt, 0 inconsistent" in ok.stdout


def test_reused_packer_starts_clean_after_a_failed_pack() -> None:
    """encode_record reuses one msgpack Packer per thread: a failure must not leak into the next record."""
    import msgpack
    import pytest as _pytest

    from saga_journey.persistence.records import decode_record, encode_record, pack

    for bad in ({"a": object()}, [2**70], {"deep": [[[[1, {"x": b"\xff" * 3, "y": object()}]]]]}):
        with _pytest.raises((TypeError, ValueError, OverflowError)):
            encode_record(bad)
        assert decode_record(encode_record({"ok": [1, "two"]})) == {"ok": [1, "two"]}
        assert pack({"b": 2}) == msgpack.packb({"b": 2}, use_bin_type=True)
