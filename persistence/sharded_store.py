"""The Store port over a sharded data folder (``shard_layout``): one LmdbStore per owned shard
plus the journey catalog.

Routing: a saga (its writes, its idempotency record, its reads) lives in the shard of
``shard_map.saga_shard``; journeys and their idempotency records live in the catalog. A batch
touching several shards is one transaction per shard (atomic within each shard, not across);
its callback runs once, when all committed, with the first error. Listings and figures merge
the owned shards' answers.

The catalog is opened read-write by the owner of ``CATALOG_SHARD`` (its single writer) and
read-only by the others.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from saga_journey.runtime.errors import InvalidInputError, StorageError

from . import recent
from .lmdb_env import DEFAULT_MAP_SIZE
from .lmdb_reads import LmdbReader
from .page_merge import merge_pages
from .ports import StoreOptions
from .query import Query
from .shard_layout import LAYOUT_FILE, ShardLayout, layout_file, write_atomically
from .shard_map import CATALOG_SHARD, saga_shard, shard_of
from .shared_writer import SharedWriter
from .store import CommitCallback, JourneyWrite, PruneResult, PruneWrite, SagaWrite, Write, run_callback

if TYPE_CHECKING:
    from .lmdb_store import LmdbStore

FeedRow = tuple[tuple[int, ...], str, dict[str, Any]]
K = TypeVar("K")


def _summed(counts: Iterable[dict[K, int]]) -> dict[K, int]:
    """Per-key sums of the shards' counts (keys absent from every shard stay absent)."""
    out: dict[K, int] = {}
    for part in counts:
        for k, v in part.items():
            out[k] = out.get(k, 0) + v
    return out


class OwnedView:
    """Counts over a subset of a sharded store's shards (``ShardedStore.owned_view``)."""

    def __init__(self, readers: list[LmdbReader]) -> None:
        self._readers = readers

    def count_by_status(self) -> dict[tuple[str, str], int]:
        return _summed(r.count_by_status() for r in self._readers)

    def oldest_active(self) -> dict[str, float]:
        return _oldest(self._readers)

    def count_compensation_failed(self) -> dict[str, int]:
        return _summed(r.count_compensation_failed() for r in self._readers)


def _oldest(readers: Iterable[LmdbReader]) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in readers:
        for k, v in r.oldest_active().items():
            out[k] = min(out.get(k, v), v)
    return out


