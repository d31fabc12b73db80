"""One writer thread for all the LMDB environments one process writes (the shards a worker of
``serve --workers`` owns, and the catalog).

Why: with one writer thread per shard, the writes of a busy process spread over its shards and
each writer commits as soon as anything is queued, so group commit stops batching (measured with
8 shards per worker: ~2 writes per commit instead of ~60, each commit a thread wake-up, an fsync
and a hand-back to the event loop). One thread that takes every shard's queue at once commits
each shard that has work (one transaction and one fsync each, as before: atomicity and
durability per shard are unchanged), then hands every outcome of the round back in one call, and
while it commits one shard the others' queues fill.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .lmdb_writer import GroupCommitWriter


class SharedWriter:
    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self._stores: list[GroupCommitWriter] = []
        self._busy: set[int] = set()  # ids of the stores whose batch is being committed
        self.thread = threading.Thread(target=self._run, name="saga-journey-writer", daemon=False)

    def attach(self, store: GroupCommitWriter) -> None:
        """Serve ``store``'s queue (it was built with ``cond=self.cond``); starts the thread."""
        with self.cond:
            self._stores.append(store)
            store._sleeping()  # the thread may be asleep already: the first enqueue wakes it
        if not self.thread.is_alive() and self.thread.ident is None:
            self.thread.start()

    def detach(self, store: GroupCommitWriter) -> None:
        """Wait until ``store`` (closed: nothing more is queued) has no request left, then stop
        serving it; the thread ends with the last store."""
        with self.cond:
            while store._pending or id(store) in self._busy:
                self.cond.wait()
            self._stores = [s for s in self._stores if s is not store]
            self.cond.notify_all()
        if not self._stores and threading.current_thread() is not self.thread:
            self.thread.join()

    def _run(self) -> None:
        while True:
            with self.cond:
                while True:
                    ready = [s for s in self._stores if s._pending]
                    if ready or not self._stores:
                        break
                    for s in self._stores:
                        s._sleeping()
                    self.cond.wait()
                if not ready:
                    return
                batches = [(s, s._take_queued()) for s in ready]
                self._busy = {id(s) for s in ready}
            handed = []
            for store, batch in batches:
                handed.extend(store._settle(batch))
            if handed:
                batches[0][0]._hand_off(handed)  # every store of one process has the same hand-off
            for store, _ in batches:
                store._check_readers()
            with self.cond:
                self._busy = set()
                self.cond.notify_all()  # a detach may be waiting for its store to drain
