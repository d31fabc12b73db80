"""Pruning cost: N finished sagas (5 history entries and 1 idempotency record each), written
straight to the store, then pruned in bounded rounds; prints rounds, sagas/s and the slowest round.

    python bench/bench_prune.py [--sagas 20000] [--batch 500]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

from saga_journey.persistence.lmdb_store import LmdbStore
from saga_journey.persistence.store import SagaWrite


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sagas", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=500)
    args = ap.parse_args()
    print(f"machine: {platform.platform()}, python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as folder, LmdbStore(folder) as store:
        now = time.time()
        writes = []
        for i in range(args.sagas):
            sid = f"saga-{i:08d}"
            snap = {"saga_id": sid, "tenant_id": "t", "journey_type": "order_processing", "status": "COMPLETED",
                    "compensation_status": "none", "updated_at": now - 7200, "version": 5}
            events = tuple({"seq": s, "type": "milestone_completed"} for s in range(1, 6))
            writes.append(SagaWrite(sid, snap, events, 1, "t", "order_processing", "COMPLETED", None, False,
                                    idempotency=(f"t/key-{i}", {"fingerprint": "f", "response": {"saga_id": sid}})))
        for start in range(0, len(writes), 1000):
            store.write(writes[start:start + 1000])
        rounds, slowest, total = 0, 0.0, 0
        started = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            result = store.prune(now, 3600.0, args.batch)
            slowest = max(slowest, time.perf_counter() - t0)
            rounds += 1
            total += result.sagas
            if not result.more:
                break
        elapsed = time.perf_counter() - started
        assert total == args.sagas and store.count_by_status() == {}
        print(f"pruned {total} sagas in {rounds} rounds of <= {args.batch}: {total / elapsed:,.0f} sagas/s, "
              f"slowest round {slowest * 1000:.1f} ms")


if __name__ == "__main__":
    main()
