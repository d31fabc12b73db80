"""Durable storage for journeys, saga snapshots, history and idempotency records."""

from saga_journey.persistence.lmdb_store import LmdbStore
from saga_journey.persistence.records import decode_record, encode_record
from saga_journey.persistence.store import JourneyWrite, SagaStore, SagaWrite

__all__ = [
    "LmdbStore",
    "SagaWrite",
    "JourneyWrite",
    "SagaStore",
    "encode_record",
    "decode_record",
]
