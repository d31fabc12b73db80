"""The writer thread: group commit of queued requests, and the hand-back of their callbacks.

Callers submit writes (encoded on their own thread); the writer takes everything already queued
(the whole list, in one lock hold, up to ``max_batch``) into one write transaction (one fsync).
The callbacks of a committed batch are then handed back in ONE call to ``handoff`` (the runtime
passes one ``call_soon_threadsafe`` onto its loop), not one per request; without a handoff they
run on the writer thread. A layer of ``LmdbStore``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import lmdb

from saga_journey.persistence.lmdb_env import MAX_MAP_SIZE
from saga_journey.persistence.lmdb_ops import LmdbOps, Op, SagaOp
from saga_journey.persistence.store import (
    CommitCallback, Handoff, Outcome, PruneWrite, Write, run_callback, run_outcomes,
)
from saga_journey.runtime import crashpoints
from saga_journey.runtime.errors import StorageError

if TYPE_CHECKING:
    from saga_journey.persistence.lmdb_env import Txn

log = logging.getLogger("saga_journey.persistence")

@dataclass(slots=True)
class Request:
    ops: list[Op]
    callback: CommitCallback
    error: StorageError | None = None
    inline: bool = False  # run the callback on the writer thread (a blocking write() waits on it)


def as_storage_error(exc: BaseException) -> StorageError:
    if isinstance(exc, StorageError):
        return exc
    err = StorageError(f"write failed: {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err




READER_CHECK_S = 10.0


class GroupCommitWriter(LmdbOps):
    """Submit/write and the writer thread's loop (a layer of ``LmdbStore``)."""

    _writer: threading.Thread

    def _init_writer(
        self, *, group_commit: bool, max_batch: int, on_commit: Callable[[int, float], None] | None,
        handoff: Handoff | None, cond: threading.Condition | None = None,
    ) -> None:
        """``cond``: the condition of a ``SharedWriter`` this store's queue is served by."""
        self._group_commit = group_commit
        self._max_batch = max_batch
        self._on_commit = on_commit
        self._handoff = handoff
        self._cond = cond if cond is not None else threading.Condition(threading.Lock())
        self._pending: list[Request] = []
        self._writer_idle = False
        self._closed = False
        self._commits = self._batches = self._last_batch = self._max_batch_seen = 0
        self._map_grows = 0
        self._readers_checked = float("-inf")  # the first batch checks (a reader may have died before)

    def submit(self, writes: Sequence[Write], callback: CommitCallback) -> None:
        if self._closed:
            raise StorageError(f"store at {self._path} is closed")
        # Encode now, on the caller's thread: the record then reflects the state at submit
        # time even if the caller mutates its dicts afterwards.
        self._enqueue(writes, callback, False)

    def _enqueue(self, writes: Sequence[Write], callback: CommitCallback, inline: bool) -> None:
        try:
            request = Request([self._prepare(w) for w in writes], callback, None, inline)
        except StorageError as exc:
            request = Request([], callback, exc, inline)
        with self._cond:
            if self._closed:
                raise StorageError(f"store at {self._path} is closed")
            self._pending.append(request)
            if self._writer_idle:  # a busy writer looks again after its commit: no wake-up
                self._writer_idle = False
                self._cond.notify()

    def write(self, writes: Sequence[Write]) -> None:
        if threading.current_thread() is self._writer:
            raise StorageError("write() inside a commit callback would deadlock; use submit()")
        done = threading.Event()
        outcome: list[BaseException | None] = []

        def callback(err: BaseException | None) -> None:
            outcome.append(err)
            done.set()

        if self._closed:
            raise StorageError(f"store at {self._path} is closed")
        self._enqueue(writes, callback, True)
        done.wait()
        if outcome[0] is not None:
            raise outcome[0]

    # ---- writer thread -----------------------------------------------------------------

    def _take(self) -> list[Request] | None:
        """Wait for queued requests and take them (up to ``max_batch``); None: closed and empty."""
        with self._cond:
            while not self._pending:
                if self._closed:
                    return None
                self._writer_idle = True
                self._cond.wait()
            return self._take_queued()

    def _sleeping(self) -> None:
        """The writer waits (the condition is held): the next enqueue must wake it."""
        self._writer_idle = True

    def _take_queued(self) -> list[Request]:
        """The queued requests, up to ``max_batch`` (the condition is held)."""
        limit = self._max_batch if self._group_commit else 1
        if len(self._pending) <= limit:
            batch, self._pending = self._pending, []
        else:
            batch = self._pending[:limit]
            del self._pending[:limit]
        return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            self._hand_off(self._settle(batch))
            self._check_readers()

    def _settle(self, batch: list[Request]) -> list[Outcome]:
        """Commit ``batch``; run its inline callbacks; the others' outcomes, for the hand-off."""
        try:
            outcomes = self._process(batch)
        except BaseException as exc:  # the writer must outlive any failure
            log.exception("writer failed on a batch of %d request(s)", len(batch))
            err = StorageError(f"outcome unknown: the writer failed internally: {exc!r}")
            outcomes = [(r, err) for r in batch]
        handed: list[Outcome] = []
        for request, error in outcomes:
            if request.inline or self._handoff is None:
                run_callback(request.callback, error)
            else:
                handed.append((request.callback, error))
        return handed

    def _check_readers(self) -> None:
        """Every ``READER_CHECK_S``, clear reader slots of processes that died (a worker of
        ``serve --workers`` killed while it read this shard): a stale slot would pin an old
        snapshot, and LMDB could not reuse the pages freed since, so the file would grow."""
        now = time.monotonic()
        if now - self._readers_checked < READER_CHECK_S:
            return
        self._readers_checked = now
        try:
            cleared = self._env.reader_check()
        except lmdb.Error as exc:
            log.warning("reader check of %s failed: %s", self._path, exc)
            return
        if cleared:
            log.warning("cleared %d reader slot(s) of dead processes in %s", cleared, self._path)

    def _process(self, batch: list[Request]) -> list[tuple[Request, StorageError | None]]:
        with self._stats_lock:
            self._batches += 1
        ready = [r for r in batch if r.error is None]
        try:
            if ready:
                self._commit(ready)
        except Exception as exc:
            if len(ready) > 1:
                log.warning("batch of %d failed (%r); retrying each request alone", len(ready), exc)
            outcomes: list[tuple[Request, StorageError | None]] = []
            for request in batch:
                error = request.error
                if error is None:
                    if len(ready) == 1:
                        error = as_storage_error(exc)
                    else:
                        try:
                            self._commit([request])
                        except Exception as one_exc:
                            error = as_storage_error(one_exc)
                outcomes.append((request, error))
            return outcomes
        return [(request, request.error) for request in batch]

    def _hand_off(self, handed: list[Outcome]) -> None:
        """Hand the (non-inline) outcomes back in one ``handoff`` call."""
        if handed:
            assert self._handoff is not None
            try:
                self._handoff(handed)
            except Exception:  # e.g. the loop is closed: nobody waits on the loop any more
                log.warning("commit hand-off failed; running %d callback(s) on the writer", len(handed))
                run_outcomes(handed)

    def _commit(self, requests: list[Request]) -> None:
        feed_start = self._feed_next
        while True:
            started = time.perf_counter()
            self._feed_next = feed_start  # positions of a transaction that did not commit are reused
            txn = self._env.begin(write=True)
            try:
                for request in requests:
                    for op in request.ops:
                        if isinstance(op, SagaOp):
                            self._apply_saga(txn, op)
                        elif isinstance(op, PruneWrite):
                            self._retention.prune(txn, op)
                            self._feed_retention.prune(txn, op)
                        else:
                            self._apply_journey(txn, op)
                crashpoints.hit(crashpoints.MID_BATCH)
                txn.commit()
            except lmdb.MapFullError:
                self._grow(txn)
                continue
            except BaseException:
                self._feed_next = feed_start
                with self._gate.exclusive():
                    txn.abort()
                raise
            crashpoints.hit(crashpoints.AFTER_COMMIT)
            elapsed = time.perf_counter() - started
            with self._stats_lock:
                self._commits += 1
                self._last_batch = len(requests)
                self._max_batch_seen = max(self._max_batch_seen, len(requests))
            if self._on_commit is not None:
                try:
                    self._on_commit(len(requests), elapsed)
                except Exception:
                    log.exception("on_commit hook raised; ignored")
            return

    def _grow(self, txn: Txn) -> None:
        with self._gate.exclusive():
            txn.abort()
            current = self._env.info()["map_size"]
            new_size = current * 2
            if new_size > MAX_MAP_SIZE:
                raise StorageError(f"map of {self._path} would exceed {MAX_MAP_SIZE} bytes")
            self._env.set_mapsize(new_size)
        with self._stats_lock:
            self._map_grows += 1
        log.info("grew LMDB map of %s from %d to %d bytes", self._path, current, new_size)

