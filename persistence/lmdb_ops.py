"""Turning writes into LMDB operations: encode each record once on the caller's thread
(``prepare``), then apply the encoded operations inside the writer's transaction (``apply``).

A layer of ``LmdbStore``; keys come from ``lmdb_keys``, records from ``records``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from saga_journey.persistence import recent
from saga_journey.persistence.keys import scoped_key
from saga_journey.persistence.lmdb_keys import (
    ACTIVE, count_key, hist_key, idx_key, journey_key, journey_prefix, name, since_key,
)
from saga_journey.persistence.lmdb_reads import LmdbReader
from saga_journey.persistence.records import encode_record
from saga_journey.persistence.retention import FeedRetention, Retention
from saga_journey.persistence.store import JourneyWrite, PruneWrite, SagaWrite, Write
from saga_journey.runtime.errors import StorageError
from saga_journey.runtime.model import COMP_FAILED, FAILED

if TYPE_CHECKING:
    from saga_journey.persistence.lmdb_env import Txn


@dataclass(slots=True)
class SagaOp:
    write: SagaWrite
    sid: bytes
    snapshot: bytes
    history: list[tuple[int, bytes, bytes]]  # (seq, key, record)
    idem: tuple[bytes, bytes] | None


@dataclass(slots=True)
class JourneyOp:
    journey_id: str
    version: int
    tenant_id: str
    prefix: bytes
    key: bytes
    record: bytes
    idem: tuple[bytes, bytes] | None = None


Op = SagaOp | JourneyOp | PruneWrite


def entered_at(snapshot: dict) -> float | None:
    """The snapshot's ``updated_at``: on a status change, the time the saga entered it."""
    at = snapshot.get("updated_at")
    if isinstance(at, bool) or not isinstance(at, (int, float)) or at != at:
        return None
    return float(at)



def encode(payload: Any, where: str) -> bytes:
    try:
        return encode_record(payload)
    except Exception as exc:
        raise StorageError(f"{where}: cannot be encoded: {exc}", where=where) from exc



