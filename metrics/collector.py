"""Scrape-time gauges read from the orchestrator and its store (they never drift on restart)."""

from __future__ import annotations

import logging
from typing import Any, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from saga_journey.runtime.errors import SagaError
from saga_journey.runtime.model import COMPENSATING, IN_PROGRESS, SAGA_STATES

from .instruments import STATE_METRICS, StateMetric

log = logging.getLogger("saga_journey.metrics")

_ACTIVE = (IN_PROGRESS, COMPENSATING)


def _family(spec: StateMetric) -> GaugeMetricFamily | CounterMetricFamily:
    if spec.kind == "counter":
        return CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
    return GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)


def _store_figures(store: Any) -> tuple[dict[tuple[str, str], int], dict[str, float], dict[str, int]]:
    """``(count_by_status, oldest_active, count_compensation_failed)`` of what this process
    owns: a sharded store of a ``serve --workers`` worker reads the whole folder, so its
    ``owned_view()`` (the owned shards only) is read instead and the workers' series add up.
    A store without ``owned_view`` (one environment, one process) is read whole."""
    owned_view = getattr(store, "owned_view", None)
    source = owned_view() if callable(owned_view) else store
    return source.count_by_status(), source.oldest_active(), source.count_compensation_failed()


class RuntimeStateCollector(Collector):
    """Reads ``orchestrator.stats()`` and the store's counters at each scrape (of the owned
    shards only, for a sharded store: see ``_store_figures``).

    A closed or failing store yields no samples for these metrics (the scrape still succeeds);
    Prometheus then sees the series go stale rather than a made-up value.
    """

    def __init__(self, orchestrator: Any) -> None:
        self._orch = orchestrator

    def describe(self) -> Iterator[Metric]:
        for spec in STATE_METRICS:
            yield _family(spec)

    def collect(self) -> Iterator[Metric]:
        try:
            families = self._read()
        except SagaError as exc:
            log.debug("state metrics unavailable: %s", exc)
            return
        yield from families

    def _read(self) -> list[Metric]:
        orch = self._orch
        stats = orch.stats()
        counts, oldest, failed = _store_figures(orch.store)
        now = orch.clock.now()
        fam = {spec.name: _family(spec) for spec in STATE_METRICS}

        known = sorted({jt for jt, _ in counts} | set(failed))
        by_state = fam["saga_sagas"]
        for jt in known:
            for state in SAGA_STATES:
                by_state.add_metric([jt, state], counts.get((jt, state), 0))
        age = fam["saga_oldest_active_saga_age_seconds"]
        for state in _ACTIVE:
            entered = oldest.get(state)
            age.add_metric([state], 0.0 if entered is None else max(0.0, now - entered))
        comp_failed = fam["saga_compensation_failed_sagas"]
        for jt in known:  # 0 too: a series that vanishes at 0 reads as "No data"
            comp_failed.add_metric([jt], failed.get(jt, 0))

        st = stats["store"]
        fam["saga_live_actors"].add_metric([], stats["live_actors"])
        fam["saga_mailbox_messages"].add_metric([], stats.get("mailbox_messages", 0))
        fam["saga_mailbox_max_messages"].add_metric([], stats.get("mailbox_max", 0))
        fam["saga_pending_timers"].add_metric([], stats["pending_timers"])
        fam["saga_store_map_size_bytes"].add_metric([], st["map_size"])
        fam["saga_store_used_bytes"].add_metric([], st["used_bytes"])
        fam["saga_store_write_queue_depth"].add_metric([], st["queue_depth"])
        fam["saga_store_map_grows_total"].add_metric([], st["map_grows"])
        return list(fam.values())
