"""SagaMetrics: the RuntimeObserver that turns runtime hooks into Prometheus samples.

Hooks run on actor and writer threads, so each one is a dict lookup of a cached labelled
child plus one ``inc``/``observe`` (about a microsecond). Hooks never raise: a failure is
logged once and the runtime carries on.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry

from saga_journey.runtime.model import (
    COMP_FAILED, COMPLETED, FAILED, CompensationAttemptFailed, CompensationExhausted,
    CompensationSucceeded, Event, MilestoneFailed, SagaState,
)
from saga_journey.runtime.observer import RuntimeObserver

from .collector import RuntimeStateCollector
from .instruments import Instruments

log = logging.getLogger("saga_journey.metrics")

OVERFLOW = "_other"
DEFAULT_MAX_CHILDREN = 2000


class _Children:
    """Cache of labelled children; past ``limit`` combinations new ones fold into ``_other``.

    The last ``fixed`` labels (outcome, status class, event: values set by code, not by users)
    are kept when folding, so an overflow never hides e.g. a 5xx.
    """

    __slots__ = ("_metric", "_cache", "_limit", "_fixed")

    def __init__(self, metric: Any, limit: int, fixed: int = 0) -> None:
        self._metric = metric
        self._cache: dict[tuple[str, ...], Any] = {}
        self._limit = limit
        self._fixed = fixed

    def get(self, *values: str) -> Any:
        child = self._cache.get(values)
        if child is None:
            child = self._make(values)
        return child

    def _make(self, values: tuple[str, ...]) -> Any:
        if len(self._cache) >= self._limit:
            free = len(values) - self._fixed
            overflow = (OVERFLOW,) * free + values[free:]
            child = self._cache.get(overflow)
            if child is None:
                child = self._cache[overflow] = self._metric.labels(*overflow)
            return child
        child = self._cache[values] = self._metric.labels(*values)
        return child


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


class SagaMetrics(RuntimeObserver):
    """Metrics for one runtime on ``registry`` (a private registry when none is given).

    Pass it to ``SagaOrchestrator.open(data_dir, observer=metrics)``, then call
    ``metrics.attach(orchestrator)`` so the scrape-time gauges can read the store.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, *, max_children: int = DEFAULT_MAX_CHILDREN
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        m = self.instruments = Instruments(self.registry)
        self._collector: RuntimeStateCollector | None = None
        self._warned = False
        self._seen_types: set[str] = set()

        def cache(metric: Any, fixed: int = 0) -> _Children:
            return _Children(metric, max_children, fixed)

        self._started = cache(m.sagas_started)
        self._completed = cache(m.sagas_completed)
        self._failed = cache(m.sagas_failed, 1)
        self._rollbacks = cache(m.rollbacks_started, 1)
        self._transitions = cache(m.transitions, 1)
        self._requests = cache(m.request_duration, 1)
        self._step = cache(m.compensation_step, 1)
        self._rollback = cache(m.rollback, 1)
        self._attempts = cache(m.compensation_attempts, 1)
        self._retries = cache(m.compensation_retries)
        self._http_count = cache(m.http_requests, 1)
        self._http_time = cache(m.http_duration, 1)
        self._internal_errors = cache(m.internal_errors)
        self._pruned = cache(m.pruned)
        self._activations = m.activations
        self._passivations = m.passivations
        self._commit_time = m.commit_duration
        self._commit_batch = m.commit_batch

    # --- wiring --------------------------------------------------------------------------

    def attach(self, orchestrator: Any) -> SagaMetrics:
        """Register the scrape-time collector reading ``orchestrator`` (once)."""
        if self._collector is not None:
            raise ValueError("these metrics are already attached to an orchestrator")
        self._collector = RuntimeStateCollector(orchestrator)
        self.registry.register(self._collector)
        return self

    def detach(self) -> None:
        if self._collector is not None:
            self.registry.unregister(self._collector)
            self._collector = None

    def _hook_failed(self, hook: str) -> None:
        if not self._warned:
            self._warned = True
            log.exception("metrics hook %s failed; further failures are not logged", hook)

    # --- hooks ---------------------------------------------------------------------------

    def on_transition(self, state: SagaState, event: Event) -> None:
        try:
            jt = state.journey_type
            if jt not in self._seen_types:
                self._first_seen(jt)
            kind = event.kind
            self._transitions.get(jt, kind).inc()
            if kind == "milestone_completed":
                if state.status == COMPLETED:
                    self._completed.get(jt).inc()
            elif kind == "saga_started":
                self._started.get(jt).inc()
            elif isinstance(event, CompensationSucceeded):
                self._step.get(jt, event.milestone_id, "succeeded").observe(event.duration_s)
            elif isinstance(event, CompensationAttemptFailed):
                self._step.get(jt, event.milestone_id, "retry").observe(event.duration_s)
                self._retries.get(jt, event.milestone_id).inc()
            elif isinstance(event, CompensationExhausted):
                self._step.get(jt, event.milestone_id, "exhausted").observe(event.duration_s)
            elif kind == "saga_aborted":
                self._rollbacks.get(jt, "aborted").inc()
            elif isinstance(event, MilestoneFailed):
                # cause: milestone_failed (reported), timeout or deadline
                self._rollbacks.get(jt, event.cause).inc()
            # milestone_attempt_failed, compensation_parked/_retried/_skipped: counted in
            # saga_transitions_total only; a repaired parked saga records a second outcome.
            if state.status == FAILED:
                self._rollback_done(state, event)
        except Exception:
            self._hook_failed("on_transition")

    def _first_seen(self, jt: str) -> None:
        """Create a new journey type's outcome series at 0, so ``increase()`` sees the first one."""
        self._seen_types.add(jt)
        self._started.get(jt)
        self._completed.get(jt)
        self._internal_errors.get(jt)
        for outcome in ("compensated", "compensation_failed"):
            self._failed.get(jt, outcome)
        for cause in ("milestone_failed", "timeout", "deadline", "aborted"):
            self._rollbacks.get(jt, cause)

    def _rollback_done(self, state: SagaState, event: Event) -> None:
        outcome = "compensation_failed" if state.compensation_status == COMP_FAILED else "compensated"
        self._failed.get(state.journey_type, outcome).inc()
        started = state.compensation_started_at
        if started is not None:
            self._rollback.get(state.journey_type, outcome).observe(max(0.0, event.at - started))

    def on_request(self, operation: str, seconds: float, ok: bool) -> None:
        try:
            self._requests.get(operation, "ok" if ok else "error").observe(seconds)
        except Exception:
            self._hook_failed("on_request")

    def on_compensation_attempt(
        self, journey_type: str, milestone_id: str, ok: bool, seconds: float
    ) -> None:
        try:
            self._attempts.get(journey_type, milestone_id, "ok" if ok else "error").inc()
        except Exception:
            self._hook_failed("on_compensation_attempt")

    def on_internal_error(self, journey_type: str) -> None:
        try:
            self._internal_errors.get(journey_type).inc()
        except Exception:
            self._hook_failed("on_internal_error")

    def on_sagas_pruned(self, counts: dict[str, int]) -> None:
        try:
            for journey_type, n in counts.items():
                self._pruned.get(journey_type).inc(n)
        except Exception:
            self._hook_failed("on_sagas_pruned")

    def on_actor_activated(self) -> None:
        self._activations.inc()

    def on_actor_passivated(self) -> None:
        self._passivations.inc()

    def on_commit(self, batch_size: int, seconds: float) -> None:
        try:
            self._commit_time.observe(seconds)
            self._commit_batch.observe(batch_size)
        except Exception:
            self._hook_failed("on_commit")

    def on_http_request(self, route: str, status: int, seconds: float) -> None:
        try:
            cls = status_class(status)
            self._http_count.get(route, cls).inc()
            self._http_time.get(route, cls).observe(seconds)
        except Exception:
            self._hook_failed("on_http_request")
