"""The LMDB backend: a store in one local data folder (``lmdb:PATH``)."""

from __future__ import annotations

import os
from collections.abc import Callable

from .lmdb_env import DEFAULT_MAP_SIZE
from .ports import Queries, Store, StoreOptions
from .verify import VerifyReport, store_exists


class LmdbBackend:
    def __init__(self, path: str, *, url: str | None = None) -> None:
        self.path = path
        self.url = url if url is not None else f"lmdb:{path}"

    def describe(self) -> str:
        return self.path

    def exists(self) -> bool:
        return store_exists(self.path)

    def open(self, options: StoreOptions = StoreOptions()) -> Store:
        from .lmdb_store import LmdbStore

        return LmdbStore(
            self.path,
            map_size=options.map_size or DEFAULT_MAP_SIZE,
            group_commit=options.group_commit,
            max_batch=options.max_batch,
            on_commit=options.on_commit,
            handoff=options.handoff,
        )

    def open_read_only(self) -> Queries:
        from .readonly import ReadOnlyStore

        return ReadOnlyStore(self.path)

    def verify(self, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
        from .verify import verify

        return verify(self.path, progress)

    def migrate(self) -> tuple[int, int]:
        """Opening a folder upgrades it (one write transaction); report what was found."""
        from .layout import FORMAT_VERSION
        from .lmdb_store import LmdbStore

        store = LmdbStore(self.path)
        try:
            return store.format_found, FORMAT_VERSION
        finally:
            store.close()

    def __repr__(self) -> str:
        return f"LmdbBackend({os.fspath(self.path)!r})"
