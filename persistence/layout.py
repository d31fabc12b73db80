"""Stored format version, and the upgrade of older folders on open.

Format 3 adds the list index and the commit feed (``persistence.recent``; the index is built
from the snapshots on the first open, history written before has no feed positions).
Format 2 keys sagas, journeys and idempotency records by ``keys.scoped_key(tenant, id)``.
Format 1 (releases up to 83ba9c1) keyed sagas and journeys by the plain id and idempotency
records by ``tenant\\0key``. ``upgrade`` rewrites such a folder to format 2 inside the caller's
single write transaction, so a crash leaves either the old folder or the new one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from saga_journey.persistence.keys import SCOPE_SEP, scoped_key
from saga_journey.persistence.lmdb_keys import SEP as _SEP, SEQ_LEN as _SEQ_LEN, VERSION_LEN as _VERSION_LEN
from saga_journey.persistence.records import decode_record, encode_record
from saga_journey.runtime.errors import CorruptRecordError, StorageError

if TYPE_CHECKING:
    from saga_journey.persistence.lmdb_env import Txn

log = logging.getLogger("saga_journey.persistence")

FORMAT_VERSION = 3
FORMAT_KEY = b"format_version"


@dataclass(frozen=True, slots=True)
class Databases:
    meta: Any
    journeys: Any
    sagas: Any
    history: Any
    idx: Any
    owed: Any
    since: Any
    comp_failed: Any
    idem: Any


def stored_format(txn: Txn, dbs: Databases) -> int:
    """The folder's format: the meta record, else 1 if it holds data (else 0: a new folder)."""
    raw = txn.get(FORMAT_KEY, db=dbs.meta)
    if raw is not None:
        version = decode_record(raw, where="meta/format_version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise StorageError(f"meta/format_version holds {version!r}, not a format number")
        return version
    for db in (dbs.sagas, dbs.journeys, dbs.idem, dbs.history):
        if txn.stat(db)["entries"]:
            return 1
    return 0


def upgrade(txn: Txn, dbs: Databases, path: str,
            quarantine: Callable[[str, str], None]) -> int:
    """Bring the folder to ``FORMAT_VERSION`` in ``txn``; returns the format found.

    A folder written by a newer release is refused. A saga's tenant comes from the status
    index, so a corrupt snapshot moves too (and stays quarantined on read, as before); a
    corrupt journey record has no tenant to go by: it stays under its old key, reported
    through ``quarantine``.
    """
    found = stored_format(txn, dbs)
    if found > FORMAT_VERSION:
        raise StorageError(
            f"data folder {path} has stored format {found}, written by a newer release; "
            f"this release reads formats 1-{FORMAT_VERSION}"
        )
    if found == 1:
        sagas = _move_sagas(txn, dbs, quarantine)
        journeys = _move_journeys(txn, dbs, quarantine)
        idem = _move_idempotency(txn, dbs)
        log.warning(
            "upgraded data folder %s from format 1 to %d: %d sagas, %d journey versions, "
            "%d idempotency records scoped by tenant", path, FORMAT_VERSION, sagas, journeys, idem,
        )
    if found != FORMAT_VERSION:
        txn.put(FORMAT_KEY, encode_record(FORMAT_VERSION), db=dbs.meta)
    return found


def _tenant_of(raw: bytes, where: str, quarantine: Callable[[str, str], None]) -> str | None:
    try:
        record = decode_record(raw, where=where)
        tenant = record["tenant_id"]
        if not isinstance(tenant, str) or not tenant or SCOPE_SEP in tenant:
            raise CorruptRecordError(f"{where}: tenant_id {tenant!r} cannot scope a key", where=where)
        return tenant
    except (CorruptRecordError, KeyError, TypeError) as exc:
        reason = f"not migrated to format {FORMAT_VERSION} (tenant unknown): {exc}"
        quarantine(where, reason)
        return None


def _move(txn: Txn, db: Any, old: bytes, new: bytes) -> None:
    value = txn.pop(old, db=db)
    if value is not None:
        txn.put(new, value, db=db)


def _move_sagas(txn: Txn, dbs: Databases, quarantine: Callable[[str, str], None]) -> int:
    indexed: dict[bytes, str] = {}  # idx keys are tenant\0status\0saga_id
    for key in txn.cursor(db=dbs.idx).iternext(values=False):
        tenant_b, _, rest = key.partition(_SEP)
        indexed[rest.partition(_SEP)[2]] = tenant_b.decode()
    renamed: dict[bytes, bytes] = {}
    for sid, raw in list(txn.cursor(db=dbs.sagas)):
        tenant = indexed.get(sid) or _tenant_of(raw, f"sagas/{sid.decode(errors='replace')}", quarantine)
        if tenant is not None and SCOPE_SEP not in tenant:
            renamed[sid] = scoped_key(tenant, sid.decode()).encode()
    history = [k for k in txn.cursor(db=dbs.history).iternext(values=False)]
    for key in history:
        new = renamed.get(key[: -_SEQ_LEN - 1])
        if new is not None:
            _move(txn, dbs.history, key, new + key[-_SEQ_LEN - 1 :])
    for old, new in renamed.items():
        _move(txn, dbs.sagas, old, new)
        _move(txn, dbs.owed, old, new)
        _move(txn, dbs.comp_failed, old, new)
        since = txn.pop(old, db=dbs.since)  # saga -> its entry "status\0micros\0saga"
        if since is not None:
            txn.delete(since, db=dbs.since)
            entry = since[: -len(old)] + new
            txn.put(entry, b"", db=dbs.since)
            txn.put(new, entry, db=dbs.since)
    return len(renamed)


def _move_journeys(txn: Txn, dbs: Databases, quarantine: Callable[[str, str], None]) -> int:
    moved = 0
    for key, raw in list(txn.cursor(db=dbs.journeys)):
        journey_id = key[: -_VERSION_LEN - 1].decode(errors="replace")
        tenant = _tenant_of(raw, f"journeys/{journey_id}/v{key[-_VERSION_LEN:].decode()}", quarantine)
        if tenant is not None:
            _move(txn, dbs.journeys, key, scoped_key(tenant, journey_id).encode() + key[-_VERSION_LEN - 1 :])
            moved += 1
    return moved


def _move_idempotency(txn: Txn, dbs: Databases) -> int:
    moved = 0
    for key in list(txn.cursor(db=dbs.idem).iternext(values=False)):
        tenant, sep, idem_key = key.partition(_SEP)
        if sep and tenant and SCOPE_SEP.encode() not in tenant:
            _move(txn, dbs.idem, key, scoped_key(tenant.decode(), idem_key.decode()).encode())
            moved += 1
    return moved
