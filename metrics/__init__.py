"""Prometheus metrics for saga-journey, on an injected registry (nothing registers on import).

    registry = CollectorRegistry()
    metrics = SagaMetrics(registry)
    orch = SagaOrchestrator.open("./data", observer=metrics)
    metrics.attach(orch)
    server = start_metrics_server(registry, port=9464)
"""

from .collector import RuntimeStateCollector
from .exposition import MetricsServer, exposition, metrics_handler, start_metrics_server
from .instruments import LATENCY_BUCKETS, STATE_METRICS, Instruments
from .observer import SagaMetrics, status_class

__all__ = [
    "LATENCY_BUCKETS",
    "STATE_METRICS",
    "Instruments",
    "MetricsServer",
    "RuntimeStateCollector",
    "SagaMetrics",
    "exposition",
    "metrics_handler",
    "start_metrics_server",
    "status_class",
]
