"""Every saga-journey metric, declared in one place on an injected registry.

Push-style instruments (counters, histograms) are created here by ``Instruments``; the
scrape-time gauges read from the store and the orchestrator are declared in ``STATE_METRICS``
and produced by ``collector.RuntimeStateCollector``. Nothing is registered at import time.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

# 1 ms .. 10 min: a compensation may be a local undo or a remote call retried with backoff.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
)
# Request/commit latencies sit well below a second; finer low buckets, same ceiling.
FAST_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


@dataclass(frozen=True, slots=True)
class StateMetric:
    name: str
    kind: str  # "gauge" | "counter"
    help: str
    labels: tuple[str, ...] = ()


# Read at scrape time (never counted in-process, so they survive restarts unchanged).
STATE_METRICS = (
    StateMetric("saga_sagas", "gauge", "Stored sagas by journey type and current state.",
                ("journey_type", "state")),
    StateMetric("saga_oldest_active_saga_age_seconds", "gauge",
                "Seconds since the longest-waiting saga entered its current non-terminal "
                "state (IN_PROGRESS: since start; COMPENSATING: since the failure was recorded).",
                ("state",)),
    StateMetric("saga_compensation_failed_sagas", "gauge",
                "FAILED sagas whose compensation failed; each needs an operator.",
                ("journey_type",)),
    StateMetric("saga_live_actors", "gauge", "Saga actors currently live (in memory)."),
    StateMetric("saga_mailbox_messages", "gauge",
                "Messages queued in the mailboxes of all live saga actors."),
    StateMetric("saga_mailbox_max_messages", "gauge",
                "Deepest mailbox among the live saga actors."),
    StateMetric("saga_pending_timers", "gauge", "Armed timers (retries, timeouts, reaper)."),
    StateMetric("saga_store_map_size_bytes", "gauge", "Current LMDB map size."),
    StateMetric("saga_store_used_bytes", "gauge", "LMDB map bytes in use (up to the last page)."),
    StateMetric("saga_store_write_queue_depth", "gauge",
                "Write requests waiting for the store's writer thread."),
    StateMetric("saga_store_map_grows_total", "counter",
                "Times the LMDB map was grown since this process opened the store."),
)


class Instruments:
    """The push-style metrics of one runtime, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.sagas_started = Counter(
            "saga_sagas_started_total", "Sagas started.", ["journey_type"], registry=r)
        self.sagas_completed = Counter(
            "saga_sagas_completed_total", "Sagas that completed every milestone.",
            ["journey_type"], registry=r)
        self.sagas_failed = Counter(
            "saga_sagas_failed_total",
            "Sagas that ended FAILED; outcome says whether their compensation succeeded.",
            ["journey_type", "outcome"], registry=r)
        self.rollbacks_started = Counter(
            "saga_rollbacks_started_total",
            "Rollbacks begun; cause is milestone_failed, timeout, deadline or aborted.",
            ["journey_type", "cause"], registry=r)
        self.transitions = Counter(
            "saga_transitions_total", "Committed saga transitions by event.",
            ["journey_type", "event"], registry=r)
        self.request_duration = Histogram(
            "saga_request_duration_seconds",
            "API calls (execute, advance, compensate) from submission to committed reply.",
            ["operation", "outcome"], buckets=FAST_BUCKETS, registry=r)
        self.compensation_step = Histogram(
            "saga_compensation_step_duration_seconds",
            "Duration of each compensation handler run, by its recorded outcome "
            "(succeeded, retry, exhausted).",
            ["journey_type", "milestone", "outcome"], buckets=LATENCY_BUCKETS, registry=r)
        self.rollback = Histogram(
            "saga_rollback_duration_seconds",
            "Whole rollback: failure recorded -> last compensation done (saga FAILED).",
            ["journey_type", "outcome"], buckets=LATENCY_BUCKETS, registry=r)
        self.compensation_attempts = Counter(
            "saga_compensation_attempts_total",
            "Compensation handler runs as they return (outcome ok or error).",
            ["journey_type", "milestone", "outcome"], registry=r)
        self.compensation_retries = Counter(
            "saga_compensation_retries_total",
            "Failed compensation attempts that were scheduled for a retry.",
            ["journey_type", "milestone"], registry=r)
        self.internal_errors = Counter(
            "saga_internal_errors_total",
            "Unexpected errors inside a saga's actor; each parks its saga with the error recorded.",
            ["journey_type"], registry=r)
        self.pruned = Counter(
            "saga_pruned_sagas_total",
            "Finished sagas removed by retention (snapshot, history, indexes, idempotency records).",
            ["journey_type"], registry=r)
        self.activations = Counter(
            "saga_actor_activations_total",
            "Saga actors re-activated from their stored snapshot.", registry=r)
        self.passivations = Counter(
            "saga_actor_passivations_total", "Saga actors stopped (idle, finished or shutdown).",
            registry=r)
        self.commit_duration = Histogram(
            "saga_store_commit_duration_seconds", "LMDB write transactions (one fsync each).",
            buckets=FAST_BUCKETS, registry=r)
        self.commit_batch = Histogram(
            "saga_store_commit_batch_size", "Write requests grouped into one LMDB transaction.",
            buckets=BATCH_BUCKETS, registry=r)
        self.http_requests = Counter(
            "saga_http_requests_total", "Gateway requests by route template and status class.",
            ["route", "status_class"], registry=r)
        self.http_duration = Histogram(
            "saga_http_request_duration_seconds", "Gateway request latency.",
            ["route", "status_class"], buckets=FAST_BUCKETS, registry=r)
