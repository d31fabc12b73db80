"""What the runtime writes, backend-neutral: the write records and the commit callbacks.

The ports (what a store offers) are in ``ports``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable


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

    def reset(self) -> None:
        self.pruned, self.records, self.more = {}, 0, False
        self.feed_removed, self.feed_more = 0, False

    def add(self, part: PruneResult, *, more: bool = False, feed_more: bool = False) -> None:
        """Fold in one shard's round (a sharded store prunes shard by shard); ``more`` and
        ``feed_more``: work seen in a shard the round had no limit left for."""
        for journey_type, n in part.pruned.items():
            self.pruned[journey_type] = self.pruned.get(journey_type, 0) + n
        self.records += part.records
        self.more = self.more or part.more or more
        self.feed_removed += part.feed_removed
        self.feed_more = self.feed_more or part.feed_more or feed_more


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
Outcome = tuple[CommitCallback, "BaseException | None"]
Handoff = Callable[[list[Outcome]], None]
"""Called once per committed batch (on the writer): must see that each callback runs, in order."""

log = logging.getLogger("saga_journey.persistence")


def run_outcomes(outcomes: list[Outcome]) -> None:
    """Run handed-back commit callbacks in order (the runtime calls it on its loop)."""
    for callback, error in outcomes:
        run_callback(callback, error)


def run_callback(callback: CommitCallback, error: BaseException | None) -> None:
    try:
        callback(error)
    except Exception:
        log.exception("commit callback raised; ignored")
