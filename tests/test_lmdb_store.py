"""LmdbStore against a real LMDB environment in tmp_path."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import threading
import zlib
from collections import Counter
from contextlib import contextmanager
from typing import Any, Iterator

import lmdb
import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saga_journey.persistence import (
    JourneyWrite,
    LmdbStore,
    SagaStore,
    SagaWrite,
    decode_record,
    encode_record,
)
from saga_journey.persistence.keys import scoped_key
from saga_journey.persistence.recent import Query
from saga_journey.persistence.records import SCHEMA_VERSION
from saga_journey.runtime.errors import CorruptRecordError, InvalidInputError, StorageError

WAIT = 30  # seconds; only a safety net so a broken store fails instead of hanging


def sw(
    saga_id: str,
    status: str = "IN_PROGRESS",
    prev: str | None = None,
    *,
    tenant: str = "t1",
    jt: str = "order",
    events: tuple[dict, ...] = (),
    first_seq: int = 1,
    owed: bool = False,
    snapshot: dict | None = None,
    idem: tuple[str, dict] | None = None,
) -> SagaWrite:
    snap = snapshot if snapshot is not None else {"saga_id": saga_id, "status": status}
    return SagaWrite(saga_id, snap, events, first_seq, tenant, jt, status, prev, owed, idem)


def k(local: str, tenant: str = "t1") -> str:
    """The internal (tenant-scoped) key the store reads by."""
    return scoped_key(tenant, local)


def jw(journey_id: str, version: int, tenant: str = "t1", **extra: Any) -> JourneyWrite:
    return JourneyWrite({"journey_id": journey_id, "version": version, "tenant_id": tenant, **extra})


class Results:
    """Collects callback outcomes; ``wait(n)`` blocks until n callbacks arrived."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.by_name: dict[str, BaseException | None] = {}
        self.threads: set[str] = set()

    def cb(self, name: str):
        def callback(err: BaseException | None) -> None:
            with self._cond:
                self.by_name[name] = err
                self.threads.add(threading.current_thread().name)
                self._cond.notify_all()

        return callback

    def wait(self, n: int) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.by_name) >= n, timeout=WAIT), (
                f"only {len(self.by_name)} of {n} callbacks arrived"
            )


def block_writer(store: LmdbStore) -> threading.Event:
    """Park the writer thread inside a callback; set the returned event to let it go."""
    entered, release = threading.Event(), threading.Event()

    def callback(err: BaseException | None) -> None:
        entered.set()
        release.wait(WAIT)

    store.submit([], callback)
    assert entered.wait(WAIT)
    return release


@pytest.fixture
def store(tmp_path):
    s = LmdbStore(tmp_path / "data")
    yield s
    s.close()


# ---- records -------------------------------------------------------------------------

msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
    | st.text() | st.binary(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(msgpack_values)
def test_record_round_trip(payload):
    assert decode_record(encode_record(payload)) == payload


@given(msgpack_values, st.data())
def test_any_single_byte_change_is_detected(payload, data):
    raw = bytearray(encode_record(payload))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises(CorruptRecordError, match="sagas/s-9"):
        decode_record(bytes(raw), where="sagas/s-9")


def test_record_layout_and_failures():
    raw = encode_record({"a": 1})
    body = msgpack.packb([SCHEMA_VERSION, {"a": 1}], use_bin_type=True)
    assert raw == body + zlib.crc32(body).to_bytes(4, "big")

    with pytest.raises(CorruptRecordError, match="history/x/3: CRC mismatch"):
        decode_record(raw[:-1] + bytes([raw[-1] ^ 1]), where="history/x/3")
    with pytest.raises(CorruptRecordError, match="too short"):
        decode_record(raw[:3], where="sagas/a")

    def sealed(body: bytes) -> bytes:
        return body + zlib.crc32(body).to_bytes(4, "big")

    with pytest.raises(CorruptRecordError, match="schema version 2 is not supported"):
        decode_record(sealed(msgpack.packb([2, {"a": 1}])), where="sagas/a")
    with pytest.raises(CorruptRecordError, match="envelope"):
        decode_record(sealed(msgpack.packb({"a": 1})), where="sagas/a")
    with pytest.raises(CorruptRecordError, match="msgpack decode failed"):
        decode_record(sealed(b"\xc1\xc1"), where="sagas/a")


def test_corruption_on_disk_is_detected(tmp_path):
    path = tmp_path / "data"
    with LmdbStore(path) as s:
        s.write([sw("s1")])
    env = lmdb.open(str(path), max_dbs=16)
    sagas = env.open_db(b"sagas")
    with env.begin(write=True, db=sagas) as txn:
        raw = bytearray(txn.get(b"t1/s1"))
        raw[3] ^= 0x40
        txn.put(b"t1/s1", bytes(raw))
    env.close()
    with LmdbStore(path) as s:
        with pytest.raises(CorruptRecordError, match="sagas/t1/s1"):
            s.load_saga(k("s1"))


# ---- round trip ----------------------------------------------------------------------


def test_is_a_saga_store(store):
    assert isinstance(store, SagaStore)


def test_round_trip_of_every_method(store, tmp_path):
    store.write([jw("j1", 1, steps=["a"]), jw("j1", 2, steps=["a", "b"]), jw("j2", 1)])
    store.write([jw("other", 3, tenant="t2")])
    assert store.load_journey(k("j1"))["steps"] == ["a", "b"]
    assert store.load_journey(k("j1"), 1)["steps"] == ["a"]
    assert store.load_journey(k("j1"), 3) is None
    assert store.load_journey(k("nope")) is None
    assert sorted((j["journey_id"], j["version"]) for j in store.list_journeys("t1")) == [
        ("j1", 2), ("j2", 1)]
    assert [j["journey_id"] for j in store.list_journeys("t2")] == ["other"]
    assert store.list_journeys("t3") == []

    events = ({"kind": "started"}, {"kind": "m1"})
    store.write([sw("s1", events=events, owed=True, idem=("req-1", {"saga_id": "s1"}))])
    store.write([sw("s1", "COMPENSATING", "IN_PROGRESS", events=({"kind": "m2"},), first_seq=3,
                    owed=True, snapshot={"v": 2, "status": "COMPENSATING"})])
    s2 = {"saga_id": "s2", "status": "IN_PROGRESS", "journey_type": "migration"}
    store.write([sw("s2", jt="migration", snapshot=s2), sw("s3", tenant="t2")])

    assert store.load_saga(k("s1")) == {"v": 2, "status": "COMPENSATING"}
    assert store.load_saga(k("missing")) is None
    assert [e["kind"] for e in store.load_history(k("s1"))] == ["started", "m1", "m2"]
    assert [e["kind"] for e in store.load_history(k("s1"), after_seq=1)] == ["m1", "m2"]
    assert [e["kind"] for e in store.load_history(k("s1"), after_seq=1, limit=1)] == ["m1"]
    assert store.load_history(k("s2")) == []
    assert store.load_history(k("s")) == []  # a prefix of another saga id sees nothing
    assert store.get_idempotency("req-1") == {"saga_id": "s1"}
    assert store.get_idempotency("req-2") is None
    assert store.sagas_with_work_owed() == [k("s1")]
    assert store.count_by_status() == {
        ("order", "COMPENSATING"): 1, ("migration", "IN_PROGRESS"): 1, ("order", "IN_PROGRESS"): 1}

    page, cursor = store.find_sagas(Query("t1"))
    assert sorted(s.get("saga_id", "s1") for s in page) == ["s1", "s2"] and cursor is None
    assert store.find_sagas(Query("t1", status="COMPENSATING")) == ([{"v": 2, "status": "COMPENSATING"}], None)
    assert store.find_sagas(Query("t1", journey_type="migration"))[0] == [s2]
    assert store.find_sagas(Query("t2"))[0] == [{"saga_id": "s3", "status": "IN_PROGRESS"}]

    store.write([sw("s1", "FAILED", "COMPENSATING", owed=False)])
    assert store.sagas_with_work_owed() == []
    assert store.find_sagas(Query("t1", status="COMPENSATING")) == ([], None)
    assert ("order", "COMPENSATING") not in store.count_by_status()

    stats = store.stats()
    assert stats["commits"] >= 5 and stats["batches"] >= 5 and stats["map_grows"] == 0
    assert stats["map_size"] == 64 * 1024 * 1024
    assert 0 < stats["used_bytes"] <= stats["map_size"]
    assert stats["last_batch_size"] == 1


def test_find_sagas_pages_past_many_filtered_keys(store):
    def snap(i: int) -> dict:
        return {"saga_id": f"s{i:04d}", "status": "IN_PROGRESS", "journey_type": "b" if i % 100 == 7 else "a"}

    writes = [sw(f"s{i:04d}", jt=snap(i)["journey_type"], snapshot=snap(i)) for i in range(500)]
    store.write(writes[:250])
    store.write(writes[250:])
    seen, cursor, pages = [], None, 0
    while True:
        page, cursor = store.find_sagas(Query("t1", journey_type="b", order="oldest"), limit=2, after=cursor)
        seen += [s["saga_id"] for s in page]
        pages += 1
        if cursor is None:
            break
    assert seen == ["s0007", "s0107", "s0207", "s0307", "s0407"] and pages == 3

    all_ids, cursor = [], None
    while True:
        page, cursor = store.find_sagas(Query("t1", order="oldest"), limit=64, after=cursor)
        all_ids += [s["saga_id"] for s in page]
        if cursor is None:
            break
    assert all_ids == [f"s{i:04d}" for i in range(500)]


def test_find_sagas_cursor_is_checked(store):
    store.write([sw("a"), sw("b"), sw("c", tenant="t2")])
    _, cursor = store.find_sagas(Query("t1"), limit=1)
    assert cursor is not None
    with pytest.raises(InvalidInputError):  # cursor from tenant t1 used for t2: refused
        store.find_sagas(Query("t2"), after=cursor)


# ---- group commit --------------------------------------------------------------------


def _submit_from_threads(store: LmdbStore, results: Results, n_threads: int, per_thread: int):
    def work(t: int) -> None:
        for i in range(per_thread):
            store.submit([sw(f"g{t}-{i}")], results.cb(f"g{t}-{i}"))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)


