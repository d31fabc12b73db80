"""Durable storage for journeys, saga snapshots, history and idempotency records.

Names are re-exported lazily (PEP 562), so importing one storage module never imports the rest.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "LmdbStore": ".lmdb_store",
    "SagaWrite": ".store",
    "JourneyWrite": ".store",
    "SagaStore": ".store",
    "encode_record": ".records",
    "decode_record": ".records",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value
