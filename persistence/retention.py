"""Retention indexes of the LMDB store and the pruning of expired sagas (inside the writer's txn).

A saga becomes *prunable* when it is COMPLETED, or FAILED with its compensation done. Parked
sagas (FAILED, compensation failed) wait for an operator and are never indexed here, so never
pruned; a parked saga repaired later becomes prunable at that write.

``finished`` orders prunable sagas by when they may go:
  ``b"e" + micros(expire_at) + sid`` -> micros(finished_at): the journey has its own retention_s
  ``b"g" + micros(finished_at) + sid`` -> b"": the global retention (or a manual prune) decides
``finished_of`` maps sid -> its ``finished`` key; ``idem_of`` maps ``sid + NUL + digest(key)``
-> idempotency key, so a pruned saga's idempotency records go with it. Both orders are
monotone in the bound they are cut at, so a round walks only what it removes (plus one key).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from saga_journey.persistence.recent import feed_names as recent_names
from saga_journey.persistence import lmdb_keys
from saga_journey.persistence.lmdb_keys import SEP as _SEP, hist_prefix
from saga_journey.persistence.records import decode_record
from saga_journey.persistence.store import PruneResult, PruneWrite
from saga_journey.runtime.errors import CorruptRecordError
from saga_journey.runtime.model import COMP_FAILED, COMPLETED, FAILED

if TYPE_CHECKING:
    from saga_journey.persistence.lmdb_env import Txn

OWN, GLOBAL = b"e", b"g"
_MICROS = 8


def prunable(status: Any, compensation_status: Any) -> bool:
    return status == COMPLETED or (status == FAILED and compensation_status != COMP_FAILED)


def micros(at: float) -> bytes:
    return max(0, min(int(at * 1_000_000), (1 << 64) - 1)).to_bytes(_MICROS, "big")


def finished_key(sid: bytes, finished_at: float, retention_s: float | None) -> tuple[bytes, bytes]:
    """(key, value) of a prunable saga's ``finished`` entry."""
    if retention_s is None:
        return GLOBAL + micros(finished_at) + sid, b""
    return OWN + micros(finished_at + retention_s) + sid, micros(finished_at)


def idem_of_key(sid: bytes, idem_key: bytes) -> bytes:
    return sid + _SEP + hashlib.blake2b(idem_key, digest_size=16).digest()


@dataclass(slots=True)
class RetentionDbs:
    sagas: Any
    history: Any
    idx: Any
    owed: Any
    since: Any
    idem: Any
    finished: Any
    finished_of: Any
    idem_of: Any


