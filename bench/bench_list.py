"""List filters on 100k sagas: time per page from the updated_at index (store level).

    .venv/bin/python bench/bench_list.py [--sagas 100000]

Writes N sagas of one tenant (1% parked FAILED, 3 journey types, 100 users) straight through
``LmdbStore.submit`` in batches, then times pages of 100 for each filter and a full walk by cursor.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time

from saga_journey.persistence.lmdb_store import LmdbStore
from saga_journey.persistence.recent import Query
from saga_journey.persistence.store import SagaWrite


def fill(store: LmdbStore, n: int) -> None:
    done = threading.Semaphore(0)
    batch = 1000
    for start in range(0, n, batch):
        writes = []
        for i in range(start, min(n, start + batch)):
            parked = i % 100 == 0
            status = "FAILED" if parked else ("COMPLETED" if i % 3 else "IN_PROGRESS")
            snap = {"saga_id": f"s-{i:06d}", "tenant_id": "acme", "journey_type": f"jt{i % 3}",
                    "journey_id": f"j{i % 3}", "user_id": f"u{i % 100}", "status": status,
                    "compensation_status": "failed" if parked else "none", "updated_at": 1.7e9 + i}
            writes.append(SagaWrite(f"s-{i:06d}", snap, (), 1, "acme", f"jt{i % 3}", status, None, False))
        store.submit(writes, lambda err: done.release())
    for _ in range(0, n, batch):
        done.acquire()


def timed(store: LmdbStore, query: Query, repeat: int = 20) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        store.find_sagas(query, limit=100)
    return round((time.perf_counter() - started) / repeat * 1000, 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sagas", type=int, default=100_000)
    n = parser.parse_args().sagas
    with LmdbStore(tempfile.mkdtemp(prefix="bench-list-"), map_size=1 << 30) as store:
        started = time.perf_counter()
        fill(store, n)
        fill_s = time.perf_counter() - started
        out = {"sagas": n, "fill_s": round(fill_s, 2), "ms_per_page_of_100": {
            "newest": timed(store, Query("acme")),
            "oldest": timed(store, Query("acme", order="oldest")),
            "status=IN_PROGRESS": timed(store, Query("acme", status="IN_PROGRESS")),
            "parked=true": timed(store, Query("acme", parked=True)),
            "user_id (1%)": timed(store, Query("acme", user_id="u7")),
            "journey_type+user (0.33%)": timed(store, Query("acme", journey_type="jt1", user_id="u7")),
            "updated window": timed(store, Query("acme", updated_after=1.7e9 + n / 2, updated_before=1.7e9 + n / 2 + 500)),
        }}
        started, cursor, seen = time.perf_counter(), None, 0
        while True:
            page, cursor = store.find_sagas(Query("acme"), limit=1000, after=cursor)
            seen += len(page)
            if cursor is None:
                break
        out["full_walk_by_1000_s"] = round(time.perf_counter() - started, 3)
        assert seen == n
    print(json.dumps(out))


if __name__ == "__main__":
    main()
