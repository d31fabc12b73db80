"""Offline integrity check of a data folder: every record's CRC and the indexes' consistency.

``verify(path)`` walks every key of every database with LMDB cursors (which also walks every
B-tree page LMDB reaches), decodes each stored record (length, CRC32, msgpack, schema
version) and cross-checks the secondary databases against the snapshots: status index,
per-status counts, the owed/wake-up set, and that each saga's history runs 1..version.
Run it on a folder no process has open (it takes the folder lock).
"""

from __future__ import annotations

import fcntl
import os
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import lmdb

from saga_journey.persistence import recent
from saga_journey.persistence.keys import scoped_key
from saga_journey.persistence.layout import FORMAT_KEY, FORMAT_VERSION
from saga_journey.persistence.lmdb_keys import (
    RECENT_DBS, RETENTION_DBS, SEP, idx_key, split_hist_key, split_idx_key,
)
from saga_journey.persistence.records import decode_record, encode_record
from saga_journey.runtime.errors import CorruptRecordError, StorageError

from .lmdb_env import LOCK_FILE
from .retention import prunable

if TYPE_CHECKING:
    from saga_journey.persistence.lmdb_env import Txn

_DBS = ("journeys", "sagas", "history", "idx", "owed", "counts", "idem")
_RETENTION_DBS = RETENTION_DBS  # absent in folders never opened since
_OPTIONAL_DBS = RECENT_DBS  # format 3


@dataclass
class VerifyReport:
    records: int = 0
    sagas: int = 0
    corrupt: list[dict[str, str]] = field(default_factory=list)
    inconsistent: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.corrupt and not self.inconsistent

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "records": self.records, "sagas": self.sagas,
                "corrupt": self.corrupt, "inconsistent": self.inconsistent}


def store_exists(path: str) -> bool:
    """Whether ``path`` holds a store (its LMDB data file), without opening or creating anything."""
    return os.path.isfile(os.path.join(path, "data.mdb"))


Progress = Callable[[int, int], None]  # (records done, records in all) as the walk goes