class Retention:
    """Maintains the retention indexes and prunes, always inside the caller's write txn."""

    def __init__(
        self, dbs: RetentionDbs, add_count: Callable[[Txn, str, str, int], None],
        quarantine: Callable[[str, str], None],
        forget: Callable[[Txn, bytes, str, str], None] | None = None,
    ) -> None:
        self.dbs = dbs
        self._add_count = add_count
        self._quarantine = quarantine
        self._forget = forget  # drops a pruned saga from indexes kept elsewhere (the list index)

    # ---- index maintenance (each saga write) --------------------------------------------

    def track(
        self, txn: Txn, sid: bytes, status: str, prev_status: str | None,
        snapshot: dict, retention_s: float | None, finished_at: float | None,
    ) -> None:
        d = self.dbs
        if prunable(status, snapshot.get("compensation_status")):
            key, value = finished_key(sid, finished_at or 0.0, retention_s)
            if txn.put(sid, key, db=d.finished_of, overwrite=False):  # first write as finished
                txn.put(key, value, db=d.finished)
        elif prev_status in (COMPLETED, FAILED):  # e.g. a repaired saga retried again
            old = txn.pop(sid, db=d.finished_of)
            if old is not None:
                txn.delete(old, db=d.finished)

    def track_idempotency(self, txn: Txn, sid: bytes, idem_key: bytes) -> None:
        txn.put(idem_of_key(sid, idem_key), idem_key, db=self.dbs.idem_of)

    def backfill(self, txn: Txn) -> int:
        """Index a folder written before these indexes existed (every saga: the global rule)."""
        d, n = self.dbs, 0
        for sid, raw in txn.cursor(db=d.sagas):
            try:
                snap = decode_record(raw, where=f"sagas/{sid.decode()}")
            except CorruptRecordError:
                continue
            if isinstance(snap, dict) and prunable(snap.get("status"), snap.get("compensation_status")):
                at = snap.get("updated_at")
                at = float(at) if isinstance(at, (int, float)) and not isinstance(at, bool) else 0.0
                self.track(txn, sid, snap["status"], None, snap, None, at)
                n += 1
        for ikey, raw in list(txn.cursor(db=d.idem)):
            try:
                record = decode_record(raw, where=f"idem/{ikey.decode(errors='replace')}")
                saga_id = record["response"]["saga_id"]
            except (CorruptRecordError, KeyError, TypeError):
                continue  # a journey's record, or unreadable: kept
            tenant = ikey.decode(errors="replace").partition("/")[0]
            if isinstance(saga_id, str):
                self.track_idempotency(txn, f"{tenant}/{saga_id}".encode(), ikey)
        return n

    # ---- pruning --------------------------------------------------------------------------

    def expired(
        self, txn: Txn, now: float, retention_s: float | None, limit: int | None
    ) -> tuple[list[tuple[bytes, bytes]], bool]:
        """Up to ``limit`` (finished key, sid) expired at ``now``, and whether more are."""
        bounds = [(OWN, micros(now))]
        if retention_s is not None:
            bounds.append((GLOBAL, micros(now - retention_s)))
        out: list[tuple[bytes, bytes]] = []
        cursor = txn.cursor(db=self.dbs.finished)
        for prefix, bound in bounds:
            found = cursor.set_range(prefix)
            while found:
                key = cursor.key()
                if not key.startswith(prefix) or key[1 : 1 + _MICROS] > bound:
                    break
                if limit is not None and len(out) == limit:
                    return out, True
                out.append((key, key[1 + _MICROS :]))
                found = cursor.next()
        return out, False

    def prune(self, txn: Txn, op: PruneWrite) -> None:
        op.result.reset()  # a batch that failed is re-applied alone: start from nothing
        victims, op.result.more = self.expired(txn, op.now, op.retention_s, op.limit)
        for key, sid in victims:
            self._prune_one(txn, key, sid, op.result)

    def _prune_one(self, txn: Txn, key: bytes, sid: bytes, result: PruneResult) -> None:
        d = self.dbs
        txn.delete(key, db=d.finished)
        txn.delete(sid, db=d.finished_of)
        result.records += 2
        raw = txn.get(sid, db=d.sagas)
        if raw is None:
            return  # a dangling entry: dropping it was all there was to do
        where = f"sagas/{sid.decode(errors='replace')}"
        try:
            snap = decode_record(raw, where=where)
            status, tenant = snap["status"], snap["tenant_id"]
            saga_id, journey_type = snap["saga_id"], snap["journey_type"]
        except (CorruptRecordError, KeyError, TypeError) as exc:
            self._quarantine(where, f"not pruned: {exc}")  # kept for the operator to look at
            return
        if not prunable(status, snap.get("compensation_status")):
            return  # the index disagreed with the snapshot: keep the saga
        txn.delete(sid, db=d.sagas)
        result.records += 1 + self._delete_prefix(txn, d.history, hist_prefix(sid))
        for ikey in self._idem_keys(txn, sid):
            result.records += int(txn.delete(ikey, db=d.idem))
        result.records += self._delete_prefix(txn, d.idem_of, sid + _SEP)
        if txn.delete(f"{tenant}\0{status}\0{saga_id}".encode(), db=d.idx):
            self._add_count(txn, journey_type, status, -1)
            result.records += 1
        txn.delete(sid, db=d.owed)
        since = txn.pop(sid, db=d.since)
        if since is not None:
            txn.delete(since, db=d.since)
        if self._forget is not None:
            self._forget(txn, sid, tenant, saga_id)
        result.pruned[journey_type] = result.pruned.get(journey_type, 0) + 1

    def _idem_keys(self, txn: Txn, sid: bytes) -> list[bytes]:
        prefix = sid + _SEP
        cursor = txn.cursor(db=self.dbs.idem_of)
        out = []
        found = cursor.set_range(prefix)
        while found and cursor.key().startswith(prefix):
            out.append(cursor.value())
            found = cursor.next()
        return out

    @staticmethod
    def _delete_prefix(txn: Txn, db: Any, prefix: bytes) -> int:
        """Delete every key that is ``prefix`` + a fixed-length tail (history: 8, idem_of: 16)."""
        cursor = txn.cursor(db=db)
        n = 0
        found = cursor.set_range(prefix)
        while found and cursor.key().startswith(prefix):
            found = cursor.delete()
            n += 1
        return n


