"""Durable SagaWrites/s with group commit vs one commit per write.

20,000 new sagas (~500 B snapshots) submitted from 4 threads, each keeping at most
256 writes in flight; a run that takes longer than 120 s is reported as timed out.
Usage: python bench/bench_store.py
"""

from __future__ import annotations

import os
import platform
import tempfile
import threading
import time

import lmdb

from saga_journey.persistence import LmdbStore, SagaWrite

TOTAL, THREADS, IN_FLIGHT, DEADLINE = 20_000, 4, 256, 120.0


def run(group_commit: bool) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        store = LmdbStore(tmp, map_size=256 * 1024 * 1024, group_commit=group_commit)
        per_thread = TOTAL // THREADS
        done = threading.Event()
        lock = threading.Lock()
        counts = {"ok": 0, "failed": 0}

        def work(t: int) -> None:
            slots = threading.BoundedSemaphore(IN_FLIGHT)

            def callback(err: BaseException | None) -> None:
                slots.release()
                with lock:
                    counts["ok" if err is None else "failed"] += 1
                    if counts["ok"] + counts["failed"] == TOTAL:
                        done.set()

            for i in range(per_thread):
                saga_id = f"saga-{t}-{i:06d}"
                snapshot = {"saga_id": saga_id, "status": "IN_PROGRESS", "ctx": "x" * 430}
                slots.acquire()
                store.submit(
                    [SagaWrite(saga_id, snapshot, (), 1, "tenant", "order_processing",
                               "IN_PROGRESS", None, True)],
                    callback,
                )

        started = time.perf_counter()
        threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
        for th in threads:
            th.start()
        finished = done.wait(DEADLINE)
        elapsed = time.perf_counter() - started
        for th in threads:
            th.join(DEADLINE)
        stats = store.stats()
        store.close()
    mode = "group commit       " if group_commit else "one commit / write "
    if not finished:
        return f"{mode}: TIMED OUT after {DEADLINE:.0f} s ({counts})"
    return (
        f"{mode}: {TOTAL / elapsed:>9,.0f} writes/s  ({elapsed:.2f} s, {stats['commits']} commits, "
        f"mean batch {TOTAL / stats['commits']:.1f}, max batch {stats['max_batch_size_seen']}, "
        f"failed {counts['failed']})"
    )


def main() -> None:
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, py-lmdb {lmdb.__version__} "
          f"(LMDB {'.'.join(map(str, lmdb.version()))}), sync=True")
    print(f"{TOTAL} SagaWrites (~500 B snapshot each) from {THREADS} threads, "
          f"<= {IN_FLIGHT} in flight per thread")
    print(run(group_commit=True))
    print(run(group_commit=False))


if __name__ == "__main__":
    main()
