"""A read-only view opened while the folder's writer grows the map (a worker of
``serve --workers`` opening another worker's shard): MDB_MAP_RESIZED at the first read
transaction is adopted, not reported as "not a saga-journey store" (found by the chaos run
against ``serve --workers 2``: a restarting worker exited with code 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lmdb
import pytest
from saga_journey.persistence import readonly
from saga_journey.persistence.lmdb_store import LmdbStore
from saga_journey.persistence.readonly import ReadOnlyStore

GROW = """
import sys, lmdb
env = lmdb.open(sys.argv[1], map_size=64 << 20, max_dbs=16)
junk = env.open_db(b"junk-test")
with env.begin(write=True) as txn:
    for i in range(3000):
        txn.put(b"%06d" % i, b"x" * 2000, db=junk)
env.close()
"""


def test_a_map_grown_by_the_writer_between_open_and_first_read_is_adopted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "shard"
    LmdbStore(path, map_size=1 << 20).close()
    real_open = lmdb.open

    def open_then_grow(*args: object, **kwargs: object) -> lmdb.Environment:
        env = real_open(*args, **kwargs)
        subprocess.run([sys.executable, "-c", GROW, str(path)], check=True)  # the owner writes 6 MB meanwhile
        return env

    monkeypatch.setattr(readonly.lmdb, "open", open_then_grow)
    store = ReadOnlyStore(path)
    try:
        assert store.load_saga("default\x00nope") is None
    finally:
        store.close()