class ShardedStore:
    """A store over ``owned`` shards of a sharded folder (default: all of them).

    The shards it does not own are opened read-only beside them (their owners are other
    processes of ``serve --workers``): every read (a saga, lists, counts, the feed) sees the
    whole folder, every write goes to an owned shard, and recovery (owed work, timers) and the
    per-process figures (``stats``, ``owned_view``) cover the owned shards only.
    """

    def __init__(self, layout: ShardLayout, owned: frozenset[int] | None = None,
                 options: StoreOptions = StoreOptions(), *, read_only: bool = False) -> None:
        from .lmdb_store import LmdbStore
        from .readonly import ReadOnlyStore

        self.layout = layout
        self.shards = layout.shards
        self.owned = frozenset(layout.all_shards()) if owned is None else frozenset(owned)
        bad = sorted(s for s in self.owned if not 0 <= s < self.shards)
        if bad or not self.owned:
            raise InvalidInputError(f"owned shards {sorted(self.owned)} are not a non-empty subset of 0..{self.shards - 1}")
        self.read_only = read_only

        # one writer thread commits every environment this process writes (``shared_writer``)
        shared = None if read_only else SharedWriter()

        def open_rw(path: str) -> Any:
            return LmdbStore(path, map_size=options.map_size or DEFAULT_MAP_SIZE,
                             group_commit=options.group_commit, max_batch=options.max_batch,
                             on_commit=options.on_commit, handoff=options.handoff, shared_writer=shared)

        opened: list[Any] = []
        try:
            self._stores: dict[int, Any] = {}
            for s in sorted(self.owned):
                store = ReadOnlyStore(layout.shard_dir(s)) if read_only else open_rw(layout.shard_dir(s))
                opened.append(store)
                self._stores[s] = store
            self._others: dict[int, Any] = {}
            for s in layout.all_shards():
                if s not in self._stores:
                    self._others[s] = ReadOnlyStore(layout.shard_dir(s))
                    opened.append(self._others[s])
            self.catalog_owner = CATALOG_SHARD in self.owned and not read_only
            if self.catalog_owner:
                self._catalog: Any = open_rw(layout.catalog)
            else:
                self._catalog = ReadOnlyStore(layout.catalog)
            opened.append(self._catalog)
        except BaseException:
            for store in reversed(opened):
                store.close()
            raise
        self._closed = False

    # ---- routing -------------------------------------------------------------------------

    def _shard_store(self, shard: int) -> Any:
        store = self._stores.get(shard)
        if store is None:
            raise StorageError(f"shard {shard} of {self.layout.folder} is not owned by this store "
                               f"(it owns {sorted(self.owned)})")
        return store

    def _by_key(self, key: str) -> Any:
        """The store (owned or read-only) of a saga's internal key."""
        s = shard_of(key, self.shards)
        return self._stores.get(s) or self._others[s]

    def owns(self, key: str) -> bool:
        """Whether this store writes the saga of internal key ``key`` (its shard is owned)."""
        return shard_of(key, self.shards) in self._stores

    def _readers(self) -> list[LmdbReader]:
        """Every shard's store, owned or read-only, in shard order."""
        return [self._stores.get(s) or self._others[s] for s in range(self.shards)]

    def _owned_readers(self) -> list[LmdbReader]:
        return [self._stores[s] for s in sorted(self._stores)]

    def owned_view(self) -> OwnedView:
        """The counts of the owned shards only: what this process reports as its own (metrics
        of several worker processes add up instead of each counting the whole folder)."""
        return OwnedView(self._owned_readers())

    def _writers(self) -> list[LmdbStore]:
        """The owned shards' stores, for the admin operations (refused when read-only)."""
        if self.read_only:
            raise StorageError(f"{self.layout.folder} is open read-only")
        return [self._stores[s] for s in sorted(self._stores)]

    # ---- Recorder ------------------------------------------------------------------------

    def submit(self, writes: Sequence[Write], callback: CommitCallback) -> None:
        """One submit per store touched; ``callback`` once all committed (first error wins).

        A batch with a ``PruneWrite`` runs shard after shard, each round given the limit the
        earlier shards left, so that ``limit`` bounds the whole round."""
        if self._closed:
            raise StorageError(f"store at {self.layout.folder} is closed")
        if self.read_only:
            raise StorageError(f"{self.layout.folder} is open read-only")
        groups: dict[int | None, list[Write]] = {}  # None: the catalog
        prunes: list[PruneWrite] = []
        for w in writes:
            if isinstance(w, SagaWrite):
                shard = saga_shard(w.tenant_id, w.saga_id, self.shards)
                self._shard_store(shard)
                groups.setdefault(shard, []).append(w)
            elif isinstance(w, JourneyWrite):
                if not self.catalog_owner:
                    raise StorageError(f"journeys are written by the owner of shard {CATALOG_SHARD}")
                groups.setdefault(None, []).append(w)
            elif isinstance(w, PruneWrite):
                prunes.append(w)
            else:
                raise InvalidInputError(f"unknown write {type(w).__name__}")
        if prunes:
            self._submit_chain(groups, prunes, callback)
            return
        self._submit_parallel(groups, callback)

    def _store_of(self, group: int | None) -> Any:
        return self._catalog if group is None else self._stores[group]

    def _submit_parallel(self, groups: dict[int | None, list[Write]], callback: CommitCallback) -> None:
        if not groups:
            run_callback(callback, None)
            return
        lock = threading.Lock()
        left = [len(groups)]
        first: list[BaseException | None] = [None]

        def done(error: BaseException | None) -> None:
            with lock:
                if error is not None and first[0] is None:
                    first[0] = error
                left[0] -= 1
                last = left[0] == 0
            if last:
                callback(first[0])

        for group, ws in groups.items():
            self._store_of(group).submit(ws, done)

    def _submit_chain(self, groups: dict[int | None, list[Write]], prunes: list[PruneWrite],
                      callback: CommitCallback) -> None:
        for p in prunes:
            p.result.reset()
        order: list[int | None] = [None] if None in groups else []
        order += sorted(self._stores)

        def step(i: int) -> None:
            if i == len(order):
                callback(None)
                return
            group = order[i]
            ws = list(groups.get(group, []))
            parts: list[tuple[PruneWrite, PruneWrite]] = []
            if group is not None:
                for p in prunes:
                    remaining = p.limit - p.result.sagas
                    if remaining > 0:
                        part = PruneWrite(p.now, p.retention_s, remaining, PruneResult(), p.feed_keep, p.feed_budget)
                        parts.append((p, part))
                        ws.append(part)
                    else:
                        store = self._stores[group]
                        p.result.add(PruneResult(), more=store.count_expired(p.now, p.retention_s, 1) > 0,
                                     feed_more=bool(p.feed_budget) and store.feed_pending(p.feed_keep))
            if not ws:
                step(i + 1)
                return

            def done(error: BaseException | None) -> None:
                if error is not None:
                    callback(error)
                    return
                for p, part in parts:
                    p.result.add(part.result)
                step(i + 1)

            self._store_of(group).submit(ws, done)

        step(0)

    def write(self, writes: Sequence[Write]) -> None:
        event = threading.Event()
        box: list[BaseException | None] = [None]

        def callback(err: BaseException | None) -> None:
            box[0] = err
            event.set()

        self.submit(writes, callback)
        event.wait()
        if box[0] is not None:
            raise box[0]

    # ---- Queries -------------------------------------------------------------------------

    def load_saga(self, saga_id: str) -> dict[str, Any] | None:
        return self._by_key(saga_id).load_saga(saga_id)

    def load_history(self, saga_id: str, *, after_seq: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        return self._by_key(saga_id).load_history(saga_id, after_seq=after_seq, limit=limit)

    def load_journey(self, journey_id: str, version: int | None = None) -> dict[str, Any] | None:
        return self._catalog.load_journey(journey_id, version)

    def list_journeys(self, tenant_id: str) -> list[dict[str, Any]]:
        return self._catalog.list_journeys(tenant_id)

    def find_sagas(self, query: Query, *, limit: int = 100,
                   after: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Each owned shard's page after the same index key, merged (``page_merge``)."""
        if limit < 1:
            raise InvalidInputError(f"limit must be >= 1, got {limit}")
        pages = [r.find_sagas_keyed(query, limit=limit, after=after) for r in self._readers()]
        rows, last = merge_pages(pages, limit, newest=query.order == "newest")
        return [snap for _, snap in rows], None if last is None else recent.encode_cursor(last)

    def tenant_counts(self, tenant_id: str) -> tuple[dict[str, int], int]:
        answers = [r.tenant_counts(tenant_id) for r in self._readers()]
        return _summed(c for c, _ in answers), sum(p for _, p in answers)

    # The int feed of the port is that of a one-shard store; with more shards there is no
    # global commit order, only a vector of per-shard positions (feed_vector_*).
    def _single(self) -> Any:
        if self.shards != 1:
            raise StorageError(f"a store of {self.shards} shards has a vector feed: use feed_vector_*")
        return self._stores[0]

    def feed_floor(self) -> int:
        return int(self._single().feed_floor())

    def feed_end(self) -> int:
        return int(self._single().feed_end())

    def feed_scan(self, position: int, limit: int = 1000, *,
                  tenant: str | None = None) -> tuple[list[tuple[int, str, dict[str, Any]]], int]:
        rows, last = self._single().feed_scan(position, limit, tenant=tenant)
        return rows, last

    def feed_vector_end(self) -> tuple[int, ...]:
        """Per shard (all S), its last feed position."""
        return tuple(r.feed_end() for r in self._readers())

    def feed_vector_floor(self) -> tuple[int, ...]:
        return tuple(r.feed_floor() for r in self._readers())

    def feed_vector_scan(self, positions: Sequence[int], limit: int = 1000, *,
                         tenant: str | None = None) -> tuple[list[FeedRow], tuple[int, ...]]:
        """Rows after ``positions`` (shard by shard, each given ``limit // owned`` positions
        to look at so that a busy shard cannot starve the others), each with the vector just
        after it, and the vector of the positions looked at."""
        if len(positions) != self.shards:
            raise InvalidInputError(f"a feed position of this store has {self.shards} parts, got {len(positions)}")
        current = list(positions)
        budget = max(1, limit // self.shards)
        out: list[FeedRow] = []
        for s, reader in enumerate(self._readers()):
            rows, last = reader.feed_scan(current[s], budget, tenant=tenant)
            for pos, key, entry in rows:
                current[s] = pos
                out.append((tuple(current), key, entry))
            current[s] = last
        return out, tuple(current)

    def sagas_with_work_owed(self) -> list[str]:
        """Of the owned shards: their owner resumes them."""
        return sorted(k for r in self._owned_readers() for k in r.sagas_with_work_owed())

    def pending_wakeups(self) -> list[tuple[str, float]]:
        return sorted(w for r in self._owned_readers() for w in r.pending_wakeups())

    def get_idempotency(self, key: str) -> dict[str, Any] | None:
        """An idempotency key does not name its saga, so its shard is unknown here: every
        shard is asked, then the catalog (journey creates)."""
        for r in [*self._readers(), self._catalog]:
            found = r.get_idempotency(key)
            if found is not None:
                return dict(found)
        return None

    def count_by_status(self) -> dict[tuple[str, str], int]:
        return _summed(r.count_by_status() for r in self._readers())

    def oldest_active(self) -> dict[str, float]:
        return _oldest(self._readers())

    def count_compensation_failed(self) -> dict[str, int]:
        return _summed(r.count_compensation_failed() for r in self._readers())

    def quarantine(self, where: str, reason: str) -> None:
        self._catalog.quarantine(where, reason)

    def quarantined(self) -> list[dict[str, str]]:
        return sorted((q for r in [*self._readers(), self._catalog] for q in r.quarantined()),
                      key=lambda q: (q["where"], q["reason"]))

    # ---- Admin ---------------------------------------------------------------------------

    def feed_pending(self, keep: int) -> bool:
        return any(r.feed_pending(keep) for r in self._writers())

    def stats(self) -> dict[str, Any]:
        """Sums over the owned shards and the catalog (maxima for the max_* figures)."""
        out: dict[str, Any] = {}
        for r in [*self._owned_readers(), self._catalog]:
            for k, v in r.stats().items() if hasattr(r, "stats") else ():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out[k] = max(out.get(k, 0), v) if k.startswith("max_") else out.get(k, 0) + v
        out["shards"] = self.shards
        out["owned_shards"] = sorted(self.owned)
        return out

    def count_expired(self, now: float, retention_s: float | None, limit: int | None = None) -> int:
        total = sum(r.count_expired(now, retention_s, limit) for r in self._writers())
        return total if limit is None else min(total, limit)

    def prune(self, now: float, retention_s: float | None, limit: int) -> PruneResult:
        op = PruneWrite(now, retention_s, limit)
        self.write([op])
        return op.result

    def backup(self, dest_dir: str, *, compact: bool = True) -> None:
        """Every shard (those of other workers through their read-only views), then the
        catalog, then ``shards.json`` last: a destination without it is an unfinished backup.
        Each shard's copy is consistent in itself; shards are copied one after another."""
        if os.path.exists(layout_file(dest_dir)):
            raise StorageError(f"backup destination {dest_dir} already holds a {LAYOUT_FILE}")
        os.makedirs(dest_dir, exist_ok=True)
        dest = ShardLayout(dest_dir, self.shards)
        for s, reader in enumerate(self._readers()):
            reader.backup(dest.shard_dir(s), compact=compact)
        self._catalog.backup(dest.catalog, compact=compact)
        with open(layout_file(self.layout.folder), "rb") as f:
            write_atomically(layout_file(dest_dir), f.read())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for r in [*self._readers(), self._catalog]:
            r.close()

    def __enter__(self) -> ShardedStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ShardedStore"]
