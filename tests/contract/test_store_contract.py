"""The store contract, port by port: Recorder (atomic batches, idempotency records, owed work),
Queries (history order, list filters and cursors, the feed, recovery reads), Admin (backup,
retention and pruning), and the read-only view. Every backend must pass it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from saga_journey.persistence.keys import scoped_key
from saga_journey.persistence.ports import Admin, Queries, Recorder, Store
from saga_journey.persistence.query import Query
from saga_journey.persistence.store import JourneyWrite, PruneWrite, SagaWrite
from saga_journey.runtime.errors import InvalidInputError, StorageError

from .conftest import NewBackend

T1, T2 = "acme", "globex"


def snap(saga_id: str, status: str = "IN_PROGRESS", *, tenant: str = T1, at: float = 1000.0,
         jt: str = "order", journey: str = "j1", user: str = "u1", comp: str = "none",
         version: int = 1) -> dict[str, Any]:
    return {"saga_id": saga_id, "tenant_id": tenant, "status": status, "updated_at": at,
            "journey_type": jt, "journey_id": journey, "user_id": user,
            "compensation_status": comp, "version": version}


def write(s: dict[str, Any], prev: str | None = None, *, events: int = 1, first: int = 1,
          owed: bool | None = None, wake_at: float | None = None, idem: tuple[str, dict] | None = None,
          retention_s: float | None = None) -> SagaWrite:
    owed = s["status"] == "COMPENSATING" if owed is None else owed  # compensating: work is owed
    history = tuple({"seq": first + i, "type": f"e{first + i}", "at": s["updated_at"]} for i in range(events))
    return SagaWrite(s["saga_id"], s, history, first, s["tenant_id"], s["journey_type"], s["status"],
                     prev, owed, idem, wake_at, retention_s)


@pytest.fixture
def store(backend: NewBackend) -> Iterator[Store]:
    opened = backend().open()
    yield opened
    opened.close()


def test_a_store_offers_every_port(store: Store) -> None:
    assert isinstance(store, Recorder) and isinstance(store, Queries) and isinstance(store, Admin)


# ---- Recorder: batches --------------------------------------------------------------------


def test_a_batch_is_applied_whole(store: Store) -> None:
    store.write([write(snap("a")), write(snap("b")), JourneyWrite({"journey_id": "j1", "version": 1, "tenant_id": T1})])
    assert store.load_saga(scoped_key(T1, "a")) == snap("a")
    assert store.load_saga(scoped_key(T1, "b")) == snap("b")
    assert store.load_journey(scoped_key(T1, "j1"))["version"] == 1


def test_a_batch_with_one_bad_write_applies_nothing(store: Store) -> None:
    if getattr(store, "shards", 1) > 1:
        pytest.skip("a sharded store is atomic per shard only: one transaction per shard touched")
    store.write([write(snap("a"))])
    bad = [write(snap("b")), write(snap("a"), None),  # "a" exists: a new-saga write must not overwrite it
           JourneyWrite({"journey_id": "j9", "version": 1, "tenant_id": T1}, idempotency=("k1", {"r": 1}))]
    with pytest.raises(StorageError):
        store.write(bad)
    assert store.load_saga(scoped_key(T1, "b")) is None
    assert store.load_saga(scoped_key(T1, "a")) == snap("a")
    assert store.load_journey(scoped_key(T1, "j9")) is None
    assert store.get_idempotency(scoped_key(T1, "k1")) is None
    assert [v["saga_id"] for v in store.find_sagas(Query(T1))[0]] == ["a"]


def test_submitted_batches_call_back_once_each_after_commit(store: Store) -> None:
    done: dict[str, BaseException | None] = {}
    all_done = threading.Event()
    names = [f"s{i}" for i in range(50)]

    def callback(name: str):
        def settle(error: BaseException | None) -> None:
            assert store.load_saga(scoped_key(T1, name)) is not None or error is not None  # committed first
            done[name] = error
            if len(done) == len(names) + 1:
                all_done.set()
        return settle

    for name in names:
        store.submit([write(snap(name))], callback(name))
    store.submit([write(snap("s0"))], callback("dup"))  # refused: s0 exists, prev_status None
    assert all_done.wait(30)
    assert all(done[n] is None for n in names)
    assert isinstance(done["dup"], StorageError)


def test_a_status_change_that_misstates_the_old_status_is_refused(store: Store) -> None:
    store.write([write(snap("a"))])
    with pytest.raises(StorageError):
        store.write([write(snap("a", "FAILED", version=2), "COMPENSATING", first=2)])
    assert store.load_saga(scoped_key(T1, "a"))["status"] == "IN_PROGRESS"


def test_journey_versions_are_immutable(store: Store) -> None:
    j = {"journey_id": "j1", "version": 1, "tenant_id": T1, "n": 1}
    store.write([JourneyWrite(j)])
    with pytest.raises(StorageError):
        store.write([JourneyWrite({**j, "n": 2})])
    store.write([JourneyWrite({**j, "version": 2, "n": 2}), JourneyWrite({**j, "journey_id": "j2"})])
    assert store.load_journey(scoped_key(T1, "j1"), 1)["n"] == 1
    assert store.load_journey(scoped_key(T1, "j1"))["n"] == 2  # the latest
    assert store.load_journey(scoped_key(T1, "j1"), 3) is None
    assert sorted((j["journey_id"], j["version"]) for j in store.list_journeys(T1)) == [("j1", 2), ("j2", 1)]
    assert store.list_journeys(T2) == []


# ---- Recorder: idempotency records ----------------------------------------------------------


def test_idempotency_records_commit_with_their_write(store: Store) -> None:
    key = scoped_key(T1, "req-1")
    store.write([write(snap("a"), idem=(key, {"fingerprint": "f", "response": {"saga_id": "a"}}))])
    assert store.get_idempotency(key) == {"fingerprint": "f", "response": {"saga_id": "a"}}
    jkey = scoped_key(T1, "req-2")
    store.write([JourneyWrite({"journey_id": "j1", "version": 1, "tenant_id": T1}, idempotency=(jkey, {"r": 2}))])
    assert store.get_idempotency(jkey) == {"r": 2}
    assert store.get_idempotency(scoped_key(T2, "req-1")) is None  # scoped by tenant


# ---- Queries: history -----------------------------------------------------------------------


def test_history_comes_back_in_seq_order_and_is_never_overwritten(store: Store) -> None:
    key = scoped_key(T1, "a")
    store.write([write(snap("a"), events=2)])
    store.write([write(snap("a", "COMPENSATING", version=3), "IN_PROGRESS", first=3, owed=True)])
    store.write([write(snap("a", "FAILED", version=5), "COMPENSATING", first=4, events=2)])
    assert [e["seq"] for e in store.load_history(key)] == [1, 2, 3, 4, 5]
    assert [e["seq"] for e in store.load_history(key, after_seq=2)] == [3, 4, 5]
    assert [e["seq"] for e in store.load_history(key, after_seq=1, limit=2)] == [2, 3]
    assert store.load_history(scoped_key(T1, "")) == [] and store.load_history(scoped_key(T1, "a-")) == []
    with pytest.raises(StorageError):
        store.write([write(snap("a", "FAILED", version=5), "FAILED", first=5)])
    assert [e["type"] for e in store.load_history(key)] == ["e1", "e2", "e3", "e4", "e5"]
    with pytest.raises(InvalidInputError):
        store.load_history(key, after_seq=-1)


def test_the_feed_lists_committed_history_in_commit_order(store: Store) -> None:
    if getattr(store, "shards", 1) > 1:
        pytest.skip("a store of several shards has a vector feed (tests/test_sharded_store.py)")
    start = store.feed_end()
    store.write([write(snap("a"), events=2), write(snap("b", tenant=T2))])
    store.write([write(snap("a", version=3), "IN_PROGRESS", first=3)])
    rows, last = store.feed_scan(start, 100)
    assert [(k, e["seq"]) for _, k, e in rows] == [
        (scoped_key(T1, "a"), 1), (scoped_key(T1, "a"), 2), (scoped_key(T2, "b"), 1), (scoped_key(T1, "a"), 3)]
    assert last == store.feed_end() == start + 4
    positions = [p for p, _, _ in rows]
    assert positions == sorted(positions) and len(set(positions)) == 4
    mine, _ = store.feed_scan(start, 100, tenant=T2)
    assert [k for _, k, _ in mine] == [scoped_key(T2, "b")]
    assert store.feed_scan(positions[1], 1)[0][0][0] == positions[2]


# ---- Queries: list filters and cursors -------------------------------------------------------


FLEET = [
    snap("s01", "IN_PROGRESS", at=1001, user="u1", journey="j1"),
    snap("s02", "COMPLETED", at=1002, user="u2", journey="j1", comp="none"),
    snap("s03", "FAILED", at=1003, user="u1", journey="j2", jt="transfer", comp="succeeded"),
    snap("s04", "FAILED", at=1004, user="u2", journey="j2", jt="transfer", comp="failed"),  # parked
    snap("s05", "COMPENSATING", at=1005, user="u1", journey="j1", comp="running"),
    snap("s06", "IN_PROGRESS", at=1006, user="u3", journey="j3", jt="migration"),
    snap("s07", "COMPLETED", at=1007, user="u1", journey="j1"),
    snap("s08", "IN_PROGRESS", at=1008, user="u2", journey="j1"),
    snap("s09", "IN_PROGRESS", at=1003, user="u1", journey="j1", tenant=T2),
]


def _parked(s: dict[str, Any]) -> bool:
    return s["status"] == "FAILED" and s["compensation_status"] == "failed"


QUERIES = [
    {}, {"status": "IN_PROGRESS"}, {"status": "FAILED"}, {"status": "COMPENSATING"}, {"parked": True},
    {"parked": False}, {"status": "FAILED", "parked": False}, {"journey_type": "transfer"},
    {"journey_id": "j1"}, {"user_id": "u1"}, {"user_id": "u1", "status": "IN_PROGRESS"},
    {"updated_after": 1003}, {"updated_before": 1005}, {"updated_after": 1002, "updated_before": 1007},
    {"journey_type": "nope"},
]


def _expected(q: dict[str, Any], tenant: str, order: str) -> list[str]:
    def keep(s: dict[str, Any]) -> bool:
        return (s["tenant_id"] == tenant
                and all(s[k] == q[k] for k in ("status", "journey_type", "journey_id", "user_id") if k in q)
                and ("parked" not in q or _parked(s) == q["parked"])
                and ("updated_after" not in q or s["updated_at"] >= q["updated_after"])
                and ("updated_before" not in q or s["updated_at"] < q["updated_before"]))

    chosen = sorted((s for s in FLEET if keep(s)), key=lambda s: s["updated_at"], reverse=order == "newest")
    return [s["saga_id"] for s in chosen]


@pytest.fixture
def fleet(store: Store) -> Store:
    store.write([write(s) for s in FLEET[:4]])
    store.write([write(s) for s in FLEET[4:]])
    return store


@pytest.mark.parametrize("order", ["newest", "oldest"])
@pytest.mark.parametrize("q", QUERIES, ids=lambda q: ",".join(f"{k}={v}" for k, v in q.items()) or "all")
def test_find_filters_and_orders_by_update_time(fleet: Store, q: dict[str, Any], order: str) -> None:
    found, cursor = fleet.find_sagas(Query(T1, order=order, **q), limit=100)
    assert [s["saga_id"] for s in found] == _expected(q, T1, order) and cursor is None
    assert all(s == next(f for f in FLEET if f["saga_id"] == s["saga_id"]) for s in found)


@pytest.mark.parametrize("order", ["newest", "oldest"])
@pytest.mark.parametrize("q", [{}, {"user_id": "u1"}, {"status": "IN_PROGRESS"}], ids=["all", "user", "status"])
def test_cursors_page_through_without_repeats_or_gaps(fleet: Store, q: dict[str, Any], order: str) -> None:
    query, seen, cursor, pages = Query(T1, order=order, **q), [], None, 0
    while True:
        page, cursor = fleet.find_sagas(query, limit=2, after=cursor)
        seen += [s["saga_id"] for s in page]
        pages += 1
        if cursor is None:
            break
        assert pages < 20
    assert seen == _expected(q, T1, order)


def test_a_cursor_belongs_to_its_query(fleet: Store) -> None:
    _, cursor = fleet.find_sagas(Query(T1), limit=1)
    assert cursor is not None
    with pytest.raises(InvalidInputError):
        fleet.find_sagas(Query(T2), after=cursor)  # another tenant
    with pytest.raises(InvalidInputError):
        fleet.find_sagas(Query(T1, status="FAILED"), after=cursor)
    with pytest.raises(InvalidInputError):
        fleet.find_sagas(Query(T1), after="not a cursor!")


def test_an_update_moves_a_saga_in_the_listing(fleet: Store) -> None:
    fleet.write([write(snap("s01", "COMPLETED", at=2000, user="u1", journey="j1", version=2), "IN_PROGRESS", first=2)])
    newest = [s["saga_id"] for s in fleet.find_sagas(Query(T1), limit=3)[0]]
    assert newest[0] == "s01"
    assert "s01" not in [s["saga_id"] for s in fleet.find_sagas(Query(T1, status="IN_PROGRESS"))[0]]
    assert fleet.count_by_status()[("order", "COMPLETED")] == 3
    assert ("order", "IN_PROGRESS") in fleet.count_by_status()


def test_tenants_never_see_each_other(fleet: Store) -> None:
    assert [s["saga_id"] for s in fleet.find_sagas(Query(T2))[0]] == ["s09"]
    fleet.write([write(snap("s01", tenant=T2, at=5.0))])  # the same id in another tenant
    assert fleet.load_saga(scoped_key(T2, "s01"))["updated_at"] == 5.0
    assert fleet.load_saga(scoped_key(T1, "s01"))["updated_at"] == 1001


def test_figures_for_metrics(fleet: Store) -> None:
    counts = fleet.count_by_status()
    assert counts[("order", "IN_PROGRESS")] == 3 and counts[("transfer", "FAILED")] == 2
    assert fleet.count_compensation_failed() == {"transfer": 1}
    assert fleet.oldest_active() == {"IN_PROGRESS": 1001, "COMPENSATING": 1005}


# ---- Recorder + Queries: owed effects survive a reopen -----------------------------------


def test_owed_work_and_timers_are_found_after_reopen(backend: NewBackend) -> None:
    where = backend()
    store = where.open()
    store.write([write(snap("owed", "COMPENSATING"), owed=True), write(snap("timer"), wake_at=1234.5),
                 write(snap("idle")), write(snap("done", "COMPLETED"), owed=False)])
    store.close()
    store = where.open()
    try:
        assert store.sagas_with_work_owed() == [scoped_key(T1, "owed")]
        assert store.pending_wakeups() == [(scoped_key(T1, "timer"), 1234.5)]
        store.write([write(snap("owed", "FAILED", version=2), "COMPENSATING", first=2),
                     write(snap("timer", version=2), "IN_PROGRESS", first=2)])
        assert store.sagas_with_work_owed() == [] and store.pending_wakeups() == []
    finally:
        store.close()


def test_a_closed_store_refuses_writes(backend: NewBackend) -> None:
    store = backend().open()
    store.close()
    with pytest.raises(StorageError):
        store.write([write(snap("a"))])
    with pytest.raises(StorageError):
        store.submit([write(snap("a"))], lambda error: None)


# ---- Admin: backup, retention, pruning ------------------------------------------------------


def test_a_backup_restores_everything(backend: NewBackend, tmp_path) -> None:
    store = backend("live").open()
    try:
        store.write([write(s) for s in FLEET] + [JourneyWrite({"journey_id": "j1", "version": 1, "tenant_id": T1})])
        store.write([write(snap("s01", "COMPENSATING", at=1010, version=2), "IN_PROGRESS", first=2, owed=True)])
        restored = backend("copy")
        store.backup(restored.describe(), compact=True)
    finally:
        store.close()
    copy = restored.open()
    try:
        assert copy.load_saga(scoped_key(T1, "s01"))["status"] == "COMPENSATING"
        assert [e["seq"] for e in copy.load_history(scoped_key(T1, "s01"))] == [1, 2]
        assert [s["saga_id"] for s in copy.find_sagas(Query(T1, order="oldest"))[0]] == [
            "s02", "s03", "s04", "s05", "s06", "s07", "s08", "s01"]
        assert copy.sagas_with_work_owed() == [scoped_key(T1, "s01"), scoped_key(T1, "s05")]
        assert copy.load_journey(scoped_key(T1, "j1"))["version"] == 1
    finally:
        copy.close()
    assert restored.verify().ok


def test_prune_removes_only_expired_finished_sagas(store: Store) -> None:
    idem = scoped_key(T1, "start-old")
    store.write([
        write(snap("old-done", "COMPLETED", at=100), idem=(idem, {"response": {"saga_id": "old-done"}})),
        write(snap("old-undone", "FAILED", at=100, comp="succeeded")),
        write(snap("old-parked", "FAILED", at=100, comp="failed")),  # waits for an operator: kept
        write(snap("old-running", "IN_PROGRESS", at=100)),
        write(snap("new-done", "COMPLETED", at=900)),
        write(snap("own-retention", "COMPLETED", at=100), retention_s=10_000),  # the journey's own: kept
    ])
    assert store.count_expired(1000, 500) == 2
    assert store.count_expired(1000, 500, limit=1) == 1
    result = store.prune(1000, 500, 1)
    assert result.sagas == 1 and result.more
    result = store.prune(1000, 500, 10)
    assert result.sagas == 1 and not result.more
    left = {s["saga_id"] for s in store.find_sagas(Query(T1))[0]}
    assert left == {"old-parked", "old-running", "new-done", "own-retention"}
    assert store.load_saga(scoped_key(T1, "old-done")) is None
    assert store.load_history(scoped_key(T1, "old-done")) == []
    assert store.get_idempotency(idem) is None
    assert store.count_expired(1000, 500) == 0
    assert store.prune(20_000, None, 10).sagas == 1  # own retention passed; no global rule
    assert store.load_saga(scoped_key(T1, "own-retention")) is None


def test_a_prune_write_commits_in_a_batch(store: Store) -> None:
    store.write([write(snap("done", "COMPLETED", at=1))])
    op = PruneWrite(100, 10, 10)
    store.write([op, write(snap("next"))])
    assert op.result.sagas == 1 and store.load_saga(scoped_key(T1, "next")) is not None


# ---- the read-only view -----------------------------------------------------------------------


def test_a_read_only_view_answers_the_same_queries_and_refuses_writes(backend: NewBackend) -> None:
    """(Reading beside a writer in another process: tests/ops/test_cli_list.py.)"""
    where = backend()
    store = where.open()
    try:
        store.write([write(s) for s in FLEET])
        expected = {q: store.find_sagas(Query(T1, **dict(q)), limit=3) for q in (
            (), (("user_id", "u1"),), (("status", "FAILED"),), (("parked", True),))}
        history = store.load_history(scoped_key(T1, "s01"))
    finally:
        store.close()
    reader = where.open_read_only()
    try:
        for q, page in expected.items():
            assert reader.find_sagas(Query(T1, **dict(q)), limit=3) == page
            if page[1] is not None:
                assert reader.find_sagas(Query(T1, **dict(q)), limit=3, after=page[1]) != page
        assert reader.load_history(scoped_key(T1, "s01")) == history
        assert reader.sagas_with_work_owed() == [scoped_key(T1, "s05")]
        with pytest.raises(StorageError):
            reader.write([write(snap("x"))])  # type: ignore[attr-defined]
    finally:
        reader.close()
