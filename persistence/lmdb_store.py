"""LMDB implementation of the store ports (``ports.Store``): one environment, one writer thread, group commit.

This module opens the environment and its databases (upgrading older folders) and closes it;
the rest lives beside it, one job each: ``lmdb_env`` (folder lock, read/resize gate),
``lmdb_keys`` (the key layout), ``lmdb_ops`` (encode and apply writes), ``lmdb_writer`` (the
writer thread and group commit), ``lmdb_reads`` (queries), ``lmdb_admin`` (stats, prune, backup).

Callers submit writes; the writer thread takes everything already queued (the whole list, in
one lock hold) into one write transaction (one fsync). The callbacks of a committed batch are
then handed back in ONE call to ``handoff`` (the runtime passes one ``call_soon_threadsafe`` onto
its loop), not one per request; without a handoff they run on the writer thread. Reads are
short read-only transactions on the caller's thread.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Callable

import lmdb

from saga_journey.persistence import recent
from saga_journey.persistence.keys import local_id
from saga_journey.persistence.layout import FORMAT_VERSION, Databases, stored_format, upgrade
from saga_journey.persistence.lmdb_admin import LmdbAdmin
from saga_journey.persistence.lmdb_env import (
    DEFAULT_MAP_SIZE, LOCK_FILE, MAX_DBS, MAX_MAP_SIZE, MAX_READERS, release_folder_lock, take_folder_lock,
)
from saga_journey.persistence.lmdb_keys import CORE_DBS
from saga_journey.persistence.store import Handoff, Outcome, run_outcomes
from saga_journey.persistence.records import decode_record
from saga_journey.persistence.shared_writer import SharedWriter
from saga_journey.persistence.retention import FeedRetention, Retention, RetentionDbs, feed_floor
from saga_journey.runtime.errors import CorruptRecordError, StorageError

log = logging.getLogger("saga_journey.persistence")


class LmdbStore(LmdbAdmin):
    """The store of one data folder, for the one process that writes it (it holds the folder lock)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        map_size: int = DEFAULT_MAP_SIZE,
        group_commit: bool = True,
        max_batch: int = 1000,
        on_commit: Callable[[int, float], None] | None = None,
        handoff: Handoff | None = None,
        shared_writer: SharedWriter | None = None,
    ) -> None:
        """``on_commit(requests_in_txn, seconds_in_txn)`` runs on the writer thread after each commit.
        ``shared_writer``: commit on that thread (with the other stores it serves) instead of one
        of this store's own.

        ``handoff(outcomes)``, called once per batch on the writer thread, must arrange for each
        ``callback(error)`` of ``outcomes`` to run (in order); without it they run on the writer.
        """
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        super().__init__(os.fspath(path))
        self._shared = shared_writer
        self._init_writer(group_commit=group_commit, max_batch=max_batch, on_commit=on_commit, handoff=handoff,
                          cond=None if shared_writer is None else shared_writer.cond)
        os.makedirs(self._path, exist_ok=True)
        self._lock_fd = take_folder_lock(self._path)
        try:
            self._attach(lmdb.open(
                self._path, map_size=map_size, max_dbs=MAX_DBS, max_readers=MAX_READERS,
                sync=True, metasync=True, writemap=False, lock=True,
            ))
        except lmdb.Error as exc:
            release_folder_lock(self._lock_fd)
            raise StorageError(f"cannot open LMDB environment in {self._path}: {exc}") from exc
        try:
            stale = self._env.reader_check()
            if stale:
                log.info("cleared %d stale LMDB reader slot(s) in %s", stale, self._path)
            self._max_key = self._env.max_key_size()
            self._open_dbs(CORE_DBS, create=True)
            self._open_watch_dbs()
            self._open_recent_dbs()
            self._feed_retention = FeedRetention(self._feed, self._history, self._meta)
        except BaseException as exc:  # e.g. a folder of a newer format: leave it closed, unlocked
            self._env.close()
            release_folder_lock(self._lock_fd)
            if isinstance(exc, lmdb.Error):
                raise StorageError(f"cannot open LMDB databases in {self._path}: {exc}") from exc
            raise

        if shared_writer is None:
            self._writer = threading.Thread(target=self._run, name="saga-journey-writer", daemon=False)
            self._writer.start()
        else:
            self._writer = shared_writer.thread
            shared_writer.attach(self)
        _close_before_thread_join(self)

    def _open_watch_dbs(self) -> None:
        """Open the indexes behind ``oldest_active`` and ``count_compensation_failed``.

        ``since`` maps status+entered_at+saga_id -> b"" for IN_PROGRESS/COMPENSATING sagas and
        saga_id -> that key; ``comp_failed`` holds FAILED sagas whose compensation failed, with
        per-journey-type counts in ``comp_failed_n``. A store created before these existed is
        back-filled once from its snapshots.
        """
        with self._env.begin() as txn:
            existed = txn.get(b"since") is not None
        self._since = self._env.open_db(b"since")
        self._comp_failed = self._env.open_db(b"comp_failed")
        self._comp_failed_n = self._env.open_db(b"comp_failed_n")
        self._upgrade()
        self._open_retention_dbs()
        if existed:
            return
        with self._env.begin(write=True) as txn:
            for sid, raw in txn.cursor(db=self._sagas):
                snap = decode_record(raw, where=f"sagas/{sid.decode()}")
                self._watch(txn, sid, str(snap.get("journey_type")), None, snap.get("status"), snap)

    def _open_retention_dbs(self) -> None:
        """The indexes behind pruning (``retention``); a folder without them is back-filled once."""
        with self._env.begin() as txn:
            existed = txn.get(b"finished") is not None
        dbs = RetentionDbs(
            self._sagas, self._history, self._idx, self._owed, self._since, self._idem,
            self._env.open_db(b"finished"), self._env.open_db(b"finished_of"),
            self._env.open_db(b"idem_of"),
        )
        self._retention = Retention(
            dbs, self._add_count, self.quarantine,
            forget=lambda txn, sid, tenant, local: recent.unindex_saga(txn, self._recent, sid, tenant, local),
        )
        if not existed:
            with self._env.begin(write=True) as txn:
                self._retention.backfill(txn)

    def _open_recent_dbs(self) -> None:
        """Open the list index and the commit feed (``persistence.recent``). A folder written
        before they existed gets them created and its list index built from its snapshots in
        one write transaction (a crash leaves none of it); its older history has no feed positions."""
        with self._env.begin() as txn:
            existed = txn.get(b"recent") is not None and txn.get(b"feed") is not None
        if existed:
            self._recent = self._env.open_db(b"recent")
            self._feed = self._env.open_db(b"feed")
        else:
            with self._env.begin(write=True) as txn:
                self._recent = self._env.open_db(b"recent", txn=txn)
                self._feed = self._env.open_db(b"feed", txn=txn)
                for sid, raw in txn.cursor(db=self._sagas):
                    try:
                        snap = self._decode(raw, f"sagas/{sid.decode()}")
                    except CorruptRecordError:
                        continue  # quarantined; listed once it is readable again
                    tenant = sid.decode().partition("/")[0]
                    recent.index_saga(txn, self._recent, sid, tenant, local_id(sid.decode()), snap)
        with self._env.begin() as txn:  # never at or below the floor (a resharded folder starts above it)
            self._feed_next = max(recent.feed_end(txn, self._feed), feed_floor(txn, self._meta)) + 1

    def _upgrade(self) -> None:
        """Bring an older folder to the current stored format in one write transaction."""
        dbs = Databases(self._meta, self._journeys, self._sagas, self._history, self._idx,
                        self._owed, self._since, self._comp_failed, self._idem)
        with self._env.begin() as txn:
            if stored_format(txn, dbs) == FORMAT_VERSION:  # the usual case: no write txn
                self.format_found = FORMAT_VERSION
                return
        while True:
            txn = self._env.begin(write=True)
            try:
                found = upgrade(txn, dbs, self._path, self.quarantine)
                txn.commit()
                self.format_found = found  # 0: a new folder; below FORMAT_VERSION: upgraded
                return
            except lmdb.MapFullError:
                self._grow(txn)
            except BaseException:
                txn.abort()
                raise


    # ---- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        if threading.current_thread() is self._writer:
            raise StorageError("close() cannot be called from a commit callback")
        with self._cond:
            if self._closed and self._env_closed:
                return
            self._closed = True  # the writer commits what is queued, then stops
            self._cond.notify_all()
        if self._shared is None:
            self._writer.join()
        else:
            self._shared.detach(self)
        if self._close_env():
            release_folder_lock(self._lock_fd)

    def __enter__(self) -> LmdbStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_before_thread_join(store: LmdbStore) -> None:
    """Close a forgotten store at interpreter exit, before Python joins non-daemon threads
    (otherwise the idle writer thread would hang the exit)."""
    ref = weakref.ref(store)

    def _atexit() -> None:
        s = ref()
        if s is not None:
            s.close()

    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(_atexit)
        except RuntimeError:  # interpreter already shutting down
            pass


__all__ = [
    "DEFAULT_MAP_SIZE", "LOCK_FILE", "MAX_MAP_SIZE", "Handoff", "LmdbStore", "Outcome", "run_outcomes",
]
