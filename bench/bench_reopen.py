"""Reopen time and memory of a data folder holding many stored sagas (issue 10: 1,000,000 sagas
reopen in well under 2 s with < 1 GiB RSS).

The folder is filled through the store's own write path (every index, the history and the feed
are written as the runtime writes them), with copies of one real saga that ran through the
runtime: 3 milestones, the third failed, 2 compensations. 1% are left IN_PROGRESS. Then, in a
fresh interpreter each, the runtime is opened on the folder (recovery included) and one saga's
status is read; beside it, the reference: a bare ``lmdb.open`` of the same folder and one get.

    python bench/bench_reopen.py [--sagas 1000000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from saga_journey.persistence.keys import scoped_key
from saga_journey.persistence.lmdb_store import LmdbStore
from saga_journey.persistence.store import SagaWrite
from saga_journey.runtime import SagaOrchestrator
from saga_journey.runtime.journeys import TEMPLATES

UC = {"tenant_id": "bench", "user_id": "bench"}
BATCH = 2000

PRELUDE = """
import json, sys, time

def hwm_mb():  # this process image's peak RSS (ru_maxrss would include the parent's, kept across fork/exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
"""

OPEN_RUNTIME = PRELUDE + """t = time.perf_counter()
from saga_journey.runtime import SagaOrchestrator
from saga_journey.runtime.journeys import TEMPLATES
handlers = {h: (lambda ctx: None) for steps in TEMPLATES.values() for _, h in steps}
orch = SagaOrchestrator.open(sys.argv[1], handlers=handlers)
status = orch.get_saga_status_sync(sys.argv[2], {"tenant_id": "bench", "user_id": "bench"})
ready = time.perf_counter() - t
orch.close()
print(json.dumps({"ready_s": ready, "status": status["status"],
                  "rss_mb": hwm_mb()}))
"""

OPEN_RAW = PRELUDE + """t = time.perf_counter()
import lmdb
env = lmdb.open(sys.argv[1], max_dbs=16, readonly=False, lock=True)
db = env.open_db(b"sagas", create=False)
with env.begin() as txn:
    found = txn.get(("bench/" + sys.argv[2]).encode(), db=db) is not None
ready = time.perf_counter() - t
print(json.dumps({"ready_s": ready, "found": found,
                  "rss_mb": hwm_mb()}))
"""


def machine() -> str:
    with open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info
                    if line.startswith("model name")), platform.processor())
    return (f"{platform.platform()} | {cpu} | {os.cpu_count()} cpus | "
            f"load average {os.getloadavg()[0]:.1f} | Python {platform.python_version()}")


def template(folder: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One real saga's snapshot and history, as the runtime stored them."""
    handlers = {h: (lambda ctx: None) for steps in TEMPLATES.values() for _, h in steps}

    async def run() -> str:
        orch = SagaOrchestrator.open(folder, handlers=handlers)
        try:
            journey = await orch.design_saga_journey("order_processing", user_context=UC)
            ex = await orch.execute_saga_journey(journey["journey_id"], "bench", {"n": 1}, UC)
            for status in ("complete", "complete", "failed"):
                await orch.advance_saga_step(ex["saga_id"], None, "bench", {"status": status}, UC)
            final = await orch.wait_for_saga(ex["saga_id"], UC, timeout=30)
            assert final["compensation_status"] == "succeeded", final
            return str(ex["saga_id"])
        finally:
            await asyncio.get_running_loop().run_in_executor(None, orch.close)

    saga_id = asyncio.run(run())
    store = LmdbStore(folder)
    try:
        key = scoped_key("bench", saga_id)
        snapshot = store.load_saga(key)
        history = store.load_history(key)
    finally:
        store.close()
    assert snapshot is not None and history
    return snapshot, history


def fill(folder: str, sagas: int, snapshot: dict[str, Any], history: list[dict[str, Any]]) -> float:
    """Write ``sagas`` copies through the store's write path; returns the seconds it took."""
    store = LmdbStore(folder, map_size=1 << 30)
    started = time.perf_counter()
    try:
        for base in range(0, sagas, BATCH):
            writes = []
            for n in range(base, min(sagas, base + BATCH)):
                sid = f"saga-{n:08d}"
                running = n % 100 == 0
                snap = dict(snapshot, saga_id=sid)
                events = tuple(history[:2]) if running else tuple(history)
                if running:
                    snap.update(status="IN_PROGRESS", compensation_status=None)
                status = str(snap["status"])
                writes.append(SagaWrite(sid, snap, events, 1, "bench", str(snap["journey_type"]),
                                        status, None, False))
            store.write(writes)
            if base and base % 100_000 == 0:
                print(f"  filled {base:,} sagas ({time.perf_counter() - started:.0f} s)", flush=True)
    finally:
        store.close()
    return time.perf_counter() - started


def measure(script: str, folder: str, saga_id: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", script, folder, saga_id],
                         capture_output=True, text=True, check=True, timeout=600)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sagas", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="reopens of each kind (best is printed)")
    ap.add_argument("--quick", action="store_true", help="20,000 sagas (smoke test)")
    args = ap.parse_args()
    if args.quick:
        args.sagas = 20_000
    print(f"machine: {machine()}")
    folder = tempfile.mkdtemp(prefix="saga-reopen-")
    try:
        snapshot, history = template(folder)
        print(f"template saga: {snapshot['status']}, {len(history)} history entries")
        took = fill(folder, args.sagas, snapshot, history)
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
        print(f"stored {args.sagas:,} sagas in {took:.1f} s ({args.sagas / took:,.0f}/s), "
              f"folder {size / 2**20:,.0f} MiB")
        probe = f"saga-{args.sagas // 2 + 1:08d}"  # not one of the 1% left running
        runtime = [measure(OPEN_RUNTIME, folder, probe) for _ in range(args.repeat)]
        raw = [measure(OPEN_RAW, folder, probe) for _ in range(args.repeat)]
        best_rt = min(runtime, key=lambda r: r["ready_s"])
        best_raw = min(raw, key=lambda r: r["ready_s"])
        assert best_rt["status"] == snapshot["status"] and best_raw["found"]
        print(f"{'reopen (fresh interpreter, best of ' + str(args.repeat) + ')':<44} {'ready':>9} {'max RSS':>10}")
        print(f"{'runtime: open + recovery + one status':<44} {best_rt['ready_s']:>8.3f}s "
              f"{best_rt['rss_mb']:>8.0f} MB")
        print(f"{'reference: bare lmdb.open + one get':<44} {best_raw['ready_s']:>8.3f}s "
              f"{best_raw['rss_mb']:>8.0f} MB")
        print(f"target: ready well under 2 s, RSS < 1 GiB -> "
              f"{'met' if best_rt['ready_s'] < 2 and best_rt['rss_mb'] < 1024 else 'NOT met'}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
