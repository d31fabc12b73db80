"""LMDB implementation of SagaStore: one environment, one writer thread, group commit.

Callers submit writes; the writer thread takes everything already queued (the whole list, in
one lock hold) into one write transaction (one fsync). The callbacks of a committed batch are
then handed back in ONE call to ``handoff`` (the runtime passes one ``call_soon_threadsafe`` onto
its loop), not one per request; without a handoff they run on the writer thread. Reads are
short read-only transactions on the caller's thread.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import logging
import os
import struct
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import lmdb

from saga_journey.persistence.keys import scoped_key
from saga_journey.persistence.layout import FORMAT_VERSION, Databases, stored_format, upgrade
from saga_journey.persistence import recent
from saga_journey.persistence.keys import local_id
from saga_journey.persistence.records import decode_record, encode_record
from saga_journey.persistence.retention import FeedRetention, Retention, RetentionDbs, expired_count
from saga_journey.persistence.store import (
    CommitCallback, JourneyWrite, PruneResult, PruneWrite, SagaWrite, Write,
)
from saga_journey.runtime import crashpoints
from saga_journey.runtime.errors import CorruptRecordError, InvalidInputError, StorageError
from saga_journey.runtime.model import COMP_FAILED, COMPENSATING, FAILED, IN_PROGRESS, SAGA_STATES

log = logging.getLogger("saga_journey.persistence")

DEFAULT_MAP_SIZE = 64 * 1024 * 1024
MAX_MAP_SIZE = 1 << 40  # growth stops here: past it something is writing without bound
LOCK_FILE = "saga-journey.lock"
_SEP = b"\0"
Outcome = tuple[CommitCallback, "StorageError | None"]
Handoff = Callable[[list[Outcome]], None]


class _Gate:
    """Shared/exclusive lock: reads share it; set_mapsize, env.close and write-txn aborts
    take it alone.

    LMDB requires that no transaction is active in the process while the map is resized.
    Aborts: with py-lmdb 3.0.0, aborting a write txn while other threads keep beginning
    read txns was measured to stall for minutes; with readers held off it takes microseconds.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._exclusive = False
        self._waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._exclusive or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


@dataclass(slots=True)
class _SagaOp:
    write: SagaWrite
    sid: bytes
    snapshot: bytes
    history: list[tuple[int, bytes, bytes]]  # (seq, key, record)
    idem: tuple[bytes, bytes] | None


@dataclass(slots=True)
class _JourneyOp:
    journey_id: str
    version: int
    tenant_id: str
    prefix: bytes
    key: bytes
    record: bytes
    idem: tuple[bytes, bytes] | None = None


@dataclass(slots=True)
class _Request:
    ops: list[_SagaOp | _JourneyOp | PruneWrite]
    callback: CommitCallback
    error: StorageError | None = None
    inline: bool = False  # run the callback on the writer thread (a blocking write() waits on it)


def _hist_key(sid: bytes, seq: int) -> bytes:
    return sid + _SEP + seq.to_bytes(8, "big")


def _idx_key(tenant: str, status: str, saga_id: str) -> bytes:
    return f"{tenant}\0{status}\0{saga_id}".encode()


def _count_key(journey_type: str, status: str) -> bytes:
    return f"{journey_type}\0{status}".encode()


# Non-terminal statuses, indexed by the time a saga entered them (for the "stuck" signal).
_ACTIVE = (IN_PROGRESS, COMPENSATING)


def _since_key(status: str, at: float, saga_id: bytes) -> bytes:
    micros = max(0, int(at * 1_000_000))
    return status.encode() + _SEP + micros.to_bytes(8, "big") + _SEP + saga_id


def _entered_at(snapshot: dict) -> float | None:
    """The snapshot's ``updated_at``: on a status change, the time the saga entered it."""
    at = snapshot.get("updated_at")
    if isinstance(at, bool) or not isinstance(at, (int, float)) or at != at:
        return None
    return float(at)


def _journey_prefix(journey_id: str) -> bytes:
    return journey_id.encode() + _SEP


