"""Prometheus metrics for saga-journey, on an injected registry (nothing registers on import).

    registry = CollectorRegistry()
    metrics = SagaMetrics(registry)
    orch = SagaOrchestrator.open("./data", observer=metrics)
    metrics.attach(orch)
    server = start_metrics_server(registry, port=9464)

Re-exports are lazy (PEP 562), like the other packages of saga_journey.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from saga_journey.runtime.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "LATENCY_BUCKETS": "instruments",
    "STATE_METRICS": "instruments",
    "Instruments": "instruments",
    "MetricsServer": "exposition",
    "RuntimeStateCollector": "collector",
    "SagaMetrics": "observer",
    "exposition": "exposition",
    "gathered_metrics_handler": "exposition",
    "merge_expositions": "merge",
    "metrics_handler": "exposition",
    "start_metrics_server": "exposition",
    "status_class": "observer",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .collector import RuntimeStateCollector
    from .exposition import (
        MetricsServer, exposition, gathered_metrics_handler, metrics_handler, start_metrics_server,
    )
    from .instruments import LATENCY_BUCKETS, STATE_METRICS, Instruments
    from .merge import merge_expositions
    from .observer import SagaMetrics, status_class

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
