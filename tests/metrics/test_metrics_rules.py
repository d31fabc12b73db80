"""Rules and dashboard files: promtool checks, and a static check of every name they use."""

from __future__ import annotations

import json
import re
import subprocess

from prometheus_client import CollectorRegistry

from saga_journey.metrics import STATE_METRICS, SagaMetrics
from saga_journey.metrics.merge import WORKER_UP

from .conftest import METRICS_DIR

PROM_DIR = METRICS_DIR / "prometheus"
RULE_FILES = sorted((PROM_DIR / "rules").glob("*.yml"))
DASHBOARD = METRICS_DIR / "grafana" / "saga-journey.json"
ROWS = ["Throughput", "State", "Compensation latency", "Failures and stuck sagas",
        "Runtime internals", "Persistence", "Gateway"]


def declared_names() -> set[str]:
    registry = CollectorRegistry()
    SagaMetrics(registry)
    names: set[str] = {s.name for f in registry.collect() for s in f.samples}
    for f in registry.collect():
        if f.type == "histogram":
            names |= {f.name + sfx for sfx in ("_bucket", "_sum", "_count")}
        elif f.type == "counter":
            names.add(f.name + "_total")
    return names | {m.name for m in STATE_METRICS} | {WORKER_UP}  # WORKER_UP: written by the merge


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def test_promtool_check_rules(promtool):
    out = subprocess.run([promtool, "check", "rules", *map(str, RULE_FILES)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("SUCCESS") == len(RULE_FILES)


def test_promtool_unit_tests_of_the_alerts(promtool):
    out = subprocess.run([promtool, "test", "rules", "tests/saga_alerts.test.yml"],
                         cwd=PROM_DIR, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout
    # Each alert is tested both firing and quiet.
    text = (PROM_DIR / "tests" / "saga_alerts.test.yml").read_text()
    alerts = re.findall(r"^\s+- alert: (\w+)", (PROM_DIR / "rules" / "saga_alerts.rules.yml").read_text(), re.M)
    assert len(alerts) == 6
    for alert in alerts:
        quiet = rf"alertname: {alert}\n\s+exp_alerts: \[\]"
        assert re.search(quiet, text), f"{alert} has no not-firing case"
        assert re.search(rf"alertname: {alert}\n\s+exp_alerts:\n\s+- exp_labels", text), f"{alert} has no firing case"


def test_promtool_check_example_config(promtool):
    out = subprocess.run([promtool, "check", "config", "prometheus.yml"],
                         cwd=PROM_DIR, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_name_in_rules_and_dashboard_is_declared():
    known = declared_names()
    recorded = set(re.findall(r"record: (saga:\S+)", (PROM_DIR / "rules" / "saga_recording.rules.yml").read_text()))
    texts = [p.read_text() for p in RULE_FILES] + dashboard_exprs()
    used = {n for t in texts for n in re.findall(r"\bsaga_[a-z0-9_]+", t)}
    assert used and used <= known, sorted(used - known)
    used_recorded = {n for t in texts for n in re.findall(r"\bsaga:[a-z0-9_:]+", t)}
    assert used_recorded <= recorded, sorted(used_recorded - recorded)


def test_dashboard_has_the_rows_and_every_panel_queries_prometheus():
    dash = json.loads(DASHBOARD.read_text())
    rows = [p["title"] for p in dash["panels"] if p["type"] == "row"]
    assert rows == ROWS
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}" and p["description"], p["title"]
        assert p["targets"] and all(t["expr"].strip() for t in p["targets"]), p["title"]
    assert {v["name"] for v in dash["templating"]["list"]} == {"datasource", "journey_type"}
