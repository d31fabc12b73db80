"""The crash-safety invariants I1-I6, checked after a chaos chain from the store, the ack log
and the handler ledger (all three written durably; partial last lines are ignored: an ack
or ledger line not fully fsynced was never observed by anyone)."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from saga_journey.persistence.keys import scoped_key
from saga_journey.persistence.lmdb_backend import LmdbBackend
from saga_journey.persistence.lmdb_store import LmdbStore
from saga_journey.persistence.recent import Query
from saga_journey.persistence.shard_layout import read_layout
from saga_journey.persistence.verify import verify

INVARIANTS = ("I1", "I2", "I3", "I4", "I5", "I6")


@dataclass
class Verdict:
    acks: int = 0
    transitions: int = 0  # acknowledged responses that applied a transition (not replays)
    ledger_lines: int = 0
    sagas: int = 0
    violations: dict[str, list[str]] = field(default_factory=lambda: {i: [] for i in INVARIANTS})

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.violations.items()}

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())


def _lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    return lines[:-1]  # the last element is "" or an unterminated (never fsynced) line


def load_store(data_dir: str) -> tuple[dict[str, dict], dict[str, list[dict]]]:
    snaps: dict[str, dict] = {}
    hist: dict[str, list[dict]] = {}
    if read_layout(data_dir) is not None:  # serve --workers: every shard, read-only
        store: Any = LmdbBackend(data_dir).open_read_only()
    else:
        store = LmdbStore(data_dir)
    try:
        for status in ("IN_PROGRESS", "COMPENSATING", "COMPLETED", "FAILED"):
            cursor = None
            while True:
                page, cursor = store.find_sagas(Query("default", status=status), limit=1000, after=cursor)
                for s in page:
                    snaps[s["saga_id"]] = s
                if cursor is None:
                    break
        for sid in snaps:
            hist[sid] = store.load_history(scoped_key("default", sid))
    finally:
        store.close()
    return snaps, hist


def check(data_dir: str, acks_path: str, ledger_path: str, non_terminal: list[str]) -> Verdict:
    v = Verdict()
    bad = v.violations
    # I6 first, on the closed folder: CRCs, indexes, counts, history continuity.
    rep = LmdbBackend(data_dir).verify() if read_layout(data_dir) is not None else verify(data_dir)
    bad["I6"] += [f"corrupt {c['where']}: {c['reason']}" for c in rep.corrupt]
    bad["I6"] += [f"inconsistent {line}" for line in rep.inconsistent]
    snaps, hist = load_store(data_dir)
    v.sagas = len(snaps)

    # I1: every acknowledged transition is in the store, exactly as acknowledged.
    for line in _lines(acks_path):
        ack = json.loads(line)
        v.acks += 1
        sid, version = ack["saga"], ack["version"]
        snap = snaps.get(sid)
        if snap is None:
            bad["I1"].append(f"{sid}: acknowledged v{version} ({ack['event']}) but the saga is gone")
            continue
        if snap["version"] < version:
            bad["I1"].append(f"{sid}: acknowledged v{version}, stored v{snap['version']}")
            continue
        if ack["event"] is not None:
            v.transitions += 1
            entry = hist[sid][version - 1] if len(hist[sid]) >= version else None
            if entry is None or entry["type"] != ack["event"] or entry["status_after"] != ack["status"]:
                bad["I1"].append(f"{sid}: acknowledged v{version} {ack['event']}->{ack['status']}, stored {entry and (entry['type'], entry['status_after'])}")
        stored_done = [c[0] for c in snap["completed"]]
        if stored_done[: len(ack["completed"])] != ack["completed"]:
            bad["I1"].append(f"{sid}: acknowledged completed {ack['completed']}, stored {stored_done}")

    # Ledger: per saga, ordered handler calls and successes.
    first_call: dict[tuple[str, str], int] = {}
    first_ok: dict[tuple[str, str], int] = {}
    per_saga: dict[str, set[str]] = defaultdict(set)
    for i, line in enumerate(_lines(ledger_path)):
        parts = line.split("\t")
        if len(parts) != 4:
            continue
        v.ledger_lines += 1
        kind, sid, mid, _attempt = parts
        per_saga[sid].add(mid)
        first_call.setdefault((sid, mid), i)
        if kind == "ok":
            first_ok.setdefault((sid, mid), i)

    for sid, snap in snaps.items():
        done = [c[0] for c in snap["completed"]]
        status = snap["status"]
        # I5: terminal within the bound the final run waited for.
        if status not in ("COMPLETED", "FAILED"):
            bad["I5"].append(f"{sid}: still {status} after the final run")
        # I2: every completed milestone of a failed saga compensated at least once.
        if status == "FAILED":
            if snap["compensation_status"] != "succeeded":
                bad["I2"].append(f"{sid}: FAILED with compensation {snap['compensation_status']}: {snap['compensation_error']}")
            for mid in done:
                if (sid, mid) not in first_ok or mid not in snap["compensated"]:
                    bad["I2"].append(f"{sid}: completed {mid} was never compensated (ledger ok: {(sid, mid) in first_ok}, stored: {snap['compensated']})")
        # I3: nothing compensated that never completed (nor any milestone of a completed saga).
        for mid in per_saga.get(sid, ()):
            if mid not in done or status == "COMPLETED":
                bad["I3"].append(f"{sid}: {mid} compensated but completed={done} status={status}")
        # I4: first success of a later milestone precedes any call for an earlier one.
        for hi in range(len(done)):
            for lo in range(hi):
                ok_hi = first_ok.get((sid, done[hi]))
                call_lo = first_call.get((sid, done[lo]))
                if call_lo is not None and (ok_hi is None or ok_hi > call_lo):
                    bad["I4"].append(f"{sid}: {done[lo]} compensated (line {call_lo}) before {done[hi]} succeeded (line {ok_hi})")
    for sid in per_saga:
        if sid not in snaps:
            bad["I3"].append(f"{sid}: compensated but the saga does not exist")
    bad["I5"] += [f"{sid}: not terminal within the bound (final run)" for sid in non_terminal if sid in snaps and f"{sid}: still" not in " ".join(bad["I5"])]
    return v
