"""The placement rules every layer shares (persistence/shard_map.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, strategies as st

from saga_journey.persistence.shard_map import (
    decode_feed_id, encode_feed_id, idempotency_shard, owned_shards, owner_of, pick_id, saga_shard,
    shard_of,
)
from saga_journey.runtime.errors import InvalidInputError


def test_shard_of_is_stable_across_interpreters() -> None:
    # hash() is salted per process; the placement must not be.
    code = ("from saga_journey.persistence.shard_map import saga_shard;"
            "print(saga_shard('acme', 'order-42', 16))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(other.stdout) == saga_shard("acme", "order-42", 16)


def test_shard_of_known_values() -> None:  # pins the hash: changing it would strand stored sagas
    assert shard_of("acme/order-42", 16) == int.from_bytes(
        __import__("hashlib").blake2b(b"acme/order-42", digest_size=8).digest(), "big") % 16
    assert shard_of("anything", 1) == 0


@given(st.integers(1, 64), st.integers(1, 8))
def test_every_shard_has_exactly_one_owner(shards: int, workers: int) -> None:
    sets = [owned_shards(shards, workers, i) for i in range(workers)]
    assert sorted(s for part in sets for s in part) == list(range(shards))
    for i, part in enumerate(sets):
        assert all(owner_of(s, workers) == i for s in part)


def test_spread_is_even_enough() -> None:
    counts = [0] * 16
    for n in range(16_000):
        counts[saga_shard("t", f"saga-{n}", 16)] += 1
    assert min(counts) > 800 and max(counts) < 1200


def test_pick_id_lands_in_the_target_shards() -> None:
    ids = iter(f"s{n}" for n in range(10_000))
    for target in range(16):
        sid = pick_id("t", {target}, 16, lambda: next(ids))
        assert saga_shard("t", sid, 16) == target
    with pytest.raises(ValueError):
        pick_id("t", set(), 16, lambda: "x")


def test_idempotency_shard_differs_from_a_saga_of_that_name() -> None:
    keys = [f"k{n}" for n in range(64)]
    assert any(idempotency_shard("t", k, 16) != saga_shard("t", k, 16) for k in keys)


@given(st.lists(st.integers(0, 2**63), min_size=1, max_size=32))
def test_feed_ids_round_trip(positions: list[int]) -> None:
    assert decode_feed_id(encode_feed_id(positions), len(positions)) == tuple(positions)


def test_one_shard_feed_ids_are_the_plain_integers() -> None:
    assert encode_feed_id([42]) == "42" and decode_feed_id("42", 1) == (42,)


@pytest.mark.parametrize("bad", ["", "1.2", "1.-2.3", "a.b.c", "1..2", "1.2.3.4"])
def test_bad_feed_ids_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInputError, match="not a position"):
        decode_feed_id(bad, 3)
