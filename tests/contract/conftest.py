"""The store contract: what every backend behind ``persistence.ports`` must do.

Each test gets ``backend``: a function returning the ``StoreBackend`` of a new, empty store
location (by its store URL); parametrised over every backend this build has. A backend is added
here with one entry in ``LOCATIONS`` (a later issue adds PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dataclasses import replace

from saga_journey.persistence.factory import backend_for
from saga_journey.persistence.lmdb_backend import LmdbBackend
from saga_journey.persistence.ports import Store, StoreBackend, StoreOptions

SHARDS = 4  # the sharded LMDB backend's folders: more than one shard, so routing and merging run


def _lmdb(tmp: Path, name: str) -> str:
    return f"lmdb:{tmp / name}"


class ShardedLmdb(LmdbBackend):
    """An LMDB location whose new folder is created with ``SHARDS`` shards."""

    def open(self, options: StoreOptions = StoreOptions()) -> Store:
        return super().open(replace(options, shards=SHARDS))


def _lmdb_sharded(tmp: Path, name: str) -> str:
    return f"lmdb-sharded:{tmp / name}"


LOCATIONS: dict[str, Callable[[Path, str], str]] = {"lmdb": _lmdb, "lmdb-sharded": _lmdb_sharded}

NewBackend = Callable[[str], StoreBackend]


@pytest.fixture(params=sorted(LOCATIONS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NewBackend]:
    """``backend(name)``: the backend of the store location ``name`` (new and empty at first)."""
    url_of = LOCATIONS[request.param]

    def make(name: str = "store") -> StoreBackend:
        url = url_of(tmp_path, name)
        if url.startswith("lmdb-sharded:"):
            return ShardedLmdb(url.partition(":")[2])
        return backend_for(url)

    yield make
