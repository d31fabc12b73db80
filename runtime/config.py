"""Runtime settings, with defaults that suit the embedded single-node deployment."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    map_size: int = 256 * 1024 * 1024
    """Initial LMDB map size in bytes; the store doubles it whenever it fills."""
    group_commit: bool = True
    """Batch every pending write into one transaction (one fsync). False: one commit per write."""
    max_batch: int = 1000
    idle_passivate_s: float = 30.0
    """A live saga actor idle this long is stopped; its state is already in the store."""
    max_live_actors: int = 5000
    """Above this many live actors, idle ones are passivated eagerly."""
    hard_live_actor_limit: int = 15000
    """Activation beyond this is refused with OverloadedError (each actor is a thread)."""
    reply_timeout_s: float = 30.0
    """How long a synchronous call waits for its reply before raising."""
    default_tenant: str = "default"
    dispatcher_threads: int = 2
    """Unused since saga actors run on one event loop (kept so that old configs still load)."""
    tune_gc: bool = True
    """After start-up, ``gc.freeze()`` what exists and raise the gen-0 threshold: the runtime
    allocates many short-lived objects and few cycles (measured: -15 to -25% CPU). Process-wide;
    a host that tunes its own GC passes False."""
    handler_timeout_s: float | None = 60.0
    """A compensation handler attempt running longer is abandoned and counted as a failed,
    retryable attempt. Per milestone: ``retry.handler_timeout_s``. None: never abandon."""
    max_abandoned_handler_threads: int = 32
    """A hung sync handler's thread cannot be killed in Python. With this many abandoned,
    new sync attempts fail at once (counted as failed attempts, retried per policy)."""
    max_handler_threads: int = 256
    """Hard bound on threads running sync compensation handlers, abandoned ones included;
    when all are taken, attempts wait (without spending an attempt) for one to free up."""
    max_in_flight_requests: int = 10000
    """Admission control: writes (execute/advance/compensate/operator) accepted but not yet
    answered; beyond it requests are refused with OverloadedError."""
    max_queued_per_saga: int = 100
    """Admission control: requests waiting behind one saga's in-flight write; beyond it that
    saga's requests are refused with OverloadedError."""
    retention_s: float | None = None
    """Finished sagas (COMPLETED, or FAILED with compensation done) older than this are pruned
    in the background: snapshot, history, indexes, idempotency records. None: kept forever. A
    journey's ``requirements.retention_s`` overrides it; parked sagas are never pruned."""
    prune_interval_s: float = 60.0
    """How often the background pruner looks for expired sagas."""
    prune_batch: int = 500
    """Most sagas one pruning round removes (one write transaction); a full round is followed
    at once by another, so a backlog drains in bounded steps between other writes."""
    feed_retention_entries: int = 1_000_000
    """The commit feed behind ``GET /v1/events`` keeps at most this many entries (0: all); the
    oldest go first, in pruning rounds. A stream resuming from an id older than what is kept
    is answered 410 (list again, then follow). Entries of pruned sagas go in any case."""
    feed_sweep_batch: int = 5000
    """Most commit-feed entries one pruning round looks at (removing those past the retention
    and those of pruned sagas)."""
