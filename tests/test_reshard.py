"""``saga-journey reshard`` (persistence/reshard.py): a closed store copied into a new sharded
folder, then served from it: every saga as it was, idempotent retries replayed, timers firing,
owed compensations resuming; and the refusals, which leave nothing behind."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from saga_journey.persistence import reshard as reshard_mod
from saga_journey.persistence.lmdb_backend import LmdbBackend
from saga_journey.persistence.ports import StoreOptions
from saga_journey.persistence.shard_layout import read_layout
from saga_journey.persistence.shard_map import saga_shard
from saga_journey.persistence.sharded_store import ShardedStore
from saga_journey.runtime import ManualClock, SagaOrchestrator
from saga_journey.runtime.cli import main
from saga_journey.runtime.errors import StorageError

UC = {"tenant_id": "acme", "user_id": "ops"}
UC2 = {"tenant_id": "globex", "user_id": "ops"}
STEPS = [
    {"id": "reserve", "compensation_handler": "undo_reserve"},
    {"id": "charge", "compensation_handler": "undo_charge", "timeout_s": 10},
    {"id": "ship", "compensation_handler": "undo_ship"},
]


class Handlers:
    """``undo_charge`` fails while ``charge_down``; ``undo_broken`` always fails."""

    def __init__(self) -> None:
        self.charge_down = True
        self.calls: list[str] = []

    def all(self) -> dict[str, Any]:
        def ok(name: str) -> Any:
            def run(ctx: Any) -> None:
                self.calls.append(f"{name}:{ctx.saga_id}")
            return run

        def charge(ctx: Any) -> None:
            self.calls.append(f"undo_charge:{ctx.saga_id}")
            if self.charge_down:
                raise ConnectionError("payments down")

        def broken(ctx: Any) -> None:
            raise ConnectionError("never works")

        return {"undo_reserve": ok("undo_reserve"), "undo_ship": ok("undo_ship"),
                "undo_charge": charge, "undo_broken": broken}


def report(orch: SagaOrchestrator, sid: str, status: str = "complete", uc: dict[str, str] = UC, **kw: Any) -> Any:
    return orch.advance_saga_step_sync(sid, None, "u1", {"status": status, **kw}, uc)


def fill(path: Path, clock: ManualClock, handlers: Handlers, **open_kw: Any) -> dict[str, Any]:
    """A folder filled through the runtime; returns what the tests look up again."""
    orch = SagaOrchestrator.open(str(path), clock=clock, handlers=handlers.all(), **open_kw)
    try:
        v1 = orch.design_saga_journey_sync("checkout", {"milestones": STEPS}, user_context=UC,
                                           journey_id="checkout", idempotency_key="design-v1")
        v2 = orch.design_saga_journey_sync(
            "checkout", {"milestones": STEPS, "retry": {"max_attempts": 5, "initial_delay_s": 100, "backoff": 1}},
            user_context=UC, journey_id="checkout")
        assert v2["version"] == 2
        broken = orch.design_saga_journey_sync(
            "fragile", {"milestones": [{"id": "a", "compensation_handler": "undo_broken"}, {"id": "b"}],
                        "retry": {"max_attempts": 1}}, user_context=UC)
        other = orch.design_saga_journey_sync("checkout", {"milestones": STEPS}, user_context=UC2,
                                              journey_id="checkout")
        sagas: dict[str, tuple[str, dict[str, str]]] = {}

        def start(name: str, journey: str, uc: dict[str, str] = UC, **kw: Any) -> str:
            sid = orch.execute_saga_journey_sync(journey, "u1", {"n": name}, uc, **kw)["saga_id"]
            sagas[name] = (sid, uc)
            return sid

        done = start("completed", "checkout", journey_version=1, idempotency_key="create-completed")
        for _ in range(3):
            report(orch, done)
        failed = start("failed", "checkout", journey_version=1)
        report(orch, failed)
        report(orch, failed, "failed", error="card declined", idempotency_key="fail-once")
        parked = start("parked", broken["journey_id"])
        report(orch, parked)
        report(orch, parked, "failed", error="b broke")
        comp = start("compensating", "checkout", idempotency_key="create-comp")  # v2: undo_charge retries in 100 s
        report(orch, comp)
        report(orch, comp)
        orch.compensate_saga_sync(comp, "customer cancelled", UC, idempotency_key="abort-comp")
        timed = start("timer", "checkout", journey_version=1, saga_id="order-timer")
        report(orch, timed)  # charge must report within 10 s
        start("fresh", "checkout", saga_id="order-fresh", idempotency_key="create-fresh")
        start("other-tenant", "checkout", UC2, saga_id="order-timer")  # same id, another tenant
        for i in range(20):
            start(f"bulk{i}", "checkout", journey_version=1)
        state = {name: (orch.get_saga_status_sync(sid, uc), orch.get_saga_execution_history_sync(sid, uc))
                 for name, (sid, uc) in sagas.items()}
        assert state["compensating"][0]["status"] == "COMPENSATING"
        assert state["parked"][0]["status"] == "FAILED" and state["parked"][0]["compensation_status"] == "failed"
        assert state["failed"][0]["compensation_status"] == "succeeded"
        assert state["completed"][0]["status"] == "COMPLETED"
        assert state["timer"][0]["milestone_due_at"] is not None
        counts = orch.store.count_by_status(), orch.store.count_compensation_failed()
    finally:
        orch.close()
    return {"sagas": sagas, "state": state, "v1": v1, "broken": broken, "other": other, "counts": counts}


def folder_digest(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file() and p.name != "saga-journey.lock"}


def check_served(dest: Path, clock: ManualClock, handlers: Handlers, filled: dict[str, Any]) -> None:
    """Opened as a sharded store, every saga is as it was; retries replay; timers and owed work run."""
    orch = SagaOrchestrator.open(store=f"lmdb:{dest}", clock=clock, handlers=handlers.all(), owned_shards=None)
    try:
        assert isinstance(orch.store, ShardedStore)
        for name, (sid, uc) in filled["sagas"].items():
            status, history = filled["state"][name]
            got = orch.get_saga_status_sync(sid, uc)
            if name != "compensating":  # resumed on open: it may have moved on (below)
                assert (got["status"], got["version"]) == (status["status"], status["version"]), name
                assert orch.get_saga_execution_history_sync(sid, uc) == history, name
        assert orch.store.count_by_status() == filled["counts"][0]
        assert orch.store.count_compensation_failed() == filled["counts"][1]
        # idempotent retries find their records in the new shards
        sid = filled["sagas"]["completed"][0]
        again = orch.execute_saga_journey_sync("checkout", "u1", {"n": "completed"}, UC, journey_version=1,
                                               idempotency_key="create-completed")
        assert again["saga_id"] == sid and again["replayed"] is True
        comp_sid = filled["sagas"]["compensating"][0]
        again = orch.execute_saga_journey_sync("checkout", "u1", {"n": "compensating"}, UC,
                                               idempotency_key="create-comp")
        assert again["saga_id"] == comp_sid and again["replayed"] is True
        again = orch.compensate_saga_sync(comp_sid, "customer cancelled", UC, idempotency_key="abort-comp")
        assert again["replayed"] is True
        fresh = orch.execute_saga_journey_sync("checkout", "u1", {"n": "fresh"}, UC, saga_id="order-fresh",
                                               idempotency_key="create-fresh")
        assert fresh["saga_id"] == "order-fresh" and fresh["replayed"] is True
        design = orch.design_saga_journey_sync("checkout", {"milestones": STEPS}, user_context=UC,
                                               journey_id="checkout", idempotency_key="design-v1")
        assert design["version"] == 1 and design["replayed"] is True
        assert orch.design_saga_journey_sync("checkout", {"milestones": STEPS}, user_context=UC,
                                             journey_id="checkout")["version"] == 3
        # the pending milestone timeout fires
        timer_sid = filled["sagas"]["timer"][0]
        clock.advance(11)
        final = orch.wait_for_saga_sync(timer_sid, UC, timeout=10)
        assert final["status"] == "FAILED" and final["failure"]["kind"] == "timeout"
        other = orch.get_saga_status_sync("order-timer", UC2)
        assert other["status"] == "IN_PROGRESS"  # the other tenant's saga of the same id: untouched
        # the owed compensation resumes and runs once the payments are back
        comp_sid = filled["sagas"]["compensating"][0]
        handlers.charge_down = False
        clock.advance(200)
        final = orch.wait_for_saga_sync(comp_sid, UC, timeout=10)
        assert final["status"] == "FAILED" and final["compensation_status"] == "succeeded"
        assert f"undo_reserve:{comp_sid}" in handlers.calls
    finally:
        orch.close()


def test_a_one_process_folder_resharded_into_four_shards_serves_every_saga(tmp_path: Path, capsys: Any) -> None:
    clock, handlers = ManualClock(), Handlers()
    src, dest = tmp_path / "src", tmp_path / "dest"
    filled = fill(src, clock, handlers)
    before = folder_digest(src)
    assert main(["reshard", "--data-dir", str(src), "--into", str(dest), "--shards", "4", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert folder_digest(src) == before  # nothing written to the source
    assert summary["shards"] == 4 and summary["source_shards"] is None
    assert summary["sagas"] == len(filled["sagas"]) and sum(summary["sagas_per_shard"]) == summary["sagas"]
    assert summary["journeys"] == 4 and summary["orphan_idempotency_records_skipped"] == 0
    # design-v1, create-completed, create-comp and abort-comp (two of one saga), create-fresh
    assert summary["idempotency_records"] == 5
    layout = read_layout(str(dest))
    assert layout is not None and layout.shards == 4
    assert not [p for p in tmp_path.iterdir() if ".reshard-" in p.name]
    # each saga is in the shard saga_shard picks
    for sid, uc in filled["sagas"].values():
        shard = saga_shard(uc["tenant_id"], sid, 4)
        assert (dest / f"shard-{shard:03d}" / "data.mdb").is_file()
    store = LmdbBackend(str(dest)).open_read_only()
    assert isinstance(store, ShardedStore)
    try:
        for sid, uc in filled["sagas"].values():
            key = f"{uc['tenant_id']}/{sid}"
            assert store._stores[saga_shard(uc["tenant_id"], sid, 4)].load_saga(key) is not None
        # the new feed lies above every old position: an old Last-Event-ID is below the floor
        floors = store.feed_vector_floor()
        assert set(floors) == {summary["feed_floor"]} and summary["feed_floor"] > 1
        ends = store.feed_vector_end()
        assert sum(e - summary["feed_floor"] for e in ends if e) == summary["history_entries"]
        assert store.oldest_active().keys() == {"IN_PROGRESS", "COMPENSATING"}
    finally:
        store.close()
    assert main(["verify", "--data-dir", str(dest)]) == 0
    check_served(dest, clock, handlers, filled)


def test_the_stuck_signal_keeps_when_sagas_entered_their_status(tmp_path: Path) -> None:
    clock, handlers = ManualClock(), Handlers()
    src = tmp_path / "src"
    orch = SagaOrchestrator.open(str(src), clock=clock, handlers=handlers.all())
    try:
        orch.design_saga_journey_sync("checkout", {"milestones": STEPS}, user_context=UC, journey_id="c")
        sid = orch.execute_saga_journey_sync("c", "u1", {}, UC)["saga_id"]
        clock.advance(50)
        report(orch, sid)  # updated later, still IN_PROGRESS since it started
        oldest = orch.store.oldest_active()
    finally:
        orch.close()
    reshard_mod.reshard(str(src), str(tmp_path / "dest"), 2)
    store = LmdbBackend(str(tmp_path / "dest")).open_read_only()
    try:
        assert store.oldest_active() == pytest.approx(oldest)
    finally:
        store.close()


def test_a_sharded_folder_resharded_from_four_to_eight_shards(tmp_path: Path) -> None:
    clock, handlers = ManualClock(), Handlers()
    src, four, eight = tmp_path / "src", tmp_path / "four", tmp_path / "eight"
    filled = fill(src, clock, handlers, shards=4)
    assert read_layout(str(src)) is not None
    worker = LmdbBackend(str(src)).open(StoreOptions(owned_shards=frozenset({1})))  # one worker's shards
    try:
        with pytest.raises(StorageError, match="in use by another process"):
            reshard_mod.reshard(str(src), str(four), 4)
    finally:
        worker.close()
    assert not four.exists()
    summary = reshard_mod.reshard(str(src), str(four), 4)
    assert summary.source_shards == 4
    before = folder_digest(four)
    summary = reshard_mod.reshard(str(four), str(eight), 8)
    assert folder_digest(four) == before
    assert summary.source_shards == 4 and summary.shards == 8 and summary.sagas == len(filled["sagas"])
    assert main(["verify", "--data-dir", str(eight)]) == 0
    check_served(eight, clock, handlers, filled)


@pytest.fixture
def small_src(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    orch = SagaOrchestrator.open(str(src), handlers=Handlers().all())
    try:
        orch.design_saga_journey_sync("checkout", {"milestones": STEPS}, user_context=UC, journey_id="c")
        for _ in range(5):
            orch.execute_saga_journey_sync("c", "u1", {}, UC)
    finally:
        orch.close()
    return src


def test_refusals_exit_2_and_leave_nothing(tmp_path: Path, small_src: Path, capsys: Any) -> None:
    before = folder_digest(small_src)
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    assert main(["reshard", "--data-dir", str(small_src), "--into", str(full)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert os.listdir(full) == ["notes.txt"]

    assert main(["reshard", "--data-dir", str(tmp_path / "nope"), "--into", str(tmp_path / "d1")]) == 2
    assert "holds no saga-journey store" in capsys.readouterr().err
    assert not (tmp_path / "d1").exists() and not (tmp_path / "nope").exists()

    assert main(["reshard", "--data-dir", str(small_src), "--into", str(small_src / "inner")]) == 2
    assert "inside the source" in capsys.readouterr().err

    assert main(["reshard", "--data-dir", str(small_src), "--into", str(tmp_path / "d2"), "--shards", "0"]) == 2
    assert "shards must be an integer" in capsys.readouterr().err

    running = SagaOrchestrator.open(str(small_src), handlers=Handlers().all())
    try:
        assert main(["reshard", "--data-dir", str(small_src), "--into", str(tmp_path / "d3")]) == 2
        assert "in use by another process" in capsys.readouterr().err
    finally:
        running.close()
    assert not (tmp_path / "d3").exists()
    assert not [p for p in tmp_path.iterdir() if ".reshard-" in p.name]
    assert folder_digest(small_src) == before

    # a source that is absent and a served one give no destination; an empty one is filled
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["reshard", "--store", f"lmdb:{small_src}", "--into", f"lmdb:{empty}", "--shards", "2"]) == 0
    assert (empty / "shards.json").is_file()
    assert "5 sagas" in capsys.readouterr().out


def test_an_interrupted_reshard_leaves_no_folder_that_looks_complete(
        tmp_path: Path, small_src: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "dest"
    seen: list[bool] = []
    real = ShardedStore.write

    def failing(self: ShardedStore, writes: Any) -> None:
        tmp = self.layout.folder
        seen.append(os.path.exists(os.path.join(tmp, "shards.json")) or dest.exists())
        if any(getattr(w, "saga_id", None) for w in writes):
            raise StorageError("disk on fire")
        real(self, writes)

    monkeypatch.setattr(ShardedStore, "write", failing)
    with pytest.raises(StorageError, match="disk on fire"):
        reshard_mod.reshard(str(small_src), str(dest), 4)
    assert seen and not any(seen)  # while it copies: no shards.json, nothing at the destination
    assert not dest.exists()
    assert not [p for p in tmp_path.iterdir() if ".reshard-" in p.name]
    monkeypatch.setattr(ShardedStore, "write", real)
    assert reshard_mod.reshard(str(small_src), str(dest), 4).sagas == 5  # a second run succeeds


def test_an_event_id_from_before_the_reshard_is_answered_410(tmp_path: Path, small_src: Path) -> None:
    from saga_journey.http.events import check_resumable
    from saga_journey.http.problems import Problem

    old = LmdbBackend(str(small_src)).open_read_only()
    try:
        old_end = old.feed_end()
    finally:
        old.close()
    assert old_end == 5
    dest = tmp_path / "one"
    assert reshard_mod.reshard(str(small_src), str(dest), 1).feed_floor == old_end + 1
    orch = SagaOrchestrator.open(store=f"lmdb:{dest}", handlers=Handlers().all())
    try:
        for after in (0, old_end):
            with pytest.raises(Problem) as err:
                check_resumable(orch, after)
            assert err.value.status == 410
        end = orch.store.feed_end()
        assert end == old_end + 1 + 5  # the copied histories, above the floor
        check_resumable(orch, end)  # an id of the new feed resumes
        rows, _ = orch.store.feed_scan(old_end + 1)
        assert len(rows) == 5
        orch.execute_saga_journey_sync("c", "u1", {}, UC)
        assert orch.store.feed_end() == end + 1
    finally:
        orch.close()


def test_a_reshard_killed_mid_copy_leaves_no_store_at_the_destination(tmp_path: Path, small_src: Path) -> None:
    import subprocess
    import sys

    dest = tmp_path / "dest"
    env = {**os.environ, "SAGA_JOURNEY_CRASH": "store.after_commit:2"}  # SIGKILL after a shard's commit
    proc = subprocess.run([sys.executable, "-m", "saga_journey.runtime.cli", "reshard", "--data-dir",
                           str(small_src), "--into", str(dest), "--shards", "4"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert not dest.exists() and not LmdbBackend(str(dest)).exists()
    partial = [p for p in tmp_path.iterdir() if ".reshard-" in p.name]
    assert len(partial) == 1 and read_layout(str(partial[0])) is None  # no shards.json: not a store
    # the source's locks died with the process: a second run succeeds
    assert main(["reshard", "--data-dir", str(small_src), "--into", str(dest), "--shards", "4"]) == 0
    assert main(["verify", "--data-dir", str(dest)]) == 0
