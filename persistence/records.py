"""Stored record format: msgpack ``[SCHEMA_VERSION, payload]`` + 4-byte big-endian CRC32.

LMDB has no checksums of its own, so every value we store carries one.
"""

from __future__ import annotations

import threading
import zlib
from typing import Any

import msgpack

from saga_journey.runtime.errors import CorruptRecordError

SCHEMA_VERSION = 1
_CRC_LEN = 4


_packers = threading.local()


def pack(payload: Any) -> bytes:
    """``msgpack.packb(payload, use_bin_type=True)`` with one reused Packer per thread (packb
    builds a Packer, and its buffer, on every call: about half of its cost for a record). A
    failed pack resets the Packer's buffer, so the next one starts clean."""
    packer = getattr(_packers, "packer", None)
    if packer is None:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True)
    data: bytes = packer.pack(payload)
    return data


def encode_record(payload: Any) -> bytes:
    """Pack ``payload``; msgpack's own TypeError/ValueError propagate for unpackable data."""
    body = pack([SCHEMA_VERSION, payload])
    return body + zlib.crc32(body).to_bytes(_CRC_LEN, "big")


def decode_record(data: bytes, *, where: str = "") -> Any:
    """Verify length, CRC and schema version of ``data`` and return its payload."""
    label = where or "record"
    if len(data) <= _CRC_LEN:
        raise CorruptRecordError(
            f"{label}: record is {len(data)} bytes, too short to hold a payload and its CRC",
            where=where,
        )
    body, stored = data[:-_CRC_LEN], int.from_bytes(data[-_CRC_LEN:], "big")
    actual = zlib.crc32(body)
    if actual != stored:
        raise CorruptRecordError(
            f"{label}: CRC mismatch (stored {stored:#010x}, computed {actual:#010x})",
            where=where,
        )
    try:
        envelope = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise CorruptRecordError(f"{label}: msgpack decode failed: {exc}", where=where) from exc
    if not isinstance(envelope, list) or len(envelope) != 2:
        raise CorruptRecordError(
            f"{label}: expected a [schema_version, payload] envelope", where=where
        )
    version, payload = envelope
    if version != SCHEMA_VERSION:
        raise CorruptRecordError(
            f"{label}: schema version {version!r} is not supported (expected {SCHEMA_VERSION})",
            where=where,
        )
    return payload
