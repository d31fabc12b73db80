"""Offline copy of a data folder into a new sharded folder (``saga-journey reshard``).

The source is either layout (one environment, or sharded with any S); the destination is a
sharded folder of ``shards`` shards. The source must be closed: every environment of it is
locked with the folder lock a running ``serve`` (or worker) holds, so a server that runs is
refused and none can start while the copy runs; the environments are then opened read-only
without LMDB's lock table (safe with no writer, which the folder lock guarantees), so nothing
is written to the source (the only thing it may gain is an empty ``saga-journey.lock`` when it
had none, e.g. a backup copy).

What is copied goes through the destination's own write path (``ShardedStore.write`` with
``JourneyWrite`` and ``SagaWrite``), so every index (status index and counts, owed work and
timers, the ``since``/``comp_failed``/retention indexes, the list index, the commit feed) is
derived exactly as the runtime derives it:

- every journey version, with the idempotency record of its create;
- every saga: its snapshot, its whole history (seq 1..version), its owed work or timer (from
  the source's ``owed`` entry), the time it entered its status for the stuck signal and the
  retention clock (from the source's ``since``/``finished`` indexes), and each of its
  idempotency records (one more ``SagaWrite`` of the same snapshot per extra record).

The commit feed cannot keep its positions: the destination's feed holds the copied histories
(saga by saga) at positions above every position the source ever had, and each shard's feed
floor is set above them too, so that a ``Last-Event-ID`` from before the reshard is answered
``410 events_pruned`` (list again, then follow) instead of naming the wrong events.

Crash safety: everything is built in a hidden folder beside the destination, verified, given
its ``shards.json`` last and then renamed into place; an interrupted reshard leaves no folder
that looks like a store at the destination (only the hidden ``.NAME.reshard-PID`` folder,
without ``shards.json``, which is removed on any error this process sees).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import lmdb

from saga_journey.runtime.errors import CorruptRecordError, InvalidInputError, StorageError

from . import lmdb_keys as K
from .keys import SCOPE_SEP
from .layout import FORMAT_KEY, FORMAT_VERSION
from .lmdb_env import MAX_DBS, release_folder_lock, take_folder_lock
from .ports import StoreBackend
from .records import decode_record
from .retention import GLOBAL
from .shard_layout import LAYOUT_FORMAT, ShardLayout, create_layout, layout_file, read_layout, write_atomically
from .shard_map import check_shard_count, saga_shard
from .store import JourneyWrite, SagaWrite, Write
from .verify import VerifyReport, store_exists, verify

Progress = Callable[[int, int], None]
BATCH = 256  # sagas per destination write (one transaction per shard touched)


@dataclass
class ReshardSummary:
    source: str
    dest: str
    source_shards: int | None  # None: the one-environment layout
    shards: int
    journeys: int = 0  # journey versions
    sagas: int = 0
    history: int = 0  # history entries
    idempotency: int = 0  # idempotency records copied (of sagas and journeys)
    orphans: int = 0  # idempotency records naming no saga or journey of the source: not copied
    per_shard: list[int] = field(default_factory=list)
    feed_floor: int = 0
    records_verified: int = 0
    seconds: float = 0.0

    def done(self, records_verified: int, seconds: float) -> None:
        self.records_verified, self.seconds = records_verified, seconds

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "dest": self.dest, "source_shards": self.source_shards,
            "shards": self.shards, "journeys": self.journeys, "sagas": self.sagas,
            "history_entries": self.history, "idempotency_records": self.idempotency,
            "orphan_idempotency_records_skipped": self.orphans, "sagas_per_shard": self.per_shard,
            "feed_floor": self.feed_floor, "records_verified": self.records_verified,
            "seconds": round(self.seconds, 3),
        }


# ---- the source ----------------------------------------------------------------------------

class SourceEnv:
    """One environment of the source, read-only in one read transaction (no writer exists:
    its folder lock is held)."""

    def __init__(self, path: str, env: Any) -> None:
        self.path, self.env = path, env
        self.txn = env.begin(buffers=False)
        names = {k for k, _ in self.txn.cursor()}  # the named databases

        def db(name: str) -> Any:
            return env.open_db(name.encode(), txn=self.txn, create=False) if name.encode() in names else None

        self.dbs = {n: db(n) for n in (*K.CORE_DBS, *K.WATCH_DBS, *K.RECENT_DBS, *K.RETENTION_DBS)}
        meta = self.dbs["meta"]
        raw = None if meta is None else self.txn.get(FORMAT_KEY, db=meta)
        found = None if raw is None else decode_record(raw, where=f"{path}: meta/format_version")
        if found != FORMAT_VERSION:
            raise StorageError(
                f"{path} has stored format {found if found is not None else 'unknown (1)'}, this "
                f"release reshards format {FORMAT_VERSION}: run `saga-journey migrate` on it first",
                path=path)

    def items(self, name: str) -> Iterator[tuple[bytes, bytes]]:
        db = self.dbs.get(name)
        if db is None:
            return iter(())
        return iter(self.txn.cursor(db=db))

    def get(self, name: str, key: bytes) -> bytes | None:
        db = self.dbs.get(name)
        return None if db is None else self.txn.get(key, db=db)

    def history(self, sid: bytes) -> list[tuple[int, dict[str, Any]]]:
        prefix = K.hist_prefix(sid)
        out = []
        cursor = self.txn.cursor(db=self.dbs["history"])
        found = cursor.set_range(prefix)
        while found and cursor.key().startswith(prefix):
            key = cursor.key()
            if len(key) == len(prefix) + K.SEQ_LEN:
                seq = K.split_hist_key(key)[1]
                out.append((seq, decode(cursor.value(), f"{self.path}: history/{sid.decode()}/{seq}")))
            found = cursor.next()
        return out

    def feed_end(self) -> int:
        db = self.dbs.get("feed")
        end = 0
        if db is not None:
            cursor = self.txn.cursor(db=db)
            end = int.from_bytes(cursor.key(), "big") if cursor.last() else 0
        floor = self.get("meta", K.FEED_FLOOR)
        return max(end, int.from_bytes(floor, "big") if floor else 0)

    def close(self) -> None:
        self.txn.abort()
        self.env.close()


def decode(raw: bytes, where: str) -> Any:
    try:
        return decode_record(raw, where=where)
    except CorruptRecordError as exc:
        raise StorageError(
            f"{exc.message}: the source has a corrupt record; list them with `saga-journey quarantine` "
            "and repair or restore before resharding", where=where) from None


def lock_folder(path: str) -> int:
    """The folder lock ``LmdbStore`` takes, held for the copy; refused while a process has it."""
    return take_folder_lock(path, write_pid=False, in_use=(
        f"{path} is in use by another process (a running serve or worker?): stop it before resharding"))


@contextmanager
def open_source(folder: str) -> Iterator[tuple[int | None, list[SourceEnv]]]:
    """(the source's shard count or None, its environments), locked and read-only."""
    layout = read_layout(folder)
    if layout is None:
        if not store_exists(folder):
            raise StorageError(f"{folder} holds no saga-journey store (no data.mdb, no shards.json)", path=folder)
        paths = [folder]
    else:
        paths = [layout.catalog, *(layout.shard_dir(s) for s in layout.all_shards())]
        paths = [p for p in paths if store_exists(p)]
    with ExitStack() as stack:
        for p in paths:
            fd = lock_folder(p)
            stack.callback(release_folder_lock, fd)
        envs: list[SourceEnv] = []
        for p in paths:
            try:
                env = lmdb.open(p, readonly=True, lock=False, max_dbs=MAX_DBS, subdir=True)
            except lmdb.Error as exc:
                raise StorageError(f"cannot open {p} read-only: {exc}", path=p) from exc
            try:
                source = SourceEnv(p, env)
            except BaseException:
                env.close()
                raise
            envs.append(source)
            stack.callback(source.close)
        yield (None if layout is None else layout.shards), envs


# ---- the destination -------------------------------------------------------------------------

def check_dest(dest: str, source: str) -> None:
    real_dest, real_src = os.path.realpath(dest), os.path.realpath(source)
    if real_dest == real_src or real_dest.startswith(real_src.rstrip(os.sep) + os.sep):
        raise StorageError(f"--into {dest} is inside the source {source}: nothing may be written there", path=dest)
    if os.path.lexists(dest):
        if not os.path.isdir(dest):
            raise StorageError(f"--into {dest} exists and is not a folder", path=dest)
        if os.listdir(dest):
            raise StorageError(f"--into {dest} is not empty: reshard writes a new folder (give an absent "
                               "or empty one)", path=dest)
    parent = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(parent):
        raise StorageError(f"--into {dest}: its parent folder {parent} does not exist", path=dest)


def set_feed_floor(path: str, floor: int) -> None:
    """Record ``floor`` as the feed floor of a new environment: its feed starts above it, and
    a stream resuming below it is answered 410."""
    env = lmdb.open(path, max_dbs=MAX_DBS, subdir=True)
    try:
        with env.begin(write=True) as txn:
            meta = env.open_db(b"meta", txn=txn)
            txn.put(K.FEED_FLOOR, floor.to_bytes(8, "big"), db=meta)
    finally:
        env.close()


# ---- the copy ------------------------------------------------------------------------------------

def _micros_at(raw: bytes) -> float:
    """A stored 8-byte micros value as seconds that encode back to the same micros."""
    return (int.from_bytes(raw, "big") + 0.5) / 1_000_000


def _entered(src: SourceEnv, sid: bytes, status: str) -> bytes | None:
    """The micros (8 bytes) at which the source indexed the saga as entering its status: the
    ``since`` entry of an active saga, the ``finished`` entry of a prunable one."""
    if status in K.ACTIVE:
        entry = src.get("since", sid)
        if entry is not None:
            return entry[len(status) + 1 : len(status) + 9]
        return None
    fkey = src.get("finished_of", sid)
    if fkey is None:
        return None
    if fkey[:1] == GLOBAL:
        return fkey[1:9]
    value = src.get("finished", fkey)
    return value if value is not None and len(value) == 8 else None


def _micros(at: Any) -> bytes | None:
    if isinstance(at, bool) or not isinstance(at, (int, float)) or at != at:
        return None
    return max(0, int(at * 1_000_000)).to_bytes(8, "big")


class Copier:
    def __init__(self, envs: list[SourceEnv], summary: ReshardSummary) -> None:
        self.envs, self.summary = envs, summary
        self.saga_idem: dict[bytes, list[tuple[str, Any]]] = {}
        self.journey_idem: dict[tuple[str, int], tuple[str, Any]] = {}
        self.journeys: dict[tuple[str, int], dict[str, Any]] = {}
        self.sids: set[bytes] = set()

    def total(self) -> int:
        return sum(e.txn.stat(e.dbs["sagas"])["entries"] + e.txn.stat(e.dbs["journeys"])["entries"]
                   for e in self.envs)

    def classify(self) -> None:
        """Read every journey and idempotency record; tie each record to its saga or journey."""
        for e in self.envs:
            for key, raw in e.items("journeys"):
                scoped, version = K.split_journey_key(key)
                record = decode(raw, f"{e.path}: journeys/{scoped.decode()}/v{version}")
                self.journeys[(scoped.decode(), version)] = record
            for sid, _ in e.items("sagas"):
                self.sids.add(sid)
        owner: dict[bytes, bytes] = {}
        for e in self.envs:
            for ofkey, ikey in e.items("idem_of"):
                owner[ikey] = ofkey[: -17]  # sid + NUL + digest(16)
        for e in self.envs:
            for ikey, raw in e.items("idem"):
                where = f"{e.path}: idem/{ikey.decode(errors='replace')}"
                record = decode(raw, where)
                idem_key = ikey.decode()
                saga: bytes | None = owner.get(ikey)
                response = record.get("response") if isinstance(record, dict) else None
                if saga is None and isinstance(response, dict) and isinstance(response.get("saga_id"), str):
                    saga = f"{idem_key.partition(SCOPE_SEP)[0]}{SCOPE_SEP}{response['saga_id']}".encode()
                if saga is not None and saga in self.sids:
                    self.saga_idem.setdefault(saga, []).append((idem_key, record))
                    continue
                if isinstance(response, dict) and isinstance(response.get("journey_id"), str) \
                        and isinstance(response.get("tenant_id"), str):
                    jkey = (f"{response['tenant_id']}{SCOPE_SEP}{response['journey_id']}", response.get("version"))
                    if isinstance(jkey[1], int) and jkey in self.journeys and jkey not in self.journey_idem:
                        self.journey_idem[(jkey[0], jkey[1])] = (idem_key, record)
                        continue
                self.summary.orphans += 1

    def journey_writes(self) -> list[Write]:
        out: list[Write] = []
        for jkey in sorted(self.journeys):
            out.append(JourneyWrite(self.journeys[jkey], idempotency=self.journey_idem.get(jkey)))
        self.summary.journeys += len(out)
        self.summary.idempotency += len(self.journey_idem)
        return out

    def sagas(self) -> Iterator[tuple[str, str, list[SagaWrite]]]:
        """(tenant, saga id, the writes that copy it) for every saga of the source."""
        for e in self.envs:
            for sid, raw in e.items("sagas"):
                yield self._saga(e, sid, raw)

    def _saga(self, e: SourceEnv, sid: bytes, raw: bytes) -> tuple[str, str, list[SagaWrite]]:
        key = sid.decode()
        where = f"{e.path}: sagas/{key}"
        snap = decode(raw, where)
        tenant, _, saga_id = key.partition(SCOPE_SEP)
        try:
            status, journey_type, version = snap["status"], snap["journey_type"], int(snap["version"])
            if snap["tenant_id"] != tenant or snap["saga_id"] != saga_id:
                raise ValueError("its tenant_id/saga_id disagree with its key")
        except (KeyError, TypeError, ValueError) as exc:
            raise StorageError(f"{where}: malformed snapshot ({exc}); run `saga-journey verify` on the source",
                               where=where) from None
        history = e.history(sid)
        seqs = [seq for seq, _ in history]
        if seqs != list(range(1, version + 1)):
            raise StorageError(f"{where}: history seqs are not 1..{version} (n={len(seqs)}); run "
                               "`saga-journey verify` on the source", where=where)
        owed_raw = e.get("owed", sid)
        owed = owed_raw == b""
        wake_at = struct.unpack(">d", owed_raw)[0] if owed_raw is not None and len(owed_raw) == 8 else None
        journey = self.journeys.get((f"{tenant}{SCOPE_SEP}{snap.get('journey_id')}", snap.get("journey_version")))
        retention = journey.get("retention_s") if isinstance(journey, dict) else None
        idems = self.saga_idem.get(sid, [])

        def write(snapshot: dict[str, Any], events: tuple[dict[str, Any], ...], prev: str | None,
                  idem: tuple[str, Any] | None) -> SagaWrite:
            return SagaWrite(saga_id, snapshot, events, 1, tenant, journey_type, status, prev, owed,
                             idempotency=idem, wake_at=wake_at, retention_s=retention)

        events = tuple(entry for _, entry in history)
        entered = _entered(e, sid, status)
        writes: list[SagaWrite] = []
        if entered is not None and entered != _micros(snap.get("updated_at")):
            # first as of when it entered its status (the since / retention indexes keep that
            # time), then the snapshot as it is, in the same transaction
            writes.append(write({**snap, "updated_at": _micros_at(entered)}, events, None, None))
            writes.append(write(snap, (), status, idems[0] if idems else None))
        else:
            writes.append(write(snap, events, None, idems[0] if idems else None))
        for idem in idems[1:]:
            writes.append(write(snap, (), status, idem))
        self.summary.sagas += 1
        self.summary.history += len(events)
        self.summary.idempotency += len(idems)
        return tenant, saga_id, writes


def source_folder(backend: StoreBackend, shown: str) -> str:
    """The data folder of a store backend (``--data-dir``/``--store``): reshard copies LMDB folders."""
    from .lmdb_backend import LmdbBackend

    if not isinstance(backend, LmdbBackend):
        raise InvalidInputError(f"reshard copies an LMDB data folder; {shown} is not one")
    return backend.path


def reshard(source: str, dest: str, shards: int, progress: Progress | None = None,
            verifying: Progress | None = None) -> ReshardSummary:
    """Copy the closed store in ``source`` into a new sharded folder ``dest`` of ``shards`` shards;
    ``progress(done, total)`` counts sagas and journeys copied, ``verifying`` records verified."""
    from .sharded_store import ShardedStore

    started = time.monotonic()
    shards = check_shard_count(shards)
    source, dest = os.fspath(source), os.fspath(dest).rstrip(os.sep) or os.sep
    if not os.path.isdir(source):
        raise StorageError(f"{source} holds no saga-journey store (no such folder)", path=source)
    check_dest(dest, source)
    report = progress or (lambda done, total: None)
    with open_source(source) as (source_shards, envs):
        floor = max((e.feed_end() for e in envs), default=0) + 1
        summary = ReshardSummary(source, dest, source_shards, shards, per_shard=[0] * shards, feed_floor=floor)
        parent, name = os.path.split(os.path.abspath(dest))
        tmp = os.path.join(parent, f".{name}.reshard-{os.getpid()}")
        if os.path.lexists(tmp):
            shutil.rmtree(tmp)
        try:
            layout = create_layout(tmp, shards, finish=False)
            for s in layout.all_shards():
                set_feed_floor(layout.shard_dir(s), floor)
            copier = Copier(envs, summary)
            total, done = copier.total(), 0
            report(0, total)
            copier.classify()
            store = ShardedStore(layout)
            try:
                journeys = copier.journey_writes()
                if journeys:
                    store.write(journeys)
                done += len(journeys)
                report(done, total)
                batch: list[Write] = []
                count = 0
                for tenant, saga_id, writes in copier.sagas():
                    summary.per_shard[saga_shard(tenant, saga_id, shards)] += 1
                    batch.extend(writes)
                    count += 1
                    if count == BATCH:
                        store.write(batch)
                        done += count
                        report(done, total)
                        batch, count = [], 0
                if batch:
                    store.write(batch)
                    done += count
                    report(done, total)
            finally:
                store.close()
            records = check_copy(layout, summary, verifying)
            write_atomically(layout_file(tmp), json.dumps({"format": LAYOUT_FORMAT, "shards": shards}).encode() + b"\n")
            publish(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    summary.done(records, time.monotonic() - started)
    return summary


def check_copy(layout: ShardLayout, summary: ReshardSummary, progress: Progress | None = None) -> int:
    """``verify`` every environment of the new folder, and count what it holds against the copy;
    returns the records verified."""
    merged = VerifyReport()
    report = progress or (lambda done, total: None)
    seen = [0, 0]  # steps of the folders verified, of the current one (verify counts its own)

    def step(done: int, total: int) -> None:
        seen[1] = total
        report(seen[0] + done, seen[0] + total)

    for folder in [layout.catalog, *(layout.shard_dir(s) for s in layout.all_shards())]:
        rep = verify(folder, step)
        seen[0] += seen[1]
        merged.records += rep.records
        merged.sagas += rep.sagas
        merged.corrupt += rep.corrupt
        merged.inconsistent += rep.inconsistent
    if not merged.ok or merged.sagas != summary.sagas:
        problems = [*(c["where"] for c in merged.corrupt), *merged.inconsistent][:5]
        raise StorageError(f"the resharded copy does not verify ({merged.sagas} of {summary.sagas} sagas; "
                           f"{'; '.join(problems)}); the destination was not written")
    return merged.records


def publish(tmp: str, dest: str) -> None:
    """Rename the finished folder into place (over an empty ``dest``), then fsync the parent."""
    os.rename(tmp, dest)  # atomic; replaces ``dest`` if it is an empty folder (checked before)
    fd = os.open(os.path.dirname(os.path.abspath(dest)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["ReshardSummary", "reshard", "source_folder"]
