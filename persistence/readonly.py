"""A read-only view of a data folder that a running server may be writing.

LMDB readers never block the writer (MVCC), so ``saga-journey sagas list --data-dir`` can run
beside ``serve``: the environment is opened ``readonly=True, lock=True`` (readers register in
LMDB's lock table, so the writer never reuses pages they read) and the folder lock that a
writing process holds is not taken. Reads are those of ``LmdbStore``; there is no writer.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import lmdb
from saga_journey.runtime.errors import StorageError

from .layout import FORMAT_KEY, FORMAT_VERSION
from .lmdb_env import Gate
from .lmdb_store import LmdbStore
from .records import decode_record
from .verify import store_exists

_READ_DBS = ("journeys", "sagas", "history", "idx", "owed", "counts", "idem", "meta",
             "since", "comp_failed", "comp_failed_n")


class ReadOnlyStore(LmdbStore):
    """``LmdbStore``'s read methods over a read-only environment (writes are refused)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path)
        if not store_exists(self._path):
            raise StorageError(f"{self._path} holds no saga-journey store (no data.mdb)")
        self._gate = Gate()
        self._env_closed = False
        self._closed = True  # nothing is ever queued
        self._stats_lock = threading.Lock()
        self._quarantine: dict[str, str] = {}
        try:
            self._env = lmdb.open(self._path, readonly=True, lock=True, max_dbs=16, max_readers=2048)
        except lmdb.Error as exc:
            raise StorageError(f"cannot open {self._path} read-only: {exc}") from exc
        try:
            for name in _READ_DBS:
                setattr(self, f"_{name}", self._env.open_db(name.encode(), create=False))
            self._check_format()
        except lmdb.Error as exc:
            self._env.close()
            raise StorageError(f"{self._path} is not a saga-journey store of this release: {exc}") from exc
        except BaseException:
            self._env.close()
            raise

    def _check_format(self) -> None:
        with self._env.begin() as txn:
            raw = txn.get(FORMAT_KEY, db=self._meta)  # type: ignore[attr-defined]
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
        with self._gate.exclusive():
            if not self._env_closed:
                self._env_closed = True
                self._env.close()