# ---- the commit feed --------------------------------------------------------------------

FEED_FLOOR, FEED_SWEEP = lmdb_keys.FEED_FLOOR, lmdb_keys.FEED_SWEEP


def feed_floor(txn: Txn, meta: Any) -> int:
    """The highest feed position the feed retention removed (0: none), from ``meta``."""
    raw = txn.get(FEED_FLOOR, db=meta)
    return int.from_bytes(raw, "big") if raw else 0


class FeedRetention:
    """Keeps the commit feed (``persistence.recent``) bounded, inside a ``PruneWrite``'s txn.

    Two rules, each bounded by ``op.feed_budget`` entries per round:

    - *retention*: beyond ``op.feed_keep`` entries the oldest are removed, and the highest
      position removed is recorded as the feed's *floor*. A stream resuming after an id below
      the floor may have missed events: the gateway answers it 410 (re-list, then follow).
    - *sweep*: entries naming a history record that is gone (its saga was pruned) are removed.
      A pass walks the feed from its start, continuing where the previous round stopped; a
      round that prunes sagas marks the feed dirty, so a new pass follows the current one.
      This removes only what no reader would send (readers skip such entries already), so it
      does not move the floor.
    """

    def __init__(self, feed: Any, history: Any, meta: Any) -> None:
        self.feed, self.history, self.meta = feed, history, meta

    def floor(self, txn: Txn) -> int:
        return feed_floor(txn, self.meta)

    def _sweep_state(self, txn: Txn) -> tuple[int, bool]:
        raw = txn.get(FEED_SWEEP, db=self.meta)
        return (int.from_bytes(raw[:8], "big"), bool(raw[8])) if raw else (0, False)

    def pending(self, txn: Txn, keep: int) -> bool:
        """Whether a round would find feed work (entries beyond ``keep``, or a sweep owed)."""
        pos, dirty = self._sweep_state(txn)
        return bool(pos or dirty) or (keep > 0 and txn.stat(self.feed)["entries"] > keep)

    def prune(self, txn: Txn, op: PruneWrite) -> None:
        result = op.result
        pos, dirty = self._sweep_state(txn)
        dirty = dirty or bool(result.pruned)
        budget = op.feed_budget
        if budget <= 0:
            if dirty:
                txn.put(FEED_SWEEP, pos.to_bytes(8, "big") + b"\1", db=self.meta)
            return
        excess = txn.stat(self.feed)["entries"] - op.feed_keep if op.feed_keep > 0 else 0
        if excess > 0:
            cursor = txn.cursor(db=self.feed)
            floor, n = None, min(excess, budget)
            found = cursor.first()
            while found and n:
                floor = cursor.key()
                cursor.delete()
                result.feed_removed += 1
                n -= 1
                found = bool(cursor.key())
            if floor is not None:
                txn.put(FEED_FLOOR, floor, db=self.meta)
            budget -= min(excess, budget)
            result.feed_more = excess > op.feed_budget
        if pos == 0 and dirty and budget > 0:  # a new pass starts; prunes from now mark it dirty again
            dirty = False
            pos = -1
        if pos != 0 and budget > 0:
            cursor = txn.cursor(db=self.feed)
            found = cursor.set_range((max(pos, 0) + 1).to_bytes(8, "big"))
            while found and budget:
                budget -= 1
                pos = int.from_bytes(cursor.key(), "big")
                value = cursor.value()
                if recent_names(value, txn.get(value[:-4], db=self.history)):
                    found = cursor.next()
                else:
                    cursor.delete()
                    result.feed_removed += 1
                    found = bool(cursor.key())
            if not found:
                pos = 0  # the pass is complete
        pos = max(pos, 0)
        txn.put(FEED_SWEEP, pos.to_bytes(8, "big") + (b"\1" if dirty else b"\0"), db=self.meta)
        result.feed_more = result.feed_more or bool(pos) or dirty


def expired_count(
    txn: Txn, dbs: RetentionDbs, now: float, retention_s: float | None, limit: int | None
) -> int:
    return len(Retention(dbs, lambda *a: None, lambda *a: None).expired(txn, now, retention_s, limit)[0])


__all__ = ["FeedRetention", "Retention", "RetentionDbs", "expired_count", "finished_key", "prunable"]
