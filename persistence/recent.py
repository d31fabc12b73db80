"""The list index (sagas by tenant, ordered by ``updated_at``) and the commit feed.

``recent`` holds three kinds of keys, all written by the single writer in the transaction of
the saga write they describe:

- ``T`` tenant \\0 micros(8) local_id -> meta: every saga of a tenant by ``updated_at``;
- ``S`` tenant \\0 status \\0 micros(8) local_id -> meta: the same, per status;
- ``R`` scoped_key -> micros(8) status: where the saga's two entries are (to move them).

``meta`` is the record ``[journey_type, journey_id, user_id, parked]`` so that every list
filter is answered from the index alone; snapshots are read only for the sagas returned.

``feed`` maps a global position (big-endian u64, from 1, in commit order) to
``scoped_key \\0 seq(8)``: one entry per history entry, the source of resumable events.
"""

from __future__ import annotations

import zlib

import base64
import binascii
import math
from typing import TYPE_CHECKING, Any, Iterator

from saga_journey.persistence.query import Query
from saga_journey.persistence.records import decode_record, encode_record
from saga_journey.runtime.errors import InvalidInputError

if TYPE_CHECKING:
    from saga_journey.persistence.lmdb_env import Txn

TENANT, STATUS, REVERSE = b"T", b"S", b"R"
_SEP = b"\0"
MAX_SCAN = 20_000  # index entries one list call looks at before it answers with a cursor


def micros(at: Any) -> int:
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
        return 0
    return max(0, min(round(at * 1_000_000), 2**64 - 1))  # rounded as the *_iso strings are


def meta_of(snapshot: dict) -> list[Any]:
    parked = snapshot.get("status") == "FAILED" and snapshot.get("compensation_status") == "failed"
    return [str(snapshot.get("journey_type") or ""), str(snapshot.get("journey_id") or ""),
            str(snapshot.get("user_id") or ""), parked]


def tenant_key(tenant: str, at_us: int, local: str) -> bytes:
    return TENANT + tenant.encode() + _SEP + at_us.to_bytes(8, "big") + local.encode()


def status_key(tenant: str, status: str, at_us: int, local: str) -> bytes:
    return STATUS + tenant.encode() + _SEP + status.encode() + _SEP + at_us.to_bytes(8, "big") + local.encode()


def index_saga(txn: Txn, db: Any, sid: bytes, tenant: str, local: str, snapshot: dict) -> None:
    """Put the saga's entries for ``snapshot``, moving the old ones; nothing written if unchanged."""
    status = str(snapshot.get("status") or "")
    at_us = micros(snapshot.get("updated_at"))
    where = at_us.to_bytes(8, "big") + status.encode()
    meta = encode_record(meta_of(snapshot))
    old = txn.get(REVERSE + sid, db=db)
    new_t, new_s = tenant_key(tenant, at_us, local), status_key(tenant, status, at_us, local)
    if old is not None:
        old_t = tenant_key(tenant, int.from_bytes(old[:8], "big"), local)
        old_s = status_key(tenant, old[8:].decode(), int.from_bytes(old[:8], "big"), local)
        if old == where and txn.get(new_t, db=db) == meta:
            return
        txn.delete(old_t, db=db)
        txn.delete(old_s, db=db)
    txn.put(new_t, meta, db=db)
    txn.put(new_s, meta, db=db)
    if old != where:
        txn.put(REVERSE + sid, where, db=db)


def unindex_saga(txn: Txn, db: Any, sid: bytes, tenant: str, local: str) -> None:
    """Remove a deleted saga's three entries (for pruning); its feed entries may stay (skipped)."""
    old = txn.pop(REVERSE + sid, db=db)
    if old is not None:
        at_us = int.from_bytes(old[:8], "big")
        txn.delete(tenant_key(tenant, at_us, local), db=db)
        txn.delete(status_key(tenant, old[8:].decode(), at_us, local), db=db)


def _prefix(q: Query) -> bytes:
    """The index range a query scans: the tenant's entries, or one status's."""
    status = "FAILED" if q.parked and q.status is None else q.status
    if status is None:
        return TENANT + q.tenant.encode() + _SEP
    return STATUS + q.tenant.encode() + _SEP + status.encode() + _SEP


def _matches(q: Query, meta: list[Any]) -> bool:
    journey_type, journey_id, user_id, parked = meta
    return (
        (q.parked is None or parked == q.parked)
        and (q.journey_type is None or journey_type == q.journey_type)
        and (q.journey_id is None or journey_id == q.journey_id)
        and (q.user_id is None or user_id == q.user_id)
    )