class LmdbOps(LmdbReader):
    """Prepare and apply saga, journey and prune writes (a layer of ``LmdbStore``)."""

    _max_key: int  # LMDB's key size limit, read when the environment opens
    _retention: Retention
    _feed_retention: FeedRetention
    _feed_next: int  # the feed position of the next history entry

    def _check_key(self, key: bytes, where: str) -> bytes:
        if len(key) > self._max_key:
            raise StorageError(f"{where}: key is {len(key)} bytes, LMDB allows {self._max_key}")
        return key

    def _prepare(self, w: Write) -> SagaOp | JourneyOp | PruneWrite:
        if isinstance(w, PruneWrite):
            if isinstance(w.limit, bool) or not isinstance(w.limit, int) or w.limit < 1:
                raise StorageError(f"PruneWrite.limit must be an int >= 1, got {w.limit!r}")
            return w
        try:
            if isinstance(w, SagaWrite):
                return self._prepare_saga(w)
            if isinstance(w, JourneyWrite):
                return self._prepare_journey(w)
        except ValueError as exc:  # from scoped_key: a tenant id that cannot scope a key
            raise StorageError(str(exc)) from exc
        raise StorageError(f"cannot store {type(w).__name__}; expected SagaWrite or JourneyWrite")

    def _prepare_saga(self, w: SagaWrite) -> SagaOp:
        saga_id = name(w.saga_id, "saga_id")
        key = scoped_key(name(w.tenant_id, "tenant_id"), saga_id)
        where = f"sagas/{key}"
        name(w.journey_type, "journey_type")
        name(w.status, "status")
        if w.prev_status is not None:
            name(w.prev_status, "prev_status")
        if not isinstance(w.snapshot, dict):
            raise StorageError(f"{where}: snapshot must be a dict")
        sid = key.encode()
        self._check_key(hist_key(sid, 0), where)
        self._check_key(idx_key(w.tenant_id, w.status, saga_id), where)
        if w.prev_status is not None:
            self._check_key(idx_key(w.tenant_id, w.prev_status, saga_id), where)
        history = []
        if w.events:
            if isinstance(w.first_seq, bool) or not isinstance(w.first_seq, int) or w.first_seq < 1:
                raise StorageError(f"{where}: first_seq must be an int >= 1, got {w.first_seq!r}")
            for i, event in enumerate(w.events):
                seq = w.first_seq + i
                history.append(
                    (seq, hist_key(sid, seq), encode(event, f"history/{key}/{seq}"))
                )
        idem = None if w.idempotency is None else self._prepare_idem(w.idempotency, where)
        return SagaOp(w, sid, encode(w.snapshot, where), history, idem)

    def _prepare_journey(self, w: JourneyWrite) -> JourneyOp:
        j = w.journey
        if not isinstance(j, dict):
            raise StorageError("journey must be a dict")
        journey_id = name(j.get("journey_id"), "journey_id")
        tenant_id = name(j.get("tenant_id"), "tenant_id")
        version = j.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version < 10**10:
            raise StorageError(f"journeys/{journey_id}: version must be an int >= 1, got {version!r}")
        prefix = journey_prefix(scoped_key(tenant_id, journey_id))
        key = self._check_key(journey_key(prefix, version), f"journeys/{journey_id}")
        record = encode(j, f"journeys/{journey_id}/v{version}")
        idem = None if w.idempotency is None else self._prepare_idem(w.idempotency, f"journeys/{journey_id}")
        return JourneyOp(journey_id, version, tenant_id, prefix, key, record, idem)

    def _prepare_idem(self, idempotency: tuple[str, dict[str, Any]], where: str) -> tuple[bytes, bytes]:
        """(key, record) of the idempotency record a write stores in its transaction."""
        ikey, response = idempotency
        if not isinstance(ikey, str) or not ikey:
            raise StorageError(f"{where}: idempotency key must be a non-empty string")
        return self._check_key(ikey.encode(), f"idem/{ikey}"), encode(response, f"idem/{ikey}")

    def _apply_saga(self, txn: Txn, op: SagaOp) -> None:
        # No checking reads: one writer per folder and one actor per saga make prev_status and
        # the history sequence right by construction; ``verify`` checks every index offline.
        # What is checked costs no read: a new saga never overwrites a stored one, a history
        # entry is never overwritten, and a status change must find the old idx entry.
        w, sid = op.write, op.sid
        if w.prev_status is None:
            if not txn.put(sid, op.snapshot, db=self._sagas, overwrite=False):
                raise StorageError(f"sagas/{w.saga_id}: already exists but the write has prev_status=None")
        else:
            txn.put(sid, op.snapshot, db=self._sagas)
        if op.history:
            for seq, key, record in op.history:
                if not txn.put(key, record, db=self._history, overwrite=False):
                    raise StorageError(f"history/{w.saga_id}/{seq}: already recorded")
                txn.put(self._feed_next.to_bytes(8, "big"), recent.feed_value(key, record), db=self._feed)
                self._feed_next += 1
        recent.index_saga(txn, self._recent, sid, w.tenant_id, w.saga_id, w.snapshot)
        if w.prev_status != w.status:
            if w.prev_status is not None:
                # The delete says whether the saga was indexed under prev_status: a write that
                # misstates it is refused at no cost of a read (idx and counts cannot drift).
                if not txn.delete(idx_key(w.tenant_id, w.prev_status, w.saga_id), db=self._idx):
                    raise StorageError(
                        f"sagas/{w.saga_id}: stored saga is not {w.prev_status!r} for tenant {w.tenant_id!r}"
                    )
                self._add_count(txn, w.journey_type, w.prev_status, -1)
            txn.put(idx_key(w.tenant_id, w.status, w.saga_id), w.journey_type.encode(), db=self._idx)
            self._add_count(txn, w.journey_type, w.status, 1)
        self._watch(txn, sid, w.journey_type, w.prev_status, w.status, w.snapshot)
        self._retention.track(
            txn, sid, w.status, w.prev_status, w.snapshot, w.retention_s, entered_at(w.snapshot)
        )
        if w.owed:
            txn.put(sid, b"", db=self._owed)
        elif w.wake_at is not None:
            txn.put(sid, struct.pack(">d", w.wake_at), db=self._owed)
        else:
            txn.delete(sid, db=self._owed)
        if op.idem is not None:
            txn.put(op.idem[0], op.idem[1], db=self._idem)
            self._retention.track_idempotency(txn, sid, op.idem[0])

    def _watch(
        self, txn: Txn, sid: bytes, journey_type: str, prev: str | None, status: Any,
        snapshot: dict,
    ) -> None:
        """Maintain the ``since`` and ``comp_failed`` indexes for one saga write."""
        if prev != status:
            if prev in ACTIVE:
                old = txn.pop(sid, db=self._since)
                if old is not None:
                    txn.delete(old, db=self._since)
            at = entered_at(snapshot)
            if status in ACTIVE and at is not None:
                key = self._check_key(since_key(status, at, sid), f"since/{sid.decode()}")
                txn.put(key, b"", db=self._since)
                txn.put(sid, key, db=self._since)
        if status == FAILED and snapshot.get("compensation_status") == COMP_FAILED:
            if txn.put(sid, journey_type.encode(), db=self._comp_failed, overwrite=False):
                self._add_count(txn, journey_type, "", 1, db=self._comp_failed_n)
        elif prev == FAILED:
            stored = txn.pop(sid, db=self._comp_failed)
            if stored is not None:
                self._add_count(txn, stored.decode(), "", -1, db=self._comp_failed_n)

    def _add_count(
        self, txn: Txn, journey_type: str, status: str, delta: int, *, db: Any = None
    ) -> None:
        db = self._counts if db is None else db
        key = count_key(journey_type, status) if status else journey_type.encode()
        raw = txn.get(key, db=db)
        value = (int.from_bytes(raw, "big") if raw else 0) + delta
        if value < 0:
            raise StorageError(f"counts/{journey_type}/{status} would go negative")
        if value:
            txn.put(key, value.to_bytes(8, "big"), db=db)
        else:
            txn.delete(key, db=db)

    def _apply_journey(self, txn: Txn, op: JourneyOp) -> None:
        where = f"journeys/{op.journey_id}/v{op.version}"
        if txn.get(op.key, db=self._journeys) is not None:
            raise StorageError(f"{where}: version already exists; versions are immutable")
        txn.put(op.key, op.record, db=self._journeys)
        if op.idem is not None:
            txn.put(op.idem[0], op.idem[1], db=self._idem)