def test_group_commit_batches_queued_writes(store):
    release = block_writer(store)
    before = store.stats()
    results = Results()
    _submit_from_threads(store, results, 8, 25)
    release.set()
    results.wait(200)
    assert all(err is None for err in results.by_name.values())
    assert results.threads == {"saga-journey-writer"}
    stats = store.stats()
    assert stats["max_batch_size_seen"] > 1
    assert stats["last_batch_size"] == 200  # everything queued went into one txn
    assert stats["commits"] - before["commits"] == 1
    assert store.count_by_status() == {("order", "IN_PROGRESS"): 200}


def test_without_group_commit_each_request_has_its_own_txn(tmp_path):
    with LmdbStore(tmp_path / "d", group_commit=False) as s:
        release = block_writer(s)
        results = Results()
        _submit_from_threads(s, results, 4, 10)
        release.set()
        results.wait(40)
        assert all(err is None for err in results.by_name.values())
        stats = s.stats()
        assert stats["max_batch_size_seen"] == 1
        assert stats["batches"] == 41 and stats["commits"] == 41


def test_max_batch_caps_a_txn(tmp_path):
    commits: list[int] = []
    with LmdbStore(tmp_path / "d", max_batch=16, on_commit=lambda n, secs: commits.append(n)) as s:
        release = block_writer(s)
        results = Results()
        for i in range(40):
            s.submit([sw(f"s{i}")], results.cb(str(i)))
        release.set()
        results.wait(40)
        assert commits == [1, 16, 16, 8]


# ---- map growth ----------------------------------------------------------------------


