"""Durable storage for journeys, saga snapshots, history and idempotency records.

Re-exports are lazy (PEP 562): importing ``persistence.ports`` (the protocols) does not open
LMDB's module or start anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from saga_journey.runtime.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "LmdbStore": "lmdb_store",
    "SagaWrite": "store",
    "JourneyWrite": "store",
    "SagaStore": "ports",
    "Store": "ports",
    "RuntimeStore": "ports",
    "Recorder": "ports",
    "Queries": "ports",
    "Admin": "ports",
    "StoreBackend": "ports",
    "StoreOptions": "ports",
    "backend_for": "factory",
    "encode_record": "records",
    "decode_record": "records",
}

__all__ = list(_EXPORTS)

if TYPE_CHECKING:
    from .factory import backend_for
    from .lmdb_store import LmdbStore
    from .ports import Admin, Queries, Recorder, RuntimeStore, SagaStore, Store, StoreBackend, StoreOptions
    from .records import decode_record, encode_record
    from .store import JourneyWrite, SagaWrite

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