def verify(path: str, progress: Progress | None = None) -> VerifyReport:
    if not store_exists(path):
        raise StorageError(f"{path} holds no LMDB store (no data.mdb)")
    fd = os.open(os.path.join(path, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StorageError(f"{path} is open in another process; stop it first") from None
        env = lmdb.open(path, readonly=True, max_dbs=16, lock=False, subdir=True)
        try:
            return _walk(env, progress or (lambda done, total: None))
        finally:
            env.close()
    finally:
        os.close(fd)


def _walk(env: lmdb.Environment, progress: Progress) -> VerifyReport:
    rep = VerifyReport()
    dbs = {name: env.open_db(name.encode(), create=False) for name in _DBS}
    with env.begin(buffers=False) as txn:
        present = [n for n in (*_RETENTION_DBS, *_OPTIONAL_DBS) if txn.get(n.encode()) is not None]
    dbs.update({name: env.open_db(name.encode(), create=False) for name in present})
    with env.begin(buffers=False) as txn:
        version = _stored_format(env, txn)
        to_decode = ("journeys", "sagas", "history", "idem")
        total = sum(txn.stat(db)["entries"] for db in dbs.values())
        total += sum(txn.stat(dbs[name])["entries"] for name in to_decode)
        raw: dict[str, dict[bytes, bytes]] = {}
        for name, db in dbs.items():
            raw[name] = dict(txn.cursor(db=db))
            rep.records += len(raw[name])
            progress(rep.records, total)
    decoded: dict[str, dict[bytes, Any]] = {}
    done = rep.records
    for name in to_decode:
        out = decoded[name] = {}
        for key, value in raw[name].items():
            done += 1
            if not done % 1000:
                progress(done, total)
            where = f"{name}/{key.decode(errors='replace').replace(chr(0), '/')}"
            try:
                out[key] = decode_record(value, where=where)
            except CorruptRecordError as exc:
                rep.corrupt.append({"where": where, "reason": exc.message})
    if version != FORMAT_VERSION:  # the consistency rules below are those of the current format
        rep.inconsistent.append(
            f"stored format is {version}, not {FORMAT_VERSION}: open the folder once with this "
            "release (or run `saga-journey migrate --data-dir DIR`) to upgrade it"
        )
        return rep
    _check_sagas(rep, raw, decoded)
    if all(n in present for n in _RETENTION_DBS):
        _check_retention(rep, raw, decoded)
    _check_recent(rep, raw.get("recent", {}), decoded["sagas"])
    _check_feed(rep, raw.get("feed", {}), raw["history"], raw["sagas"])
    progress(total, total)
    return rep


def _check_retention(rep: VerifyReport, raw: dict[str, dict[bytes, bytes]], decoded: dict[str, dict[bytes, Any]]) -> None:
    """Every finished, unparked saga is in the retention index once; nothing else is."""
    bad = rep.inconsistent.append
    finished, finished_of = raw["finished"], raw["finished_of"]
    for sid, snap in decoded["sagas"].items():
        if isinstance(snap, dict) and prunable(snap.get("status"), snap.get("compensation_status")):
            key = finished_of.get(sid)
            if key is None or key not in finished:
                bad(f"sagas/{sid.decode()}: finished but not in the retention index")
        elif sid in finished_of:
            bad(f"sagas/{sid.decode()}: in the retention index but not finished (or parked)")
    for sid, key in finished_of.items():
        if sid not in raw["sagas"]:
            bad(f"finished_of/{sid.decode()}: no snapshot")
        if key[9:] != sid:
            bad(f"finished_of/{sid.decode()}: points to the entry of another saga")
    if len(finished) != len(finished_of):
        bad(f"finished holds {len(finished)} entries, finished_of {len(finished_of)}")
    for key, ikey in raw["idem_of"].items():
        if ikey not in raw["idem"]:
            bad(f"idem_of {key!r}: idempotency record {ikey!r} is gone")


def _check_recent(rep: VerifyReport, entries: dict[bytes, bytes], sagas: dict[bytes, Any]) -> None:
    """The list index holds exactly the three entries each snapshot implies."""
    want: dict[bytes, bytes] = {}
    for sid, snap in sagas.items():
        if not isinstance(snap, dict):
            continue
        tenant, local = sid.decode().partition("/")[::2]
        status, at_us = str(snap.get("status") or ""), recent.micros(snap.get("updated_at"))
        meta = encode_record(recent.meta_of(snap))
        want[recent.tenant_key(tenant, at_us, local)] = meta
        want[recent.status_key(tenant, status, at_us, local)] = meta
        want[recent.REVERSE + sid] = at_us.to_bytes(8, "big") + status.encode()
    for key, value in want.items():
        if entries.get(key) != value:
            rep.inconsistent.append(f"recent {key!r} missing or stale")
    for key in entries:
        if key not in want:
            rep.inconsistent.append(f"recent {key!r} matches no snapshot")


def _check_feed(rep: VerifyReport, feed: dict[bytes, bytes], history: dict[bytes, bytes],
                sagas: dict[bytes, bytes]) -> None:
    """Each live feed position names a history entry, once, and a saga's positions follow its
    seqs. An entry that names no current record (its saga was pruned, perhaps its id used again)
    is allowed: readers skip it."""
    last: dict[bytes, int] = {}
    named: set[bytes] = set()
    for pos in sorted(feed):
        value = feed[pos]
        key = value[:-4]
        if not recent.feed_names(value, history.get(key)):
            continue
        if key in named:
            rep.inconsistent.append(f"feed {int.from_bytes(pos, 'big')} repeats {key!r}")
        named.add(key)
        sid, seq = split_hist_key(key)
        if seq <= last.get(sid, 0):
            rep.inconsistent.append(f"feed {int.from_bytes(pos, 'big')}: {key!r} out of seq order")
        last[sid] = seq


def _stored_format(env: lmdb.Environment, txn: Txn) -> int:
    """The meta record's format; 1 for a folder written before format versions were recorded."""
    if txn.get(b"meta") is None:
        return 1
    raw = txn.get(FORMAT_KEY, db=env.open_db(b"meta", txn=txn, create=False))
    return 1 if raw is None else decode_record(raw, where="meta/format_version")


def _check_sagas(rep: VerifyReport, raw: dict[str, dict[bytes, bytes]], decoded: dict[str, dict[bytes, Any]]) -> None:
    bad = rep.inconsistent.append
    hist_last: dict[bytes, list[int]] = {}
    for key in raw["history"]:
        sid, seq = split_hist_key(key)
        hist_last.setdefault(sid, []).append(seq)
    counts: Counter[bytes] = Counter()
    for key, jtype in raw["idx"].items():
        tenant, status, saga = split_idx_key(key)
        counts[jtype + SEP + status] += 1  # count_key, on the raw bytes
        saga = scoped_key(tenant.decode(), saga.decode()).encode()
        snap = decoded["sagas"].get(saga)
        if saga not in raw["sagas"]:
            bad(f"idx {key!r} points to no snapshot")
        elif snap is not None and (snap.get("status") != status.decode() or snap.get("tenant_id") != tenant.decode()):
            bad(f"idx {key!r} disagrees with snapshot status {snap.get('status')!r}")
    for key, value in raw["counts"].items():
        if counts.get(key, 0) != int.from_bytes(value, "big"):
            bad(f"counts {key!r}={int.from_bytes(value, 'big')} but idx holds {counts.get(key, 0)}")
    for key in counts:
        if key not in raw["counts"]:
            bad(f"counts {key!r} missing (idx holds {counts[key]})")
    for sid, snap in decoded["sagas"].items():
        rep.sagas += 1
        if not isinstance(snap, dict):
            bad(f"sagas/{sid.decode()}: snapshot is not a map")
            continue
        try:
            tenant, status, version = snap["tenant_id"], snap["status"], int(snap["version"])
        except (KeyError, TypeError, ValueError):
            bad(f"sagas/{sid.decode()}: snapshot lacks tenant_id/status/version")
            continue
        if idx_key(tenant, status, str(snap.get("saga_id"))) not in raw["idx"]:
            bad(f"sagas/{sid.decode()}: no idx entry for status {status}")
        seqs = sorted(hist_last.get(sid, []))
        if seqs != list(range(1, version + 1)):
            bad(f"history/{sid.decode()}: seqs {seqs[:3]}..{seqs[-3:]} (n={len(seqs)}) != 1..{version}")
        owed = raw["owed"].get(sid)
        if status == "COMPENSATING" and owed != b"":
            bad(f"sagas/{sid.decode()}: COMPENSATING but not in the owed set")
        if status in ("COMPLETED", "FAILED") and owed is not None:
            bad(f"sagas/{sid.decode()}: terminal but still in the owed set")
        if owed is not None and len(owed) not in (0, 8):
            bad(f"owed/{sid.decode()}: value of {len(owed)} bytes")
        elif owed is not None and len(owed) == 8:
            struct.unpack(">d", owed)
    for sid in raw["owed"]:
        if sid not in raw["sagas"]:
            bad(f"owed/{sid.decode()}: no snapshot")
