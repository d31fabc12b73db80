"""The ports through which the runtime, the gateway and the CLI reach a store.

Each consumer depends on the narrowest port it uses, never on a backend class:

- ``Recorder``: atomic write batches (saga transitions with their history, idempotency
  records and owed effects; journeys; prune rounds).
- ``Queries``: reads by id, listings with filters and cursors, the commit feed, recovery's
  owed work, the figures metrics read.
- ``Admin``: statistics, backup, retention counts and pruning, closing.
- ``RuntimeStore``: recorder and queries, what the actors use.
- ``Store``: all three, what a backend opens for one process (``StoreBackend.open``).
- ``StoreBackend``: one store location (``factory.backend_for(url)``): whether it exists,
  opening it read-write or read-only, and the offline operations (verify, migrate).

Writes carry the plain ids and their tenant; reads by id take the internal key
(``keys.scoped_key(tenant, id)``), as do the ids that recovery reads return. Every backend must
pass the contract suite in ``tests/contract``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence, runtime_checkable

from .store import CommitCallback, Handoff, PruneResult, Write

if TYPE_CHECKING:
    from .query import Query


@runtime_checkable
class Recorder(Protocol):
    def submit(self, writes: Sequence[Write], callback: CommitCallback) -> None:
        """Queue ``writes`` for one atomic transaction.

        ``callback`` runs once that transaction committed (``None``) or failed (a
        ``StorageError``): on the writer, or through the store's ``handoff``. Raises
        ``StorageError`` at once if the store is closed.
        """
        ...

    def write(self, writes: Sequence[Write]) -> None:
        """Submit and block until committed; raise the ``StorageError`` on failure."""
        ...


@runtime_checkable
class Queries(Protocol):
    def load_saga(self, saga_id: str) -> dict[str, Any] | None: ...

    def load_history(
        self, saga_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """History entries with ``seq > after_seq``, in ``seq`` order."""
        ...

    def load_journey(self, journey_id: str, version: int | None = None) -> dict[str, Any] | None:
        """A journey version (None: the latest)."""
        ...

    def list_journeys(self, tenant_id: str) -> list[dict[str, Any]]:
        """The latest version of each of the tenant's journeys."""
        ...

    def find_sagas(
        self, query: Query, *, limit: int = 100, after: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Snapshots matching ``query`` by updated_at (``query.order``), and the next cursor
        (None: no more). A cursor never repeats or skips a saga that did not change."""
        ...

    def tenant_counts(self, tenant_id: str) -> tuple[dict[str, int], int]:
        """({status: sagas}, parked sagas) of one tenant (a walk of its index entries)."""
        ...

    def feed_floor(self) -> int:
        """The highest feed position removed by the feed retention (0: none): a stream resuming
        after an id below it may have missed events."""
        ...

    def feed_end(self) -> int:
        """Global position of the last committed history entry (0: none)."""
        ...

    def feed_scan(
        self, position: int, limit: int = 1000, *, tenant: str | None = None
    ) -> tuple[list[tuple[int, str, dict[str, Any]]], int]:
        """([(position, saga key, history entry)] after ``position``, last position looked at)."""
        ...

    def sagas_with_work_owed(self) -> list[str]:
        """Keys of the sagas to activate at once on recovery."""
        ...

    def pending_wakeups(self) -> list[tuple[str, float]]:
        """(saga key, wake_at) of every saga with a durable timer pending."""
        ...

    def get_idempotency(self, key: str) -> dict[str, Any] | None: ...

    def count_by_status(self) -> dict[tuple[str, str], int]:
        """``{(journey_type, status): count}``."""
        ...

    def oldest_active(self) -> dict[str, float]:
        """``{status: entered_at}`` of the saga longest in IN_PROGRESS / COMPENSATING (absent: none)."""
        ...

    def count_compensation_failed(self) -> dict[str, int]:
        """Count of FAILED sagas with ``compensation_status == "failed"``, by journey type."""
        ...

    def quarantine(self, where: str, reason: str) -> None:
        """Record that the record at ``where`` cannot be used (e.g. decodes but is malformed)."""
        ...

    def quarantined(self) -> list[dict[str, str]]: ...

    def close(self) -> None: ...


@runtime_checkable
class Admin(Protocol):
    def feed_pending(self, keep: int) -> bool:
        """Whether a ``PruneWrite`` with ``feed_keep=keep`` would find commit-feed work."""
        ...

    def stats(self) -> dict[str, Any]:
        """Includes ``quarantined_records``: corrupt records met by reads of this process."""
        ...

    def backup(self, dest_dir: str, *, compact: bool = True) -> None:
        """A consistent copy of the store into ``dest_dir``, taken while it is in use."""
        ...

    def count_expired(self, now: float, retention_s: float | None, limit: int | None = None) -> int:
        """How many finished sagas prune rounds at ``now`` would remove (at most ``limit``)."""
        ...

    def prune(self, now: float, retention_s: float | None, limit: int) -> PruneResult:
        """One bounded round of pruning (blocks until it committed)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class RuntimeStore(Recorder, Queries, Protocol):
    """What the actor runtime uses: it writes transitions and reads snapshots and owed work."""


@runtime_checkable
class Store(Recorder, Queries, Admin, Protocol):
    """What a backend opens for the one process that writes it."""


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """How the runtime opens a store (backends ignore what does not apply to them)."""

    map_size: int | None = None  # LMDB: the initial map size (it grows when full)
    group_commit: bool = True
    max_batch: int = 1000
    on_commit: Callable[[int, float], None] | None = None  # (requests, seconds) per commit
    handoff: Handoff | None = None  # where the callbacks of each committed batch are run
    shards: int | None = None  # LMDB, a new folder: None or 1 the one-environment layout, > 1 sharded
    owned_shards: frozenset[int] | None = None  # LMDB, a sharded folder: the shards to open (None: all)


class VerifyResult(Protocol):
    records: int
    sagas: int
    corrupt: list[dict[str, str]]
    inconsistent: list[str]

    @property
    def ok(self) -> bool: ...

    def to_dict(self) -> dict[str, Any]: ...


class StoreBackend(Protocol):
    """One store location, from a store URL (``factory.backend_for``)."""

    url: str

    def describe(self) -> str:
        """Where it is, for messages (a folder, a database)."""
        ...

    def exists(self) -> bool:
        """Whether a store is there (checked without creating anything)."""
        ...

    def open(self, options: StoreOptions = StoreOptions()) -> Store:
        """Open (creating if absent) for this process, the one writer."""
        ...

    def open_read_only(self) -> Queries:
        """Reads beside a running writer; writes are refused."""
        ...

    def verify(self, progress: Callable[[int, int], None] | None = None) -> VerifyResult:
        """Offline integrity check (no process may have it open); ``progress(done, total)``
        is called as records are checked (for a progress bar)."""
        ...

    def migrate(self) -> tuple[int, int]:
        """Bring it to the current stored format: (the format found (0: it held nothing), the current)."""
        ...


SagaStore = Store  # the name of the whole-store protocol before the ports were split out
