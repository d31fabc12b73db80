"""Merging the list pages of several shards into one page (pure: no I/O).

Every shard walks the same index range (the keys of one query share their prefix), so an index
key is a shard-independent position: the merged cursor is such a key, and each shard resumes
after it. A shard that answered with a cursor has covered its keys up to that cursor and no
further, so the merged page must stop at the earliest such cursor (in walk order): anything
past it may still be missing from that shard.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

ShardPage = tuple[Sequence[tuple[bytes, T]], "bytes | None"]


def merge_pages(pages: Sequence[tuple[Sequence[tuple[bytes, T]], bytes | None]], limit: int,
                *, newest: bool) -> tuple[list[tuple[bytes, T]], bytes | None]:
    """(merged page of at most ``limit`` rows in walk order, the key to resume after (None: done)).

    ``pages``: per shard, its rows (index key, item) in walk order and the index key it would
    resume after (None: it has nothing more)."""
    if limit < 1:
        raise ValueError("limit must be >= 1")

    def before(a: bytes, b: bytes) -> bool:  # a comes first in the walk
        return a > b if newest else a < b

    bound: bytes | None = None  # the earliest position a shard stopped at
    for _, cursor in pages:
        if cursor is not None and (bound is None or before(cursor, bound)):
            bound = cursor
    rows = [row for shard_rows, _ in pages for row in shard_rows
            if bound is None or not before(bound, row[0])]
    rows.sort(key=lambda row: row[0], reverse=newest)
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1][0]
    return rows, bound
