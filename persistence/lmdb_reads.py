"""Reads of the LMDB store: short read-only transactions on the caller's thread.

The base of ``LmdbStore`` and ``ReadOnlyStore``. Every record that fails to decode is
quarantined (remembered, and counted in ``stats``) and skipped by the listings.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import lmdb

from saga_journey.persistence import recent, retention
from saga_journey.persistence.keys import scoped_key
from saga_journey.persistence.lmdb_env import Gate
from saga_journey.persistence.lmdb_keys import (
    ACTIVE, SEP, SEQ_LEN, VERSION_LEN, hist_key, journey_key, journey_prefix, since_prefix,
    split_hist_key, split_journey_key,
)
from saga_journey.persistence.query import Query
from saga_journey.persistence.records import decode_record
from saga_journey.runtime.errors import CorruptRecordError, InvalidInputError, StorageError
from saga_journey.runtime.model import SAGA_STATES

if TYPE_CHECKING:
    from saga_journey.persistence.lmdb_env import Txn, Cur

log = logging.getLogger("saga_journey.persistence")


class LmdbReader:
    """Queries over an open environment's databases: the base of ``LmdbStore`` (the writer)
    and ``ReadOnlyStore`` (reads beside a running writer)."""

    _journeys: Any
    _sagas: Any
    _history: Any
    _idx: Any
    _owed: Any
    _counts: Any
    _idem: Any
    _meta: Any
    _since: Any
    _comp_failed: Any
    _comp_failed_n: Any
    _recent: Any
    _feed: Any

    def __init__(self, path: str) -> None:
        """The environment is opened by the subclass (``_attach``), how it needs it."""
        self._path = path
        self._gate = Gate()
        self._env_closed = False
        self._stats_lock = threading.Lock()
        self._quarantine: dict[str, str] = {}  # where -> why; records that failed to decode

    def _attach(self, env: Any) -> None:
        self._env = env

    def _open_dbs(self, names: Iterable[str], *, create: bool) -> None:
        """Open the named databases as ``self._<name>`` (``lmdb_keys`` lists them)."""
        for name in names:
            setattr(self, f"_{name}", self._env.open_db(name.encode(), create=create))

    def _close_env(self) -> bool:
        """Close the environment once readers are out; False if it was already closed."""
        with self._gate.exclusive():
            if self._env_closed:
                return False
            self._env_closed = True
            self._env.close()
            return True

    @staticmethod
    def _latest_journey_key(cursor: Cur, prefix: bytes) -> bytes | None:
        found = cursor.prev() if cursor.set_range(prefix + b"\xff") else cursor.last()
        if found and cursor.key().startswith(prefix):
            return cursor.key()
        return None

    # ---- reading -----------------------------------------------------------------------

    def _decode(self, raw: bytes, where: str) -> Any:
        """decode_record, remembering (quarantining) every record that fails it."""
        try:
            return decode_record(raw, where=where)
        except CorruptRecordError as exc:
            self.quarantine(where, exc.message)
            raise

    def quarantine(self, where: str, reason: str) -> None:
        with self._stats_lock:
            if where not in self._quarantine:
                log.error("quarantined corrupt record %s: %s", where, reason)
            self._quarantine[where] = reason

    def quarantined(self) -> list[dict[str, str]]:
        """Records found corrupt by reads of this process (``saga-journey quarantine`` lists
        every corrupt record in a folder)."""
        with self._stats_lock:
            return [{"where": w, "reason": r} for w, r in sorted(self._quarantine.items())]

    @contextmanager
    def _read(self) -> Iterator[Txn]:
        with self._gate.shared():
            if self._env_closed:
                raise StorageError(f"store at {self._path} is closed")
            try:
                txn = self._env.begin(buffers=False)
            except lmdb.MapResizedError:
                txn = None  # another process grew the map: adopt its size (below), then read
            except lmdb.Error as exc:
                raise StorageError(f"read from {self._path} failed: {exc}") from exc
            if txn is not None:
                try:
                    with txn:
                        yield txn
                except lmdb.Error as exc:
                    raise StorageError(f"read from {self._path} failed: {exc}") from exc
                return
        self._adopt_map_size()
        with self._read() as again:
            yield again

    def _adopt_map_size(self) -> None:
        """Take the map size another process (the owner of a shard this one only reads) grew
        the environment to; LMDB wants no transaction of this process open meanwhile."""
        with self._gate.exclusive():
            if not self._env_closed:
                self._env.set_mapsize(0)

    def backup(self, dest_dir: str, *, compact: bool = True) -> None:
        """Consistent copy of the environment into ``dest_dir`` (created; must hold no data.mdb)."""
        os.makedirs(dest_dir, exist_ok=True)
        if os.path.exists(os.path.join(dest_dir, "data.mdb")):
            raise StorageError(f"backup destination {dest_dir} already holds a data.mdb")
        for attempt in (1, 2):
            with self._gate.shared():
                if self._env_closed:
                    raise StorageError(f"store at {self._path} is closed")
                try:
                    self._env.copy(dest_dir, compact=compact)
                    return
                except lmdb.MapResizedError:
                    if attempt == 2:
                        raise StorageError(f"backup of {self._path}: its map keeps growing") from None
                except lmdb.Error as exc:
                    raise StorageError(f"backup of {self._path} to {dest_dir} failed: {exc}") from exc
            self._adopt_map_size()

    def load_saga(self, saga_id: str) -> dict | None:
        """``saga_id`` is the internal key (``layout.scoped_key``), as for every read by id."""
        with self._read() as txn:
            raw = txn.get(saga_id.encode(), db=self._sagas)
            return None if raw is None else self._decode(raw, f"sagas/{saga_id}")

    def load_history(
        self, saga_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[dict]:
        if after_seq < 0 or (limit is not None and limit < 0):
            raise InvalidInputError("after_seq and limit must be >= 0")
        prefix = saga_id.encode() + SEP
        out: list[dict] = []
        with self._read() as txn:
            cursor = txn.cursor(db=self._history)
            found = cursor.set_range(hist_key(saga_id.encode(), after_seq + 1))
            while found and (limit is None or len(out) < limit):
                key = cursor.key()
                if not key.startswith(prefix) or len(key) != len(prefix) + SEQ_LEN:
                    break
                seq = split_hist_key(key)[1]
                out.append(self._decode(cursor.value(), f"history/{saga_id}/{seq}"))
                found = cursor.next()
        return out

    def load_journey(self, journey_id: str, version: int | None = None) -> dict | None:
        prefix = journey_prefix(journey_id)
        with self._read() as txn:
            if version is None:
                key = self._latest_journey_key(txn.cursor(db=self._journeys), prefix)
                if key is None:
                    return None
            else:
                key = journey_key(prefix, version)
            raw = txn.get(key, db=self._journeys)
            if raw is None:
                return None
            return self._decode(raw, f"journeys/{journey_id}/v{split_journey_key(key)[1]}")

    def list_journeys(self, tenant_id: str) -> list[dict]:
        out: list[dict] = []
        scope = scoped_key(tenant_id, "").encode()
        with self._read() as txn:
            latest: list[bytes] = []
            prev_prefix = None
            cursor = txn.cursor(db=self._journeys)
            found = cursor.set_range(scope)
            while found and cursor.key().startswith(scope):
                key = cursor.key()
                found = cursor.next()
                prefix = key[:-VERSION_LEN]
                if prefix == prev_prefix:
                    latest[-1] = key
                else:
                    latest.append(key)
                    prev_prefix = prefix
            for key in latest:
                jid, version = split_journey_key(key)
                where = f"journeys/{jid.decode()}/v{version}"
                raw = txn.get(key, db=self._journeys)
                if raw is None:
                    continue  # listed by the cursor of this same transaction: never happens
                try:
                    journey = self._decode(raw, where)
                except CorruptRecordError:
                    continue  # quarantined; listed by `saga-journey quarantine`
                if journey.get("tenant_id") == tenant_id:
                    out.append(journey)
        return out

    def find_sagas(self, query: Query, *, limit: int = 100,
                   after: str | None = None) -> tuple[list[dict], str | None]:
        """A page of snapshots by ``updated_at`` (``query.order``), filtered from the index."""
        rows, last = self.find_sagas_keyed(query, limit=limit, after=after)
        return [snap for _, snap in rows], None if last is None else recent.encode_cursor(last)

    def find_sagas_keyed(self, query: Query, *, limit: int = 100, after: str | None = None
                         ) -> tuple[list[tuple[bytes, dict]], bytes | None]:
        """``find_sagas`` with each snapshot's index key and the raw key to resume after:
        what a sharded store merges pages of shards by (``page_merge``)."""
        if limit < 1:
            raise InvalidInputError(f"limit must be >= 1, got {limit}")
        with self._read() as txn:
            keys, last = recent.scan_keys(txn, self._recent, query, limit, after)
            out: list[tuple[bytes, dict]] = []
            for ikey in keys:
                key = scoped_key(query.tenant, recent.local_of(query, ikey))
                raw = txn.get(key.encode(), db=self._sagas)
                if raw is None:
                    raise CorruptRecordError(f"recent entry for sagas/{key} has no snapshot")
                try:
                    out.append((ikey, self._decode(raw, f"sagas/{key}")))
                except CorruptRecordError:
                    continue  # quarantined: one bad record must not hide every other saga
        return out, last

    def tenant_counts(self, tenant_id: str) -> tuple[dict[str, int], int]:
        """({status: sagas}, parked sagas) of one tenant, from the list index."""
        with self._read() as txn:
            return recent.tenant_counts(txn, self._recent, tenant_id, SAGA_STATES)

    def feed_floor(self) -> int:
        """The highest feed position removed by the feed retention (0: none)."""
        with self._read() as txn:
            return retention.feed_floor(txn, self._meta)

    def feed_end(self) -> int:
        """The global position of the last committed history entry (0: none)."""
        with self._read() as txn:
            return recent.feed_end(txn, self._feed)

    def feed_scan(self, position: int, limit: int = 1000, *,
                  tenant: str | None = None) -> tuple[list[tuple[int, str, dict]], int]:
        """Committed history entries among the ``limit`` feed positions after ``position``:
        ([(position, scoped saga key, entry)], last position looked at); with ``tenant``, only
        that tenant's entries are returned (the others are still counted as looked at)."""
        scope = None if tenant is None else scoped_key(tenant, "")
        out: list[tuple[int, str, dict]] = []
        last = position
        with self._read() as txn:
            for pos, value in recent.feed_after(txn, self._feed, position, limit):
                last = pos
                hkey = value[:-4]
                sid, seq = split_hist_key(hkey)
                key = sid.decode()
                if scope is not None and not key.startswith(scope):
                    continue
                raw = txn.get(hkey, db=self._history)
                if raw is None or not recent.feed_names(value, raw):
                    continue  # pruned since (and perhaps the id used again)
                out.append((pos, key, self._decode(raw, f"history/{key}/{seq}")))
        return out, last

    def sagas_with_work_owed(self) -> list[str]:
        """Sagas to activate at once on recovery (an empty owed value: work is due now)."""
        with self._read() as txn:
            return [k.decode() for k, v in txn.cursor(db=self._owed) if not v]

    def pending_wakeups(self) -> list[tuple[str, float]]:
        with self._read() as txn:
            return [
                (k.decode(), struct.unpack(">d", v)[0])
                for k, v in txn.cursor(db=self._owed)
                if len(v) == 8
            ]

    def count_by_status(self) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        with self._read() as txn:
            for key, value in txn.cursor(db=self._counts):
                journey_type, status = key.decode().split("\0")
                out[(journey_type, status)] = int.from_bytes(value, "big")
        return out

    def oldest_active(self) -> dict[str, float]:
        """For IN_PROGRESS and COMPENSATING: when the longest-waiting saga entered that status.

        One cursor seek per status (the ``since`` index is ordered by entry time).
        """
        out: dict[str, float] = {}
        with self._read() as txn:
            cursor = txn.cursor(db=self._since)
            for status in ACTIVE:
                prefix = since_prefix(status)
                if cursor.set_range(prefix) and cursor.key().startswith(prefix):
                    micros = cursor.key()[len(prefix) : len(prefix) + 8]
                    out[status] = int.from_bytes(micros, "big") / 1_000_000
        return out

    def count_compensation_failed(self) -> dict[str, int]:
        """FAILED sagas whose compensation failed (they need an operator), by journey type."""
        with self._read() as txn:
            return {
                k.decode(): int.from_bytes(v, "big")
                for k, v in txn.cursor(db=self._comp_failed_n)
            }

    def get_idempotency(self, key: str) -> dict | None:
        with self._read() as txn:
            raw = txn.get(key.encode(), db=self._idem)
            return None if raw is None else self._decode(raw, f"idem/{key}")

