"""The sharded layout (persistence/shard_layout.py), the page merge (persistence/page_merge.py)
and the ShardedStore's own behaviour; the contract suite runs on it too (tests/contract)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from saga_journey.persistence.keys import scoped_key
from saga_journey.persistence.lmdb_backend import LmdbBackend
from saga_journey.persistence.page_merge import merge_pages
from saga_journey.persistence.ports import StoreOptions
from saga_journey.persistence.query import Query
from saga_journey.persistence.shard_layout import create_layout, read_layout
from saga_journey.persistence.shard_map import saga_shard
from saga_journey.persistence.sharded_store import ShardedStore
from saga_journey.persistence.store import SagaWrite
from saga_journey.runtime.errors import StorageError


def saga(saga_id: str, at: float = 1000.0, tenant: str = "acme") -> SagaWrite:
    snap = {"saga_id": saga_id, "tenant_id": tenant, "status": "IN_PROGRESS", "updated_at": at,
            "journey_type": "order", "journey_id": "j1", "user_id": "u1", "compensation_status": "none",
            "version": 1}
    return SagaWrite(saga_id, snap, ({"seq": 1, "type": "e1", "at": at},), 1, tenant, "order",
                     "IN_PROGRESS", None, False)


# ---- layout -------------------------------------------------------------------------------

def test_the_shard_count_is_recorded_and_read_back(tmp_path: Path) -> None:
    assert read_layout(str(tmp_path)) is None
    create_layout(str(tmp_path / "d"), 8)
    assert json.loads((tmp_path / "d" / "shards.json").read_text()) == {"format": 1, "shards": 8}
    layout = read_layout(str(tmp_path / "d"))
    assert layout is not None and layout.shards == 8


@pytest.mark.parametrize("text", ["{not json", '{"format": 2, "shards": 4}', '{"format": 1, "shards": 0}', "[]"])
def test_a_bad_shards_file_is_refused_naming_it(tmp_path: Path, text: str) -> None:
    (tmp_path / "shards.json").write_text(text)
    with pytest.raises(StorageError, match="shards.json"):
        read_layout(str(tmp_path))
    with pytest.raises(StorageError, match="shards.json"):
        LmdbBackend(str(tmp_path)).open()


def test_a_folder_holding_a_store_is_not_made_sharded(tmp_path: Path) -> None:
    LmdbBackend(str(tmp_path)).open().close()
    with pytest.raises(StorageError, match="already holds a store"):
        create_layout(str(tmp_path), 4)
    with pytest.raises(StorageError, match="already sharded"):
        create_layout(str(tmp_path / "s"), 4)
        create_layout(str(tmp_path / "s"), 4)


def test_a_new_folder_keeps_the_one_environment_layout_by_default(tmp_path: Path) -> None:
    for shards in (None, 1):
        where = tmp_path / f"plain-{shards}"
        LmdbBackend(str(where)).open(StoreOptions(shards=shards)).close()
        assert (where / "data.mdb").is_file() and not (where / "shards.json").exists()


# ---- ownership -----------------------------------------------------------------------------

SECOND_WORKER = """
import sys
from saga_journey.persistence.lmdb_backend import LmdbBackend
from saga_journey.persistence.ports import StoreOptions
from saga_journey.persistence.query import Query
from saga_journey.persistence.shard_map import saga_shard
sys.path.insert(0, sys.argv[2])
from test_sharded_store import saga
store = LmdbBackend(sys.argv[1]).open(StoreOptions(owned_shards=frozenset({1, 3})))
ids = {saga_shard("acme", f"s{i}", 4): f"s{i}" for i in range(64)}
store.write([saga(ids[1]), saga(ids[3])])
print(",".join(sorted(s["saga_id"] for s in store.find_sagas(Query("acme"))[0])))
store.close()
"""


def test_two_stores_on_one_shard_are_refused_disjoint_ones_open_together(tmp_path: Path) -> None:
    """The other worker is another process (LMDB opens an environment once per process; the
    catalog is read there)."""
    backend = LmdbBackend(str(tmp_path / "d"))
    first = backend.open(StoreOptions(shards=4, owned_shards=frozenset({0, 2})))
    ids = {saga_shard("acme", f"s{i}", 4): f"s{i}" for i in range(64)}
    try:
        with pytest.raises(StorageError, match="in use"):
            backend.open(StoreOptions(owned_shards=frozenset({2, 3})))
        first.write([saga(ids[0]), saga(ids[2])])
        other = subprocess.run([sys.executable, "-c", SECOND_WORKER, str(tmp_path / "d"),
                                str(Path(__file__).parent)], capture_output=True, text=True, timeout=60)
        assert other.returncode == 0, other.stderr
        # each reads the whole folder (the shards it does not own read-only), writes its own
        assert other.stdout.strip() == ",".join(sorted(ids[s] for s in range(4)))
        with pytest.raises(StorageError, match="not owned"):
            first.write([saga(ids[1])])
        assert {s["saga_id"] for s in first.find_sagas(Query("acme"))[0]} == {ids[s] for s in range(4)}
        assert first.owns(scoped_key("acme", ids[2])) and not first.owns(scoped_key("acme", ids[1]))
    finally:
        first.close()
    whole = backend.open()
    try:
        assert len(whole.find_sagas(Query("acme"))[0]) == 4
    finally:
        whole.close()


# ---- merged listings and the vector feed ----------------------------------------------------

def test_pages_merge_across_shards_without_repeats_or_gaps(tmp_path: Path) -> None:
    store = LmdbBackend(str(tmp_path / "d")).open(StoreOptions(shards=4))
    try:
        store.write([saga(f"s{i:02d}", at=1000 + i) for i in range(30)])
        for order in ("newest", "oldest"):
            seen: list[str] = []
            after = None
            while True:
                page, after = store.find_sagas(Query("acme", order=order), limit=7, after=after)
                seen += [s["saga_id"] for s in page]
                if after is None:
                    break
            expected = [f"s{i:02d}" for i in range(30)]
            assert seen == (expected[::-1] if order == "newest" else expected)
    finally:
        store.close()


def test_the_vector_feed_lists_each_shards_history(tmp_path: Path) -> None:
    store = LmdbBackend(str(tmp_path / "d")).open(StoreOptions(shards=4))
    assert isinstance(store, ShardedStore)
    try:
        start = store.feed_vector_end()
        assert start == (0, 0, 0, 0)
        store.write([saga(f"s{i}") for i in range(10)] + [saga("t", tenant="globex")])
        rows, scanned = store.feed_vector_scan(start, 1000)
        assert sorted(k for _, k, _ in rows) == sorted(
            [scoped_key("acme", f"s{i}") for i in range(10)] + [scoped_key("globex", "t")])
        assert scanned == store.feed_vector_end() and sum(scanned) == 11
        again, _ = store.feed_vector_scan(rows[4][0], 1000)
        assert [k for _, k, _ in again] == [k for _, k, _ in rows[5:]]
        mine, _ = store.feed_vector_scan(start, 1000, tenant="globex")
        assert [k for _, k, _ in mine] == [scoped_key("globex", "t")]
        assert store.feed_vector_floor() == (0, 0, 0, 0)
        with pytest.raises(StorageError, match="vector feed"):
            store.feed_end()
    finally:
        store.close()


# ---- page_merge, pure -------------------------------------------------------------------------

keys = st.lists(st.binary(min_size=1, max_size=3), unique=True, max_size=40)


@settings(max_examples=300, deadline=None)
@given(keys, st.integers(1, 4), st.integers(1, 8), st.integers(1, 8), st.booleans(), st.integers(0, 10**6))
def test_paging_merged_shards_equals_the_sorted_union(all_keys: list[bytes], shards: int, limit: int,
                                                      shard_limit: int, newest: bool, seed: int) -> None:
    """Shards answer short pages (as MAX_SCAN makes them); the merged walk is the sorted union."""
    parts: list[list[bytes]] = [sorted((k for i, k in enumerate(all_keys) if (i * 7 + seed) % shards == s),
                                       reverse=newest) for s in range(shards)]

    def page_of(part: list[bytes], after: bytes | None) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
        rest = [k for k in part if after is None or (k < after if newest else k > after)]
        n = shard_limit if shard_limit < limit else limit
        taken = rest[:n]
        return [(k, k) for k in taken], (taken[-1] if len(rest) > n and taken else None)

    walked: list[bytes] = []
    after: bytes | None = None
    for _ in range(len(all_keys) + 2):
        rows, after = merge_pages([page_of(p, after) for p in parts], limit, newest=newest)
        assert len(rows) <= limit
        walked += [k for k, _ in rows]
        if after is None:
            break
    assert walked == sorted(all_keys, reverse=newest)


HOLD_A_READ = """
import sys, time
from saga_journey.persistence.readonly import ReadOnlyStore
store = ReadOnlyStore(sys.argv[1])
with store._read():  # a read transaction, held until this process is killed
    print("reading", flush=True)
    time.sleep(600)
"""


def test_the_writer_clears_reader_slots_of_killed_processes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A worker killed while it read another worker's shard leaves a slot in that shard's reader
    table; the shard's writer clears it, so the snapshot it pinned does not stop page reuse."""
    from saga_journey.persistence.lmdb_store import LmdbStore

    path = str(tmp_path / "shard")
    store = LmdbStore(path)  # open throughout: a reopen alone would reset the reader table
    reader = subprocess.Popen([sys.executable, "-c", HOLD_A_READ, path], stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "reading"
        reader.kill()
        reader.wait(30)
        with caplog.at_level("WARNING"):
            store.write([saga("s1")])
            store.write([saga("s2")])  # the check runs after a batch is delivered
        assert any("cleared 1 reader slot" in r.getMessage() for r in caplog.records), caplog.text
    finally:
        store.close()
        if reader.poll() is None:
            reader.kill()
