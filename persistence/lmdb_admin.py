"""Admin operations of the LMDB store: statistics, pruning rounds and online backup.

A layer of ``LmdbStore`` (over its writer).
"""

from __future__ import annotations



from saga_journey.persistence.lmdb_writer import GroupCommitWriter
from saga_journey.persistence.retention import expired_count
from saga_journey.persistence.store import PruneResult, PruneWrite
from saga_journey.runtime.errors import StorageError


class LmdbAdmin(GroupCommitWriter):
    """``stats``, ``count_expired``, ``prune`` and ``backup``."""

    def stats(self) -> dict:
        with self._gate.shared():
            if self._env_closed:
                raise StorageError(f"store at {self._path} is closed")
            info, stat = self._env.info(), self._env.stat()
        with self._stats_lock:
            return {
                "map_size": info["map_size"],
                "used_bytes": (info["last_pgno"] + 1) * stat["psize"],
                "commits": self._commits,
                "batches": self._batches,
                "last_batch_size": self._last_batch,
                "max_batch_size_seen": self._max_batch_seen,
                "map_grows": self._map_grows,
                "quarantined_records": len(self._quarantine),
                "queue_depth": len(self._pending),
            }

    def feed_pending(self, keep: int) -> bool:
        """Whether a ``PruneWrite`` with ``feed_keep=keep`` would find commit-feed work."""
        with self._read() as txn:
            return self._feed_retention.pending(txn, keep)

    def count_expired(self, now: float, retention_s: float | None, limit: int | None = None) -> int:
        with self._read() as txn:
            return expired_count(txn, self._retention.dbs, now, retention_s, limit)

    def prune(self, now: float, retention_s: float | None, limit: int) -> PruneResult:
        """One bounded round of pruning through the writer (blocks until it committed)."""
        op = PruneWrite(now, retention_s, limit)
        self.write([op])
        return op.result


