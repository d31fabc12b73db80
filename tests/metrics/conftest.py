"""Shared fixtures for the metrics tests: binaries (skip locally, fail under CI) and a runtime."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from saga_journey.metrics import SagaMetrics
from saga_journey.metrics.workload import handlers
from saga_journey.runtime import SagaOrchestrator

REPO = Path(__file__).resolve().parents[2]
METRICS_DIR = REPO / "metrics"


def _require(name: str) -> str:
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed (Debian: apt-get install -y prometheus)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI=true, so a missing binary is an error, not a skip")
    pytest.skip(message)
    raise AssertionError("unreachable")


@pytest.fixture
def promtool() -> str:
    return _require("promtool")


@pytest.fixture
def prometheus_bin() -> str:
    return _require("prometheus")


@pytest.fixture
def runtime(tmp_path):
    """(orchestrator, metrics) on a private registry, with the workload's handlers."""
    metrics = SagaMetrics(CollectorRegistry())
    orch = SagaOrchestrator.open(str(tmp_path / "data"), observer=metrics, handlers=handlers())
    metrics.attach(orch)
    yield orch, metrics
    orch.close()