@contextmanager
def busy_readers(store: LmdbStore, n: int = 4) -> Iterator[list[BaseException]]:
    """Threads reading in a tight loop for the duration of the block; yields their failures."""
    store.write([sw("seed", snapshot={"blob": b"x" * 5000})])
    stop, failures = threading.Event(), []

    def reader() -> None:
        while not stop.is_set():
            try:
                assert store.load_saga(k("seed")) == {"blob": b"x" * 5000}
                store.find_sagas(Query("t1"), limit=5)
            except BaseException as exc:  # noqa: BLE001 - recorded and asserted on
                failures.append(exc)
                return

    readers = [threading.Thread(target=reader) for _ in range(n)]
    for r in readers:
        r.start()
    try:
        yield failures
    finally:
        stop.set()
        for r in readers:
            r.join(WAIT)


def test_map_grows_while_readers_read(tmp_path):
    with LmdbStore(tmp_path / "d", map_size=256 * 1024) as s:
        with busy_readers(s) as failures:
            for chunk in range(20):
                s.write([sw(f"s{chunk}-{i}", snapshot={"blob": os.urandom(5000)})
                         for i in range(50)])
        assert failures == []
        stats = s.stats()
        assert stats["map_grows"] >= 1 and stats["map_size"] > 256 * 1024
        assert stats["used_bytes"] > 5_000_000
        assert all(len(s.load_saga(k(f"s{c}-{i}"))["blob"]) == 5000
                   for c in range(20) for i in range(50))
        assert s.count_by_status() == {("order", "IN_PROGRESS"): 1001}


# ---- failures ------------------------------------------------------------------------


def test_poison_request_fails_alone(store, monkeypatch):
    store.write([jw("j", 1), sw("existing")])
    release = block_writer(store)
    results = Results()
    submits = [
        ("good1", [sw("g1", events=({"e": 1},))]),
        ("unpackable", [sw("p1", snapshot={"x": object()})]),
        ("good2", [sw("g2"), jw("j", 2)]),
        ("dup_version", [jw("j", 1)]),
        ("wrong_prev", [sw("existing", "COMPLETED", "FAILED")]),
        ("good3", [sw("existing", "COMPLETED", "IN_PROGRESS")]),
        ("hist_dup", [sw("g3", events=({"e": 1},)), sw("g1", "IN_PROGRESS", "IN_PROGRESS", events=({"e": 2},))]),
        ("good4", [sw("g4", owed=True)]),
    ]
    before = store.stats()
    for name, writes in submits:
        store.submit(writes, results.cb(name))
    release.set()
    results.wait(len(submits))

    good = {n for n in results.by_name if n.startswith("good")}
    assert {n for n, e in results.by_name.items() if e is None} == good
    for name in set(results.by_name) - good:
        assert isinstance(results.by_name[name], StorageError), name
    assert isinstance(results.by_name["unpackable"].__cause__, TypeError)
    assert "versions are immutable" in str(results.by_name["dup_version"])
    assert "already recorded" in str(results.by_name["hist_dup"])  # g1's seq 1 is taken

    assert store.load_saga(k("p1")) is None and store.load_saga(k("g3")) is None
    assert store.load_history(k("g1")) == [{"e": 1}]
    assert store.load_journey(k("j"))["version"] == 2
    assert store.sagas_with_work_owed() == [k("g4")]
    assert store.count_by_status() == {("order", "IN_PROGRESS"): 3, ("order", "COMPLETED"): 1}
    assert store.stats()["commits"] - before["commits"] == 4  # the goods, each alone

    # A failure that is not a StorageError reaches the callback wrapped, cause chained.
    real = LmdbStore._apply_journey

    def boom(self, txn, op):
        if op.journey_id == "bad":
            raise RuntimeError("disk on fire")
        return real(self, txn, op)

    monkeypatch.setattr(LmdbStore, "_apply_journey", boom)
    release = block_writer(store)
    results = Results()
    store.submit([jw("bad", 1)], results.cb("bad"))
    store.submit([jw("fine", 1)], results.cb("fine"))
    release.set()
    results.wait(2)
    assert results.by_name["fine"] is None
    assert isinstance(results.by_name["bad"], StorageError)
    assert isinstance(results.by_name["bad"].__cause__, RuntimeError)
    with pytest.raises(StorageError, match="disk on fire"):
        store.write([jw("bad", 1)])


