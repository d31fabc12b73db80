"""Backend-neutral store interface: what the runtime writes and reads, not how."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence, runtime_checkable


@dataclass(frozen=True, slots=True)
class SagaWrite:
    saga_id: str
    snapshot: dict  # full saga state as a plain msgpack-able dict
    events: tuple[dict, ...]  # history entries to append, in order
    first_seq: int  # history sequence number of events[0] (1-based, contiguous per saga)
    tenant_id: str
    journey_type: str
    status: str  # new status
    prev_status: str | None  # status before this write (None for a new saga)
    owed: bool  # True -> saga has work owed (listed by sagas_with_work_owed)
    idempotency: tuple[str, dict] | None = None  # (key, response) stored in the same txn
    wake_at: float | None = None  # earliest pending timer of a saga with no work owed now
    retention_s: float | None = None  # the journey's own retention (None: the global setting)


@dataclass(frozen=True, slots=True)
class JourneyWrite:
    journey: dict  # has "journey_id" (str), "version" (int >= 1), "tenant_id" (str)
    idempotency: tuple[str, dict] | None = None  # (key, response) stored in the same txn


@dataclass(slots=True)
class PruneResult:
    """What one ``PruneWrite`` removed; filled in by the writer, valid once it committed."""

    pruned: dict[str, int] = field(default_factory=dict)  # journey type -> sagas removed
    records: int = 0  # records deleted (snapshots, history, index entries, idempotency)
    more: bool = False  # the round stopped at its limit: more sagas are already expired
    feed_removed: int = 0  # commit-feed entries removed (of pruned sagas, or past feed_keep)
    feed_more: bool = False  # the feed has more work for the next round

    @property
    def sagas(self) -> int:
        return sum(self.pruned.values())


@dataclass(frozen=True, slots=True)
class PruneWrite:
    """Remove up to ``limit`` finished sagas whose retention has passed at ``now``.

    Finished means COMPLETED, or FAILED with its compensation done; a parked saga (its
    compensation failed) is never pruned. A saga of a journey with its own ``retention_s``
    expires by that; every other saga by ``retention_s`` here (None: kept).
    """

    now: float
    retention_s: float | None
    limit: int
    result: PruneResult = field(default_factory=PruneResult)
    feed_keep: int = 0  # keep at most this many commit-feed entries (0: every entry)
    feed_budget: int = 0  # feed entries one round may look at (0: no feed work)


Write = SagaWrite | JourneyWrite | PruneWrite
CommitCallback = Callable[[BaseException | None], None]


@runtime_checkable
class SagaStore(Protocol):
    """Writes carry the plain ids and their tenant; reads by id take the internal key
    (``keys.scoped_key(tenant, id)``), as do the ids that recovery reads return."""

    def submit(self, writes: Sequence[Write], callback: CommitCallback) -> None:
        """Queue ``writes`` for one atomic transaction.

        ``callback`` runs on the writer thread once that transaction committed (``None``)
        or failed (a ``StorageError``). Raises ``StorageError`` at once if the store is closed.
        """
        ...

    def write(self, writes: Sequence[Write]) -> None:
        """Submit and block until committed; raise the ``StorageError`` on failure."""
        ...

    def load_saga(self, saga_id: str) -> dict | None: ...

    def load_history(
        self, saga_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[dict]: ...

    def load_journey(self, journey_id: str, version: int | None = None) -> dict | None: ...

    def list_journeys(self, tenant_id: str) -> list[dict]: ...

    def list_sagas(
        self,
        tenant_id: str,
        *,
        status: str | None = None,
        journey_type: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> tuple[list[dict], str | None]: ...

    def find_sagas(
        self, query: Any, *, limit: int = 100, after: str | None = None
    ) -> tuple[list[dict], str | None]:
        """Snapshots matching ``query`` (``recent.Query``) by updated_at, and the next cursor."""
        ...

    def tenant_counts(self, tenant_id: str) -> tuple[dict[str, int], int]:
        """({status: sagas}, parked sagas) of one tenant (a walk of its index entries)."""
        ...

    def feed_end(self) -> int:
        """Global position of the last committed history entry (0: none)."""
        ...

    def feed_scan(
        self, position: int, limit: int = 1000, *, tenant: str | None = None
    ) -> tuple[list[tuple[int, str, dict]], int]:
        """([(position, saga key, history entry)] after ``position``, last position looked at)."""
        ...

    def sagas_with_work_owed(self) -> list[str]: ...

    def pending_wakeups(self) -> list[tuple[str, float]]:
        """(saga_id, wake_at) of every saga with a durable timer pending."""
        ...

    def count_by_status(self) -> dict[tuple[str, str], int]: ...

    def oldest_active(self) -> dict[str, float]:
        """``{status: entered_at}`` of the saga longest in IN_PROGRESS / COMPENSATING (absent: none).

        ``entered_at`` is the snapshot's ``updated_at`` of the write that changed the status.
        """
        ...

    def count_compensation_failed(self) -> dict[str, int]:
        """Count of FAILED sagas with ``compensation_status == "failed"``, by journey type."""
        ...

    def get_idempotency(self, key: str) -> dict | None: ...

    def stats(self) -> dict:
        """Includes ``quarantined_records``: corrupt records met by reads of this process."""
        ...

    def quarantine(self, where: str, reason: str) -> None:
        """Record that the record at ``where`` cannot be used (e.g. decodes but is malformed)."""
        ...

    def quarantined(self) -> list[dict[str, str]]: ...

    def backup(self, dest_dir: str, *, compact: bool = True) -> None: ...

    def feed_floor(self) -> int:
        """The highest feed position removed by the feed retention (0: none): a stream resuming
        after an id below it may have missed events."""
        ...

    def feed_pending(self, keep: int) -> bool:
        """Whether a ``PruneWrite`` with ``feed_keep=keep`` would find commit-feed work."""
        ...

    def count_expired(self, now: float, retention_s: float | None, limit: int | None = None) -> int:
        """How many finished sagas ``PruneWrite(now, retention_s)`` rounds would remove (at most ``limit``)."""
        ...

    def close(self) -> None: ...
