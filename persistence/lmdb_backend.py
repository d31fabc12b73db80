"""The LMDB backend: a store in one local data folder (``lmdb:PATH``).

A folder with ``shards.json`` is sharded (``shard_layout``: a ``ShardedStore``); any other is
the one-environment layout. A new folder is sharded only when opened with ``shards > 1``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .lmdb_env import DEFAULT_MAP_SIZE
from .ports import Queries, Store, StoreOptions
from .shard_layout import ShardLayout, create_layout, layout_file, read_layout
from .shard_map import DEFAULT_SHARDS, check_shard_count
from saga_journey.runtime.errors import InvalidInputError
from .verify import VerifyReport, store_exists


class LmdbBackend:
    def __init__(self, path: str, *, url: str | None = None) -> None:
        self.path = path
        self.url = url if url is not None else f"lmdb:{path}"

    def describe(self) -> str:
        return self.path

    def exists(self) -> bool:
        return os.path.isfile(layout_file(self.path)) or store_exists(self.path)

    def layout(self) -> ShardLayout | None:
        return read_layout(self.path)

    def open(self, options: StoreOptions = StoreOptions()) -> Store:
        layout = read_layout(self.path)
        if layout is None and options.shards is not None and options.shards > 1:
            layout = create_layout(self.path, options.shards)
        if layout is not None:
            from .sharded_store import ShardedStore

            return ShardedStore(layout, options.owned_shards, options)
        from .lmdb_store import LmdbStore

        return LmdbStore(
            self.path,
            map_size=options.map_size or DEFAULT_MAP_SIZE,
            group_commit=options.group_commit,
            max_batch=options.max_batch,
            on_commit=options.on_commit,
            handoff=options.handoff,
        )

    def prepare_workers(self, workers: int, shards: int | None, *, create: bool) -> tuple[str, int]:
        """For ``serve --workers``: the folder and its shard count, the folder created sharded
        into ``shards`` (default ``DEFAULT_SHARDS``) when absent and ``create``. Refused: a
        one-process store, a ``shards`` other than the folder's, more workers than shards."""
        layout = read_layout(self.path)
        if layout is None:
            if self.exists():
                raise InvalidInputError(
                    f"{self.path} holds a one-process store (no shards): serve it with --workers 1, or "
                    "copy it into a sharded folder with `saga-journey reshard`")
            if not create:
                raise InvalidInputError(f"{self.path} holds no saga-journey store; pass --create to create one")
            layout = create_layout(self.path, check_shard_count(DEFAULT_SHARDS if shards is None else shards))
        elif shards is not None and shards != layout.shards:
            raise InvalidInputError(
                f"{self.path} has {layout.shards} shards (fixed when it was created); --shards {shards} "
                "cannot change it (`saga-journey reshard` copies it into a folder of another count)")
        if workers > layout.shards:
            raise InvalidInputError(f"--workers {workers} is more than the {layout.shards} shards of {self.path}: "
                                    "each worker needs at least one shard")
        return self.path, layout.shards

    def open_read_only(self) -> Queries:
        layout = read_layout(self.path)
        if layout is not None:
            from .sharded_store import ShardedStore

            return ShardedStore(layout, read_only=True)
        from .readonly import ReadOnlyStore

        return ReadOnlyStore(self.path)

    def _folders(self, layout: ShardLayout) -> list[str]:
        return [layout.shard_dir(s) for s in layout.all_shards()] + [layout.catalog]

    def verify(self, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
        """A sharded folder: each shard's folder, then the catalog; reports merged (a shard
        never opened yet holds nothing to check)."""
        from .verify import verify

        layout = read_layout(self.path)
        if layout is None:
            return verify(self.path, progress)
        merged = VerifyReport()
        for folder in self._folders(layout):
            if not store_exists(folder):
                continue
            rep = verify(folder, progress)
            merged.records += rep.records
            merged.sagas += rep.sagas
            merged.corrupt += rep.corrupt
            merged.inconsistent += rep.inconsistent
        return merged

    def migrate(self) -> tuple[int, int]:
        """Opening a folder upgrades it (one write transaction); report what was found (of a
        sharded folder: the oldest format among its shards)."""
        from .layout import FORMAT_VERSION
        from .lmdb_store import LmdbStore

        layout = read_layout(self.path)
        folders = [self.path] if layout is None else [
            f for f in self._folders(layout) if store_exists(f)]
        found = FORMAT_VERSION
        for folder in folders:
            store = LmdbStore(folder)
            try:
                found = min(found, store.format_found)
            finally:
                store.close()
        return found, FORMAT_VERSION

    def __repr__(self) -> str:
        return f"LmdbBackend({os.fspath(self.path)!r})"