def test_failed_txn_with_busy_readers(store):
    # py-lmdb 3.0.0 stalls a write-txn abort (up to minutes) while other threads keep
    # beginning read txns, unless the store holds them off. Measured: ~0.6 s held off,
    # ~65 s not; WAIT (30 s) is the hang detector.
    refused: list[StorageError] = []

    def failing_writes() -> None:
        for i in range(100):
            try:
                store.write([sw(f"ok{i}"), sw("seed", "FAILED", "COMPLETED")])
            except StorageError as exc:
                refused.append(exc)

    with busy_readers(store) as failures:
        worker = threading.Thread(target=failing_writes)
        worker.start()
        worker.join(WAIT)
        assert not worker.is_alive(), "aborts stalled behind busy readers"
    assert failures == [] and len(refused) == 100 and store.load_saga(k("ok0")) is None


def test_history_seq_is_append_only(store):
    store.write([sw("s", events=({"n": 1}, {"n": 2}))])
    with pytest.raises(StorageError, match="already recorded"):
        store.write([sw("s", "IN_PROGRESS", "IN_PROGRESS", events=({"n": 9},), first_seq=2)])
    assert store.load_history(k("s")) == [{"n": 1}, {"n": 2}]


def test_ids_are_scoped_by_tenant(store):
    """Issue 9 defect 5: two tenants may own the same journey and saga id, independently."""
    store.write([jw("j", 1, tenant="t1", n=1), jw("j", 2, tenant="t1", n=2)])
    store.write([jw("j", 1, tenant="t2", n=3)])
    assert store.load_journey(k("j", "t1"))["n"] == 2
    assert store.load_journey(k("j", "t2"))["n"] == 3
    assert [j["n"] for j in store.list_journeys("t2")] == [3]
    store.write([sw("s", tenant="t1", events=({"e": 1},), snapshot={"who": 1})])
    store.write([sw("s", tenant="t2", events=({"e": 2},), snapshot={"who": 2}, owed=True)])
    assert store.load_saga(k("s", "t1")) == {"who": 1} and store.load_saga(k("s", "t2")) == {"who": 2}
    assert store.load_history(k("s", "t2")) == [{"e": 2}]
    assert [s["who"] for s in store.find_sagas(Query("t2"))[0]] == [2]
    assert store.sagas_with_work_owed() == [k("s", "t2")]


def test_raising_callback_is_logged_and_writer_survives(store, caplog):
    caplog.set_level(logging.ERROR, logger="saga_journey.persistence")

    def bad(err):
        raise ValueError("callback bug")

    store.submit([sw("a")], bad)
    store.write([sw("b")])  # the writer is still alive
    assert store.load_saga(k("a")) is not None and store.load_saga(k("b")) is not None
    assert any("callback raised" in r.getMessage() for r in caplog.records)


def test_snapshot_is_captured_at_submit(store):
    release = block_writer(store)
    snapshot = {"step": 1}
    done = Results()
    store.submit([sw("s", snapshot=snapshot)], done.cb("s"))
    snapshot["step"] = 2
    release.set()
    done.wait(1)
    assert store.load_saga(k("s")) == {"step": 1}


def test_bad_keys_are_refused(store):
    for write in (sw("a\0b"), sw("x" * 600), sw("ok", tenant=""), jw("j", 0)):
        with pytest.raises(StorageError):
            store.write([write])
    assert store.count_by_status() == {}


# ---- counts across restarts ----------------------------------------------------------

STATUSES = ["IN_PROGRESS", "COMPENSATING", "COMPLETED", "FAILED"]


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from(STATUSES)), max_size=40),
       st.integers(0, 40))
