"""A read-only view of a data folder that a running server may be writing.

LMDB readers never block the writer (MVCC), so ``saga-journey sagas list --data-dir`` can run
beside ``serve``: the environment is opened ``readonly=True, lock=True`` (readers register in
LMDB's lock table, so the writer never reuses pages they read) and the folder lock that a
writing process holds is not taken. Reads are those of ``LmdbReader`` (the base ``LmdbStore``
reads with too); there is no writer.
"""

from __future__ import annotations

import os
from typing import Any

import lmdb
from saga_journey.runtime.errors import StorageError

from .layout import FORMAT_KEY, FORMAT_VERSION
from .lmdb_env import MAX_DBS, MAX_READERS
from .lmdb_keys import CORE_DBS, RECENT_DBS, WATCH_DBS
from .lmdb_reads import LmdbReader
from .records import decode_record
from .verify import store_exists


class ReadOnlyStore(LmdbReader):
    """The ``Queries`` port over a read-only environment (writes are refused)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(os.fspath(path))
        if not store_exists(self._path):
            raise StorageError(f"{self._path} holds no saga-journey store (no data.mdb)")
        try:
            self._attach(lmdb.open(self._path, readonly=True, lock=True, max_dbs=MAX_DBS, max_readers=MAX_READERS))
        except lmdb.Error as exc:
            raise StorageError(f"cannot open {self._path} read-only: {exc}") from exc
        for attempt in range(1, 4):
            try:
                self._open_dbs(("meta",), create=False)
                self._check_format()
                self._open_dbs((*CORE_DBS, *WATCH_DBS, *RECENT_DBS), create=False)
                break
            except lmdb.MapResizedError as exc:
                # The writer (the shard's owner) grew the map since lmdb.open: adopt its size.
                if attempt == 3:
                    self._env.close()
                    raise StorageError(f"cannot open {self._path} read-only: its map keeps growing") from exc
                self._adopt_map_size()
            except lmdb.Error as exc:
                self._env.close()
                raise StorageError(f"{self._path} is not a saga-journey store of this release: {exc}") from exc
            except BaseException:
                self._env.close()
                raise

    def _check_format(self) -> None:
        with self._env.begin() as txn:
            raw = txn.get(FORMAT_KEY, db=self._meta)
        found = 1 if raw is None else decode_record(raw, where="meta/format_version")
        if found != FORMAT_VERSION:
            raise StorageError(
                f"{self._path} has stored format {found}, this release reads {FORMAT_VERSION}: "
                "upgrade it first (`saga-journey migrate`, or open it once with `serve`)"
            )

    def submit(self, writes: Any, callback: Any) -> None:
        raise StorageError(f"{self._path} is open read-only")

    def write(self, writes: Any) -> None:
        raise StorageError(f"{self._path} is open read-only")

    def close(self) -> None:
        self._close_env()

    def __enter__(self) -> ReadOnlyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
