"""The LMDB key layout, in one place: the store writes these keys, ``verify`` and the format
upgrade parse them. Records (values) are encoded by ``records``.

Databases and their keys (``sid`` is ``keys.scoped_key(tenant, saga_id)`` as bytes):

- ``sagas``     sid -> snapshot record
- ``history``   sid \\0 seq(8, big-endian) -> history entry record
- ``journeys``  scoped journey id \\0 version(10 digits) -> journey record
- ``idx``       tenant \\0 status \\0 saga_id -> journey_type
- ``counts``    journey_type \\0 status -> count(8)
- ``owed``      sid -> b"" (work owed now) | wake_at (>d, a durable timer)
- ``since``     status \\0 micros(8) \\0 sid -> b"", and sid -> that key
- ``comp_failed`` sid -> journey_type; ``comp_failed_n`` journey_type -> count(8)
- ``idem``      scoped idempotency key -> record; ``meta`` format_version -> record
- ``recent``/``feed``: ``persistence.recent``; ``finished``/``finished_of``/``idem_of``:
  ``persistence.retention``.
"""

from __future__ import annotations

from typing import Any

from saga_journey.runtime.errors import StorageError
from saga_journey.runtime.model import COMPENSATING, IN_PROGRESS

SEP = b"\0"
SEQ_LEN = 8  # history keys end with \0 + the sequence number as 8 bytes
VERSION_LEN = 10  # journey keys end with \0 + the version as 10 digits

# Non-terminal statuses, indexed by the time a saga entered them (for the "stuck" signal).
ACTIVE = (IN_PROGRESS, COMPENSATING)

# Every named database of a current-format folder (``recent``/``feed``: persistence.recent,
# ``finished``/``finished_of``/``idem_of``: persistence.retention).
CORE_DBS = ("journeys", "sagas", "history", "idx", "owed", "counts", "idem", "meta")
WATCH_DBS = ("since", "comp_failed", "comp_failed_n")
RECENT_DBS = ("recent", "feed")
RETENTION_DBS = ("finished", "finished_of", "idem_of")


def hist_prefix(sid: bytes) -> bytes:
    return sid + SEP


def hist_key(sid: bytes, seq: int) -> bytes:
    return sid + SEP + seq.to_bytes(SEQ_LEN, "big")


def split_hist_key(key: bytes) -> tuple[bytes, int]:
    """(sid, seq) of a history key."""
    return key[: -SEQ_LEN - 1], int.from_bytes(key[-SEQ_LEN:], "big")


def idx_key(tenant: str, status: str, saga_id: str) -> bytes:
    return f"{tenant}\0{status}\0{saga_id}".encode()


def split_idx_key(key: bytes) -> tuple[bytes, bytes, bytes]:
    """(tenant, status, saga_id) of a status-index key."""
    tenant, status, saga = key.split(SEP, 2)
    return tenant, status, saga


def count_key(journey_type: str, status: str) -> bytes:
    return f"{journey_type}\0{status}".encode()


def since_key(status: str, at: float, saga_id: bytes) -> bytes:
    micros = max(0, int(at * 1_000_000))
    return status.encode() + SEP + micros.to_bytes(8, "big") + SEP + saga_id


def since_prefix(status: str) -> bytes:
    return status.encode() + SEP


def journey_prefix(journey_id: str) -> bytes:
    return journey_id.encode() + SEP


def journey_key(prefix: bytes, version: int) -> bytes:
    return prefix + f"{version:0{VERSION_LEN}d}".encode()


def split_journey_key(key: bytes) -> tuple[bytes, int]:
    """(scoped journey id, version) of a journey key."""
    return key[: -VERSION_LEN - 1], int(key[-VERSION_LEN:])


def name(value: Any, what: str) -> str:
    """Key components must be non-empty str without NUL (NUL separates key parts)."""
    if not isinstance(value, str) or not value or "\0" in value:
        raise StorageError(f"{what} must be a non-empty string without NUL, got {value!r}")
    return value

# meta keys of the commit feed's retention (persistence/retention.py FeedRetention)
FEED_FLOOR = b"feed_floor"  # the highest feed position removed by the feed retention
FEED_SWEEP = b"feed_sweep"  # sweep position (8 bytes) + dirty flag (1)