def test_counts_match_a_model_across_reopen(moves, reopen_at):
    with tempfile.TemporaryDirectory() as tmp:
        model: dict[str, tuple[str, str]] = {}  # saga -> (journey_type, status)
        s = LmdbStore(tmp)
        try:
            for n, (i, status) in enumerate(moves):
                if n == reopen_at:
                    s.close()
                    s = LmdbStore(tmp)
                saga = f"s{i}"
                jt, prev = model.get(saga, ("order" if i % 2 else "migration", None))
                s.write([sw(saga, status, prev, jt=jt)])
                model[saga] = (jt, status)
            # A write that lies about the previous status is refused and changes nothing.
            if model:
                saga, (jt, status) = next(iter(model.items()))
                # (checked when the write changes the status: the old idx entry must exist)
                lie = next(x for x in STATUSES if x not in (status, "FAILED"))
                with pytest.raises(StorageError):
                    s.write([sw(saga, "FAILED", lie, jt=jt)])
            s.close()
            s = LmdbStore(tmp)
            assert s.count_by_status() == dict(Counter(model.values()))
            for status in STATUSES:
                listed = {x["saga_id"] for x in s.find_sagas(Query("t1", status=status), limit=100)[0]}
                assert listed == {k for k, (_, st_) in model.items() if st_ == status}
        finally:
            s.close()


# ---- folder lock, backup, close ------------------------------------------------------


def test_one_store_per_folder(tmp_path):
    path = tmp_path / "d"
    s = LmdbStore(path)
    try:
        assert (path / "saga-journey.lock").read_text().strip() == str(os.getpid())
        with pytest.raises(StorageError, match="in use by another process"):
            LmdbStore(path)
        code = (
            "import sys\nfrom saga_journey.persistence import LmdbStore\n"
            "from saga_journey.runtime.errors import StorageError\n"
            f"try:\n    LmdbStore({str(path)!r})\nexcept StorageError as e:\n"
            "    print(e.code); sys.exit(0)\nsys.exit(3)\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=WAIT)
        assert proc.returncode == 0 and proc.stdout.strip() == "storage_error", proc.stderr
    finally:
        s.close()
    LmdbStore(path).close()  # released by close()


def test_backup_holds_the_data(store, tmp_path):
    store.write([jw("j", 1), sw("s1", events=({"e": 1},), owed=True, idem=("k", {"r": 1}))])
    dest = tmp_path / "backup"
    store.backup(str(dest))
    with pytest.raises(StorageError, match="already holds"):
        store.backup(str(dest))
    with LmdbStore(dest) as copy:
        assert copy.load_saga(k("s1")) == store.load_saga(k("s1"))
        assert copy.load_history(k("s1")) == [{"e": 1}]
        assert copy.load_journey(k("j"))["version"] == 1
        assert copy.get_idempotency("k") == {"r": 1}
        assert copy.sagas_with_work_owed() == [k("s1")]
        assert copy.count_by_status() == store.count_by_status()


def test_close_commits_pending_submits(tmp_path):
    path = tmp_path / "d"
    s = LmdbStore(path)
    results = Results()
    for i in range(300):
        s.submit([sw(f"s{i}")], results.cb(str(i)))
    s.close()
    assert len(results.by_name) == 300 and all(e is None for e in results.by_name.values())
    with pytest.raises(StorageError, match="closed"):
        s.submit([sw("late")], results.cb("late"))
    with pytest.raises(StorageError, match="closed"):
        s.load_saga(k("s1"))
    s.close()  # idempotent
    with LmdbStore(path) as again:
        assert again.count_by_status() == {("order", "IN_PROGRESS"): 300}


def test_blocking_calls_from_a_callback_are_refused(store):
    results = Results()

    def callback(err):
        for name, call in (("write", lambda: store.write([sw("x")])), ("close", store.close)):
            try:
                call()
            except StorageError as exc:
                results.cb(name)(exc)

    store.submit([sw("a")], callback)
    results.wait(2)
    assert all(isinstance(e, StorageError) for e in results.by_name.values())
    store.write([sw("b")])  # still open and working