def encode_cursor(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, prefix: bytes) -> bytes:
    try:
        key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidInputError(f"invalid list cursor {cursor!r}") from exc
    if not key.startswith(prefix) or len(key) < len(prefix) + 8:
        raise InvalidInputError("list cursor does not belong to this query")
    return key


def local_of(q: Query, key: bytes) -> str:
    """The local saga id of an index key of ``q``'s range."""
    return key[len(_prefix(q)) + 8 :].decode()


def scan_keys(txn: Txn, db: Any, q: Query, limit: int,
              after: str | None) -> tuple[list[bytes], bytes | None]:
    """The index keys of one page, and the key to resume after (None: no more); a sharded store
    merges pages by these keys, ``encode_cursor`` makes the list cursor of one.

    At most ``MAX_SCAN`` index entries are looked at: a very selective filter may answer fewer
    than ``limit`` sagas (even none) with a key to go on from."""
    prefix = _prefix(q)
    lo = prefix + (micros(q.updated_after) if q.updated_after is not None else 0).to_bytes(8, "big")
    hi = prefix + (micros(q.updated_before) if q.updated_before is not None else 2**64 - 1).to_bytes(8, "big")
    start = decode_cursor(after, prefix) if after is not None else None
    out: list[bytes] = []
    last: bytes | None = None
    seen = 0
    for key, value in _walk(txn, db, q.order == "newest", lo, hi, start):
        seen += 1
        if _matches(q, decode_record(value, where="recent")):
            if len(out) == limit:
                return out, last if last else None
            out.append(key)
        last = key
        if seen >= MAX_SCAN:
            return out, key
    return out, None


def _walk(txn: Txn, db: Any, backwards: bool, lo: bytes, hi: bytes,
          start: bytes | None) -> Iterator[tuple[bytes, bytes]]:
    """Entries with lo <= key < hi (by their 8-byte time), after ``start`` in the walk's order."""
    cursor = txn.cursor(db=db)
    if backwards:
        end = min(hi, start) if start is not None else hi
        found = cursor.set_range(end)
        found = cursor.prev() if found else cursor.last()
        while found and cursor.key() >= lo:
            yield cursor.key(), cursor.value()
            found = cursor.prev()
    else:
        found = cursor.set_range(max(lo, start) if start is not None else lo)
        if found and start is not None and cursor.key() == start:
            found = cursor.next()
        while found and cursor.key() < hi:
            yield cursor.key(), cursor.value()
            found = cursor.next()


def tenant_counts(txn: Txn, db: Any, tenant: str, statuses: tuple[str, ...]) -> tuple[dict[str, int], int]:
    """({status: sagas}, parked sagas) of one tenant, counted from its per-status entries.

    One key walk per status (values are decoded only for FAILED, to count the parked ones):
    the cost grows with the tenant's sagas, so callers run it off the event loop."""
    counts: dict[str, int] = {}
    parked = 0
    cursor = txn.cursor(db=db)
    for status in statuses:
        prefix = STATUS + tenant.encode() + _SEP + status.encode() + _SEP
        n = 0
        found = cursor.set_range(prefix)
        while found:
            key = cursor.key()
            if not key.startswith(prefix):
                break
            n += 1
            if status == "FAILED" and decode_record(cursor.value(), where="recent")[3]:
                parked += 1
            found = cursor.next()
        counts[status] = n
    return counts, parked


# ---- feed --------------------------------------------------------------------------------

def feed_end(txn: Txn, db: Any) -> int:
    """The last position written (0: none)."""
    cursor = txn.cursor(db=db)
    return int.from_bytes(cursor.key(), "big") if cursor.last() else 0


def feed_value(history_key: bytes, record: bytes) -> bytes:
    """A feed entry: the history key and the CRC of the record it named. A saga id that was
    pruned and used again writes the same history keys: the CRC tells the old entries apart."""
    return history_key + zlib.crc32(record).to_bytes(4, "big")


def feed_names(value: bytes, record: bytes | None) -> bool:
    """Whether the feed entry ``value`` still names ``record`` (False: pruned since, or reused)."""
    return record is not None and zlib.crc32(record).to_bytes(4, "big") == value[-4:]


def feed_after(txn: Txn, db: Any, position: int, limit: int) -> list[tuple[int, bytes]]:
    """Up to ``limit`` (position, feed value) after ``position``, in order."""
    out: list[tuple[int, bytes]] = []
    cursor = txn.cursor(db=db)
    found = cursor.set_range((position + 1).to_bytes(8, "big"))
    while found and len(out) < limit:
        out.append((int.from_bytes(cursor.key(), "big"), cursor.value()))
        found = cursor.next()
    return out
