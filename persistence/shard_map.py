"""Which shard a saga belongs to, which worker owns a shard, and the commit-feed ids of a
sharded store. Pure functions (no I/O): the store, the runtime, the gateway and the router
all decide placement here, so they can never disagree.

A data folder has ``S`` shards, fixed when it is created (``shard_layout``). A saga's shard is a
stable hash of its internal key (``keys.scoped_key(tenant, saga_id)``); with ``N`` workers,
worker ``i`` owns the shards ``s`` with ``s % N == i``, so changing ``N`` between restarts moves
whole shards and nothing inside them.

The commit feed of a sharded store has one position per shard; an event id of the merged feed is
the vector of those positions, written ``p0.p1.....pS-1``. A store of one shard therefore keeps
the plain integer ids it always had.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from saga_journey.runtime.errors import InvalidInputError

from .keys import scoped_key

DEFAULT_SHARDS = 16
MAX_SHARDS = 256
CATALOG_SHARD = 0  # the owner of this shard also owns the journey catalog (single writer)


def check_shard_count(shards: object) -> int:
    """``shards`` as a valid shard count, or InvalidInputError saying what is allowed."""
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
        raise InvalidInputError(f"shards must be an integer from 1 to {MAX_SHARDS}, got {shards!r}")
    return shards


def shard_of(key: str, shards: int) -> int:
    """The shard of an internal key (a saga's ``scoped_key``): stable across processes,
    releases and platforms (blake2b, not ``hash()``)."""
    if shards == 1:
        return 0
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def saga_shard(tenant_id: str, saga_id: str, shards: int) -> int:
    return shard_of(scoped_key(tenant_id, saga_id), shards)


def idempotency_shard(tenant_id: str, idempotency_key: str, shards: int) -> int:
    """Where a create without a saga id and with an Idempotency-Key runs: its record and the
    saga it creates live in this shard (the saga's id is picked to land there)."""
    return shard_of(scoped_key(tenant_id, "\0idempotency\0" + idempotency_key), shards)


def owner_of(shard: int, workers: int) -> int:
    """The index of the worker that owns ``shard`` when ``workers`` processes share the folder."""
    return shard % workers


def owned_shards(shards: int, workers: int, index: int) -> frozenset[int]:
    """The shards worker ``index`` of ``workers`` owns."""
    if not 0 <= index < workers:
        raise ValueError(f"worker index {index} out of range for {workers} workers")
    return frozenset(s for s in range(shards) if s % workers == index)


def pick_id(tenant_id: str, targets: Iterable[int], shards: int, make: Callable[[], str],
            tries: int = 100_000) -> str:
    """A fresh saga id (from ``make``) whose shard is one of ``targets``.

    With ``k`` of ``S`` shards acceptable a draw succeeds with probability k/S, so this takes
    S/k draws on average (16 for one shard of 16).
    """
    wanted = frozenset(targets)
    if not wanted:
        raise ValueError("no target shard to place a saga in")
    for _ in range(tries):
        candidate = make()
        if saga_shard(tenant_id, candidate, shards) in wanted:
            return candidate
    raise RuntimeError(f"no id landed in shards {sorted(wanted)} of {shards} in {tries} draws")


def encode_feed_id(positions: Sequence[int]) -> str:
    """The event id of a merged-feed position: ``p0.p1...`` (one shard: the plain integer)."""
    return ".".join(str(p) for p in positions)


def decode_feed_id(text: str, shards: int) -> tuple[int, ...]:
    """Positions from an event id of a store of ``shards`` shards; a bad id is refused."""
    parts = text.strip().split(".")
    if len(parts) != shards or not all(p.isdigit() and len(p) <= 20 for p in parts):
        raise InvalidInputError(
            f"event id {text!r} is not a position of this store's feed "
            f"({shards} shard{'s' if shards != 1 else ''}: {shards} non-negative integers joined by '.')"
        )
    return tuple(int(p) for p in parts)
