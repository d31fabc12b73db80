"""The store contract: what every backend behind ``persistence.ports`` must do.

Each test gets ``backend``: a function returning the ``StoreBackend`` of a new, empty store
location (by its store URL); parametrised over every backend this build has. A backend is added
here with one entry in ``LOCATIONS`` (a later issue adds PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from saga_journey.persistence.factory import backend_for
from saga_journey.persistence.ports import StoreBackend


def _lmdb(tmp: Path, name: str) -> str:
    return f"lmdb:{tmp / name}"


LOCATIONS: dict[str, Callable[[Path, str], str]] = {"lmdb": _lmdb}

NewBackend = Callable[[str], StoreBackend]


@pytest.fixture(params=sorted(LOCATIONS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NewBackend]:
    """``backend(name)``: the backend of the store location ``name`` (new and empty at first)."""
    url_of = LOCATIONS[request.param]

    def make(name: str = "store") -> StoreBackend:
        return backend_for(url_of(tmp_path, name))

    yield make