def _name(value: Any, what: str) -> str:
    """Key components must be non-empty str without NUL (NUL separates key parts)."""
    if not isinstance(value, str) or not value or "\0" in value:
        raise StorageError(f"{what} must be a non-empty string without NUL, got {value!r}")
    return value


def _as_storage_error(exc: BaseException) -> StorageError:
    if isinstance(exc, StorageError):
        return exc
    err = StorageError(f"write failed: {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err


def _encode(payload: Any, where: str) -> bytes:
    try:
        return encode_record(payload)
    except Exception as exc:
        raise StorageError(f"{where}: cannot be encoded: {exc}", where=where) from exc


def _encode_cursor(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode("ascii")


def _decode_cursor(cursor: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidInputError(f"invalid list cursor {cursor!r}") from exc


class LmdbStore:
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        map_size: int = DEFAULT_MAP_SIZE,
        group_commit: bool = True,
        max_batch: int = 1000,
        on_commit: Callable[[int, float], None] | None = None,
        handoff: Handoff | None = None,
    ) -> None:
        """``on_commit(requests_in_txn, seconds_in_txn)`` runs on the writer thread after each commit.

        ``handoff(outcomes)``, called once per batch on the writer thread, must arrange for each
        ``callback(error)`` of ``outcomes`` to run (in order); without it they run on the writer.
        """
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._path = os.fspath(path)
        self._group_commit = group_commit
        self._max_batch = max_batch
        self._on_commit = on_commit
        self._gate = _Gate()
        self._handoff = handoff
        self._cond = threading.Condition(threading.Lock())
        self._pending: list[_Request] = []
        self._writer_idle = False
        self._closed = False
        self._env_closed = False
        self._stats_lock = threading.Lock()
        self._commits = self._batches = self._last_batch = self._max_batch_seen = 0
        self._map_grows = 0
        self._quarantine: dict[str, str] = {}  # where -> why; records that failed to decode

        os.makedirs(self._path, exist_ok=True)
        self._lock_fd = self._take_folder_lock()
        try:
            self._env = lmdb.open(
                self._path, map_size=map_size, max_dbs=16, max_readers=2048,
                sync=True, metasync=True, writemap=False, lock=True,
            )
        except lmdb.Error as exc:
            self._release_folder_lock()
            raise StorageError(f"cannot open LMDB environment in {self._path}: {exc}") from exc
        try:
            stale = self._env.reader_check()
            if stale:
                log.info("cleared %d stale LMDB reader slot(s) in %s", stale, self._path)
            self._max_key = self._env.max_key_size()
            self._journeys = self._env.open_db(b"journeys")
            self._sagas = self._env.open_db(b"sagas")
            self._history = self._env.open_db(b"history")
            self._idx = self._env.open_db(b"idx")
            self._owed = self._env.open_db(b"owed")
            self._counts = self._env.open_db(b"counts")
            self._idem = self._env.open_db(b"idem")
            self._meta = self._env.open_db(b"meta")
            self._open_watch_dbs()
            self._open_recent_dbs()
            self._feed_retention = FeedRetention(self._feed, self._history, self._meta)
        except BaseException as exc:  # e.g. a folder of a newer format: leave it closed, unlocked
            self._env.close()
            self._release_folder_lock()
            if isinstance(exc, lmdb.Error):
                raise StorageError(f"cannot open LMDB databases in {self._path}: {exc}") from exc
            raise

        self._writer = threading.Thread(target=self._run, name="saga-journey-writer", daemon=False)
        self._writer.start()
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
        with self._env.begin() as txn:
            self._feed_next = recent.feed_end(txn, self._feed) + 1

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

    # ---- folder lock -------------------------------------------------------------------

    def _take_folder_lock(self) -> int:
        fd = os.open(os.path.join(self._path, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StorageError(
                f"data folder {self._path} is in use by another process "
                f"(or another LmdbStore in this one); one store per folder",
                path=self._path,
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return fd

    def _release_folder_lock(self) -> None:
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)

    # ---- writing -----------------------------------------------------------------------

    def submit(self, writes: Sequence[Write], callback: CommitCallback) -> None:
        if self._closed:
            raise StorageError(f"store at {self._path} is closed")
        # Encode now, on the caller's thread: the record then reflects the state at submit
        # time even if the caller mutates its dicts afterwards.
        self._enqueue(writes, callback, False)

    def _enqueue(self, writes: Sequence[Write], callback: CommitCallback, inline: bool) -> None:
        try:
            request = _Request([self._prepare(w) for w in writes], callback, None, inline)
        except StorageError as exc:
            request = _Request([], callback, exc, inline)
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

    def _check_key(self, key: bytes, where: str) -> bytes:
        if len(key) > self._max_key:
            raise StorageError(f"{where}: key is {len(key)} bytes, LMDB allows {self._max_key}")
        return key

    def _prepare(self, w: Write) -> _SagaOp | _JourneyOp | PruneWrite:
        if isinstance(w, PruneWrite):
            if isinstance(w.limit, bool) or not isinstance(w.limit, int) or w.limit < 1:
                raise StorageError(f"PruneWrite.limit must be an int >= 1, got {w.limit!r}")
            return w
        try:
            if isinstance(w, SagaWrite):
                return self._prepare_saga(w)
            if isinstance(w, JourneyWrite):
                return self._prepare_journey(w)
        except ValueError as exc:  # from scoped_key: a tenant id that cannot scope a key
            raise StorageError(str(exc)) from exc
        raise StorageError(f"cannot store {type(w).__name__}; expected SagaWrite or JourneyWrite")

    def _prepare_saga(self, w: SagaWrite) -> _SagaOp:
        saga_id = _name(w.saga_id, "saga_id")
        key = scoped_key(_name(w.tenant_id, "tenant_id"), saga_id)
        where = f"sagas/{key}"
        _name(w.journey_type, "journey_type")
        _name(w.status, "status")
        if w.prev_status is not None:
            _name(w.prev_status, "prev_status")
        if not isinstance(w.snapshot, dict):
            raise StorageError(f"{where}: snapshot must be a dict")
        sid = key.encode()
        self._check_key(_hist_key(sid, 0), where)
        self._check_key(_idx_key(w.tenant_id, w.status, saga_id), where)
        if w.prev_status is not None:
            self._check_key(_idx_key(w.tenant_id, w.prev_status, saga_id), where)
        history = []
        if w.events:
            if isinstance(w.first_seq, bool) or not isinstance(w.first_seq, int) or w.first_seq < 1:
                raise StorageError(f"{where}: first_seq must be an int >= 1, got {w.first_seq!r}")
            for i, event in enumerate(w.events):
                seq = w.first_seq + i
                history.append(
                    (seq, _hist_key(sid, seq), _encode(event, f"history/{key}/{seq}"))
                )
        idem = None
        if w.idempotency is not None:
            ikey, response = w.idempotency
            if not isinstance(ikey, str) or not ikey:
                raise StorageError(f"{where}: idempotency key must be a non-empty string")
            idem = (self._check_key(ikey.encode(), f"idem/{ikey}"), _encode(response, f"idem/{ikey}"))
        return _SagaOp(w, sid, _encode(w.snapshot, where), history, idem)

    def _prepare_journey(self, w: JourneyWrite) -> _JourneyOp:
        j = w.journey
        if not isinstance(j, dict):
            raise StorageError("journey must be a dict")
        journey_id = _name(j.get("journey_id"), "journey_id")
        tenant_id = _name(j.get("tenant_id"), "tenant_id")
        version = j.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version < 10**10:
            raise StorageError(f"journeys/{journey_id}: version must be an int >= 1, got {version!r}")
        prefix = _journey_prefix(scoped_key(tenant_id, journey_id))
        key = self._check_key(prefix + f"{version:010d}".encode(), f"journeys/{journey_id}")
        record = _encode(j, f"journeys/{journey_id}/v{version}")
        idem = None
        if w.idempotency is not None:
            ikey, response = w.idempotency
            if not isinstance(ikey, str) or not ikey:
                raise StorageError(f"journeys/{journey_id}: idempotency key must be a non-empty string")
            idem = (self._check_key(ikey.encode(), f"idem/{ikey}"), _encode(response, f"idem/{ikey}"))
        return _JourneyOp(journey_id, version, tenant_id, prefix, key, record, idem)

    # ---- writer thread -----------------------------------------------------------------

    def _take(self) -> list[_Request] | None:
        """Wait for queued requests and take them (up to ``max_batch``); None: closed and empty."""
        with self._cond:
            while not self._pending:
                if self._closed:
                    return None
                self._writer_idle = True
                self._cond.wait()
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
            try:
                outcomes = self._process(batch)
            except BaseException as exc:  # the writer must outlive any failure
                log.exception("writer failed on a batch of %d request(s)", len(batch))
                err = StorageError(f"outcome unknown: the writer failed internally: {exc!r}")
                outcomes = [(r, err) for r in batch]
            self._deliver(outcomes)

    def _process(self, batch: list[_Request]) -> list[tuple[_Request, StorageError | None]]:
        with self._stats_lock:
            self._batches += 1
        ready = [r for r in batch if r.error is None]
        try:
            if ready:
                self._commit(ready)
        except Exception as exc:
            if len(ready) > 1:
                log.warning("batch of %d failed (%r); retrying each request alone", len(ready), exc)
            outcomes: list[tuple[_Request, StorageError | None]] = []
            for request in batch:
                error = request.error
                if error is None:
                    if len(ready) == 1:
                        error = _as_storage_error(exc)
                    else:
                        try:
                            self._commit([request])
                        except Exception as one_exc:
                            error = _as_storage_error(one_exc)
                outcomes.append((request, error))
            return outcomes
        return [(request, request.error) for request in batch]

    def _deliver(self, outcomes: list[tuple[_Request, StorageError | None]]) -> None:
        """Run inline callbacks here; hand all the others back in one ``handoff`` call."""
        handed: list[Outcome] = []
        for request, error in outcomes:
            if request.inline or self._handoff is None:
                _run_callback(request.callback, error)
            else:
                handed.append((request.callback, error))
        if handed:
            assert self._handoff is not None
            try:
                self._handoff(handed)
            except Exception:  # e.g. the loop is closed: nobody waits on the loop any more
                log.warning("commit hand-off failed; running %d callback(s) on the writer", len(handed))
                run_outcomes(handed)

    def _commit(self, requests: list[_Request]) -> None:
        feed_start = self._feed_next
        while True:
            started = time.perf_counter()
            self._feed_next = feed_start  # positions of a transaction that did not commit are reused
            txn = self._env.begin(write=True)
            try:
                for request in requests:
                    for op in request.ops:
                        if isinstance(op, _SagaOp):
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

    def _grow(self, txn: lmdb.Transaction) -> None:
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

    def _apply_saga(self, txn: lmdb.Transaction, op: _SagaOp) -> None:
        # No checking reads: one writer per folder and one actor per saga make prev_status and
        # the history sequence right by construction; ``verify`` checks every index offline.
        # What is checked costs no read: a new saga never overwrites a stored one, a history
        # entry is never overwritten, and a status change must find the old idx entry.
        w, sid = op.write, op.sid
        if w.prev_status is None:
            if not txn.put(sid, op.snapshot, db=self._sagas, overwrite=False):
                raise StorageError(f"sagas/{w.saga_id}: already exists but the write has prev_status=None")
        else:
            txn.put(sid, op.snapshot, db=self._sagas)
        if op.history:
            for seq, key, record in op.history:
                if not txn.put(key, record, db=self._history, overwrite=False):
                    raise StorageError(f"history/{w.saga_id}/{seq}: already recorded")
                txn.put(self._feed_next.to_bytes(8, "big"), recent.feed_value(key, record), db=self._feed)
                self._feed_next += 1
        recent.index_saga(txn, self._recent, sid, w.tenant_id, w.saga_id, w.snapshot)
        if w.prev_status != w.status:
            if w.prev_status is not None:
                # The delete says whether the saga was indexed under prev_status: a write that
                # misstates it is refused at no cost of a read (idx and counts cannot drift).
                if not txn.delete(_idx_key(w.tenant_id, w.prev_status, w.saga_id), db=self._idx):
                    raise StorageError(
                        f"sagas/{w.saga_id}: stored saga is not {w.prev_status!r} for tenant {w.tenant_id!r}"
                    )
                self._add_count(txn, w.journey_type, w.prev_status, -1)
            txn.put(_idx_key(w.tenant_id, w.status, w.saga_id), w.journey_type.encode(), db=self._idx)
            self._add_count(txn, w.journey_type, w.status, 1)
        self._watch(txn, sid, w.journey_type, w.prev_status, w.status, w.snapshot)
        self._retention.track(
            txn, sid, w.status, w.prev_status, w.snapshot, w.retention_s, _entered_at(w.snapshot)
        )
        if w.owed:
            txn.put(sid, b"", db=self._owed)
        elif w.wake_at is not None:
            txn.put(sid, struct.pack(">d", w.wake_at), db=self._owed)
        else:
            txn.delete(sid, db=self._owed)
        if op.idem is not None:
            txn.put(op.idem[0], op.idem[1], db=self._idem)
            self._retention.track_idempotency(txn, sid, op.idem[0])

    def _watch(
        self, txn: lmdb.Transaction, sid: bytes, journey_type: str, prev: str | None, status: Any,
        snapshot: dict,
    ) -> None:
        """Maintain the ``since`` and ``comp_failed`` indexes for one saga write."""
        if prev != status:
            if prev in _ACTIVE:
                old = txn.pop(sid, db=self._since)
                if old is not None:
                    txn.delete(old, db=self._since)
            at = _entered_at(snapshot)
            if status in _ACTIVE and at is not None:
                key = self._check_key(_since_key(status, at, sid), f"since/{sid.decode()}")
                txn.put(key, b"", db=self._since)
                txn.put(sid, key, db=self._since)
        if status == FAILED and snapshot.get("compensation_status") == COMP_FAILED:
            if txn.put(sid, journey_type.encode(), db=self._comp_failed, overwrite=False):
                self._add_count(txn, journey_type, "", 1, db=self._comp_failed_n)
        elif prev == FAILED:
            stored = txn.pop(sid, db=self._comp_failed)
            if stored is not None:
                self._add_count(txn, stored.decode(), "", -1, db=self._comp_failed_n)

    def _add_count(
        self, txn: lmdb.Transaction, journey_type: str, status: str, delta: int, *, db: Any = None
    ) -> None:
        db = self._counts if db is None else db
        key = _count_key(journey_type, status) if status else journey_type.encode()
        raw = txn.get(key, db=db)
        value = (int.from_bytes(raw, "big") if raw else 0) + delta
        if value < 0:
            raise StorageError(f"counts/{journey_type}/{status} would go negative")
        if value:
            txn.put(key, value.to_bytes(8, "big"), db=db)
        else:
            txn.delete(key, db=db)

    def _apply_journey(self, txn: lmdb.Transaction, op: _JourneyOp) -> None:
        where = f"journeys/{op.journey_id}/v{op.version}"
        if txn.get(op.key, db=self._journeys) is not None:
            raise StorageError(f"{where}: version already exists; versions are immutable")
        txn.put(op.key, op.record, db=self._journeys)
        if op.idem is not None:
            txn.put(op.idem[0], op.idem[1], db=self._idem)

    @staticmethod
    def _latest_journey_key(cursor: lmdb.Cursor, prefix: bytes) -> bytes | None:
        found = cursor.prev() if cursor.set_range(prefix + b"\xff") else cursor.last()
        if found and cursor.key().startswith(prefix):
            return cursor.key()
        return None

    # ---- reading -----------------------------------------------------------------------

    def _decode(self, raw: bytes, where: str) -> Any:
        """decode_record, remembering (quarantining) every record that fails it."""
        try:
            return decode_record(raw, where=where)
        except CorruptRecordError as exc:
            self.quarantine(where, exc.message)
            raise

    def quarantine(self, where: str, reason: str) -> None:
        with self._stats_lock:
            if where not in self._quarantine:
                log.error("quarantined corrupt record %s: %s", where, reason)
            self._quarantine[where] = reason

    def quarantined(self) -> list[dict[str, str]]:
        """Records found corrupt by reads of this process (``saga-journey quarantine`` lists
        every corrupt record in a folder)."""
        with self._stats_lock:
            return [{"where": w, "reason": r} for w, r in sorted(self._quarantine.items())]

    @contextmanager
    def _read(self) -> Iterator[lmdb.Transaction]:
        with self._gate.shared():
            if self._env_closed:
                raise StorageError(f"store at {self._path} is closed")
            try:
                with self._env.begin(buffers=False) as txn:
                    yield txn
            except lmdb.Error as exc:
                raise StorageError(f"read from {self._path} failed: {exc}") from exc

    def load_saga(self, saga_id: str) -> dict | None:
        """``saga_id`` is the internal key (``layout.scoped_key``), as for every read by id."""
        with self._read() as txn:
            raw = txn.get(saga_id.encode(), db=self._sagas)
            return None if raw is None else self._decode(raw, f"sagas/{saga_id}")

    def load_history(
        self, saga_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[dict]:
        if after_seq < 0 or (limit is not None and limit < 0):
            raise InvalidInputError("after_seq and limit must be >= 0")
        prefix = saga_id.encode() + _SEP
        out: list[dict] = []
        with self._read() as txn:
            cursor = txn.cursor(db=self._history)
            found = cursor.set_range(_hist_key(saga_id.encode(), after_seq + 1))
            while found and (limit is None or len(out) < limit):
                key = cursor.key()
                if not key.startswith(prefix) or len(key) != len(prefix) + 8:
                    break
                seq = int.from_bytes(key[-8:], "big")
                out.append(self._decode(cursor.value(), f"history/{saga_id}/{seq}"))
                found = cursor.next()
        return out

    def load_journey(self, journey_id: str, version: int | None = None) -> dict | None:
        prefix = _journey_prefix(journey_id)
        with self._read() as txn:
            if version is None:
                key = self._latest_journey_key(txn.cursor(db=self._journeys), prefix)
                if key is None:
                    return None
            else:
                key = prefix + f"{version:010d}".encode()
            raw = txn.get(key, db=self._journeys)
            if raw is None:
                return None
            return self._decode(raw, f"journeys/{journey_id}/v{int(key[-10:])}")

    def list_journeys(self, tenant_id: str) -> list[dict]:
        out: list[dict] = []
        scope = scoped_key(tenant_id, "").encode()
        with self._read() as txn:
            latest: list[bytes] = []
            prev_prefix = None
            cursor = txn.cursor(db=self._journeys)
            found = cursor.set_range(scope)
            while found and cursor.key().startswith(scope):
                key = cursor.key()
                found = cursor.next()
                prefix = key[:-10]
                if prefix == prev_prefix:
                    latest[-1] = key
                else:
                    latest.append(key)
                    prev_prefix = prefix
            for key in latest:
                where = f"journeys/{key[:-11].decode()}/v{int(key[-10:])}"
                try:
                    journey = self._decode(txn.get(key, db=self._journeys), where)
                except CorruptRecordError:
                    continue  # quarantined; listed by `saga-journey quarantine`
                if journey.get("tenant_id") == tenant_id:
                    out.append(journey)
        return out

    def list_sagas(
        self,
        tenant_id: str,
        *,
        status: str | None = None,
        journey_type: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> tuple[list[dict], str | None]:
        if limit < 1:
            raise InvalidInputError(f"limit must be >= 1, got {limit}")
        prefix = tenant_id.encode() + _SEP
        if status is not None:
            prefix += status.encode() + _SEP
        start = prefix
        if after is not None:
            start = _decode_cursor(after)
            if not start.startswith(prefix):
                raise InvalidInputError("list cursor does not belong to this query")
        wanted = None if journey_type is None else journey_type.encode()
        keys: list[bytes] = []
        more = False
        with self._read() as txn:
            cursor = txn.cursor(db=self._idx)
            found = cursor.set_range(start)
            if found and after is not None and cursor.key() == start:
                found = cursor.next()
            while found:
                key = cursor.key()
                if not key.startswith(prefix):
                    break
                if wanted is None or cursor.value() == wanted:
                    if len(keys) == limit:
                        more = True
                        break
                    keys.append(key)
                found = cursor.next()
            sagas = []
            for key in keys:
                saga_id = scoped_key(tenant_id, key.rsplit(_SEP, 1)[1].decode())
                raw = txn.get(saga_id.encode(), db=self._sagas)
                if raw is None:
                    raise CorruptRecordError(f"idx entry for sagas/{saga_id} has no snapshot")
                try:
                    sagas.append(self._decode(raw, f"sagas/{saga_id}"))
                except CorruptRecordError:
                    continue  # quarantined: one bad record must not hide every other saga
        return sagas, (_encode_cursor(keys[-1]) if more else None)

    def find_sagas(self, query: recent.Query, *, limit: int = 100,
                   after: str | None = None) -> tuple[list[dict], str | None]:
        """A page of snapshots by ``updated_at`` (``query.order``), filtered from the index."""
        if limit < 1:
            raise InvalidInputError(f"limit must be >= 1, got {limit}")
        with self._read() as txn:
            ids, cursor = recent.scan(txn, self._recent, query, limit, after)
            sagas = []
            for local in ids:
                key = scoped_key(query.tenant, local)
                raw = txn.get(key.encode(), db=self._sagas)
                if raw is None:
                    raise CorruptRecordError(f"recent entry for sagas/{key} has no snapshot")
                try:
                    sagas.append(self._decode(raw, f"sagas/{key}"))
                except CorruptRecordError:
                    continue  # quarantined: one bad record must not hide every other saga
        return sagas, cursor

    def tenant_counts(self, tenant_id: str) -> tuple[dict[str, int], int]:
        """({status: sagas}, parked sagas) of one tenant, from the list index."""
        with self._read() as txn:
            return recent.tenant_counts(txn, self._recent, tenant_id, SAGA_STATES)

    def feed_end(self) -> int:
        """The global position of the last committed history entry (0: none)."""
        with self._read() as txn:
            return recent.feed_end(txn, self._feed)

    def feed_scan(self, position: int, limit: int = 1000, *,
                  tenant: str | None = None) -> tuple[list[tuple[int, str, dict]], int]:
        """Committed history entries among the ``limit`` feed positions after ``position``:
        ([(position, scoped saga key, entry)], last position looked at); with ``tenant``, only
        that tenant's entries are returned (the others are still counted as looked at)."""
        scope = None if tenant is None else scoped_key(tenant, "")
        out: list[tuple[int, str, dict]] = []
        last = position
        with self._read() as txn:
            for pos, value in recent.feed_after(txn, self._feed, position, limit):
                last = pos
                hist_key = value[:-4]
                key, seq = hist_key[:-9].decode(), int.from_bytes(hist_key[-8:], "big")
                if scope is not None and not key.startswith(scope):
                    continue
                raw = txn.get(hist_key, db=self._history)
                if not recent.feed_names(value, raw):
                    continue  # pruned since (and perhaps the id used again)
                out.append((pos, key, self._decode(raw, f"history/{key}/{seq}")))
        return out, last

    def sagas_with_work_owed(self) -> list[str]:
        """Sagas to activate at once on recovery (an empty owed value: work is due now)."""
        with self._read() as txn:
            return [k.decode() for k, v in txn.cursor(db=self._owed) if not v]

    def pending_wakeups(self) -> list[tuple[str, float]]:
        with self._read() as txn:
            return [
                (k.decode(), struct.unpack(">d", v)[0])
                for k, v in txn.cursor(db=self._owed)
                if len(v) == 8
            ]

    def count_by_status(self) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        with self._read() as txn:
            for key, value in txn.cursor(db=self._counts):
                journey_type, status = key.decode().split("\0")
                out[(journey_type, status)] = int.from_bytes(value, "big")
        return out

    def oldest_active(self) -> dict[str, float]:
        """For IN_PROGRESS and COMPENSATING: when the longest-waiting saga entered that status.

        One cursor seek per status (the ``since`` index is ordered by entry time).
        """
        out: dict[str, float] = {}
        with self._read() as txn:
            cursor = txn.cursor(db=self._since)
            for status in _ACTIVE:
                prefix = status.encode() + _SEP
                if cursor.set_range(prefix) and cursor.key().startswith(prefix):
                    micros = cursor.key()[len(prefix) : len(prefix) + 8]
                    out[status] = int.from_bytes(micros, "big") / 1_000_000
        return out

    def count_compensation_failed(self) -> dict[str, int]:
        """FAILED sagas whose compensation failed (they need an operator), by journey type."""
        with self._read() as txn:
            return {
                k.decode(): int.from_bytes(v, "big")
                for k, v in txn.cursor(db=self._comp_failed_n)
            }

    def get_idempotency(self, key: str) -> dict | None:
        with self._read() as txn:
            raw = txn.get(key.encode(), db=self._idem)
            return None if raw is None else self._decode(raw, f"idem/{key}")

    def stats(self) -> dict:
        with self._gate.shared():
            if self._env_closed:
                raise StorageError(f"store at {self._path} is closed")
            info, stat = self._env.info(), self._env.stat()
        with self._stats_lock:
            return {
                "map_size": info["map_size"],
                "used_bytes": (info["last_pgno"] + 1) * stat["psize"],
                "commits": self._commits,
                "batches": self._batches,
                "last_batch_size": self._last_batch,
                "max_batch_size_seen": self._max_batch_seen,
                "map_grows": self._map_grows,
                "quarantined_records": len(self._quarantine),
                "queue_depth": len(self._pending),
            }

    def feed_floor(self) -> int:
        with self._read() as txn:
            return self._feed_retention.floor(txn)

    def feed_pending(self, keep: int) -> bool:
        with self._read() as txn:
            return self._feed_retention.pending(txn, keep)

    def count_expired(self, now: float, retention_s: float | None, limit: int | None = None) -> int:
        with self._read() as txn:
            return expired_count(txn, self._retention.dbs, now, retention_s, limit)

    def prune(self, now: float, retention_s: float | None, limit: int) -> PruneResult:
        """One bounded round of pruning through the writer (blocks until it committed)."""
        op = PruneWrite(now, retention_s, limit)
        self.write([op])
        return op.result

    def backup(self, dest_dir: str, *, compact: bool = True) -> None:
        """Consistent copy of the environment into ``dest_dir`` (created; must hold no data.mdb)."""
        os.makedirs(dest_dir, exist_ok=True)
        if os.path.exists(os.path.join(dest_dir, "data.mdb")):
            raise StorageError(f"backup destination {dest_dir} already holds a data.mdb")
        with self._gate.shared():
            if self._env_closed:
                raise StorageError(f"store at {self._path} is closed")
            try:
                self._env.copy(dest_dir, compact=compact)
            except lmdb.Error as exc:
                raise StorageError(f"backup of {self._path} to {dest_dir} failed: {exc}") from exc

    # ---- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        if threading.current_thread() is self._writer:
            raise StorageError("close() cannot be called from a commit callback")
        with self._cond:
            self._closed = True  # the writer commits what is queued, then stops
            self._cond.notify()
        self._writer.join()
        with self._gate.exclusive():
            if self._env_closed:
                return
            self._env_closed = True
            self._env.close()
            self._release_folder_lock()

    def __enter__(self) -> LmdbStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _run_callback(callback: CommitCallback, error: StorageError | None) -> None:
    try:
        callback(error)
    except Exception:
        log.exception("commit callback raised; ignored")


def run_outcomes(outcomes: list[Outcome]) -> None:
    """Run handed-back commit callbacks in order (the runtime calls it on its loop)."""
    for callback, error in outcomes:
        _run_callback(callback, error)


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
