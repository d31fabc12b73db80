"""End to end: a real Prometheus scrapes a running saga-journey under a failing workload.

Prometheus (the Debian binary) runs on 127.0.0.1 on a free port with a temp data dir,
scraping every second and evaluating the shipped rules every second. Every synchronisation
is a bounded poll of Prometheus' HTTP API.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest
from aiohttp import web

from saga_journey.metrics import metrics_handler, start_metrics_server
from saga_journey.metrics.workload import design, run_workload

from .conftest import METRICS_DIR

DEADLINE_S = 40.0  # the whole test stays well under a minute
GRAFANA_VARS = {"$__rate_interval": "1m", "$__range": "5m", "$journey_type": ".*"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prom:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> dict[str, Any]:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # 400/422 carry a JSON error body
            return json.loads(exc.read())

    def query(self, expr: str) -> dict[str, Any]:
        return self.get("/api/v1/query", query=expr)

    def values(self, expr: str) -> list[float]:
        out = self.query(expr)
        assert out["status"] == "success", (expr, out)
        return [float(r["value"][1]) for r in out["data"]["result"]]


def poll(what: str, check, deadline: float, interval: float = 0.2):
    """Call ``check`` until it returns a truthy value or the deadline passes (then fail)."""
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, ValueError) as exc:  # not up yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what}; last: {last!r}")


class StandInGateway:
    """A real aiohttp app with the gateway's observer hook, so gateway metrics carry traffic.

    (The real gateway is built elsewhere; this only calls ``on_http_request`` as it will.)
    """

    def __init__(self, metrics) -> None:
        self.metrics = metrics
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        @web.middleware
        async def observe(request: web.Request, handler):
            started = time.perf_counter()
            route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
            try:
                response = await handler(request)
                status = response.status
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                self.metrics.on_http_request(route, status, time.perf_counter() - started)
            return response

        async def ok(_: web.Request) -> web.Response:
            return web.json_response({"ok": True})

        async def boom(_: web.Request) -> web.Response:
            return web.json_response({"title": "internal error"}, status=500)

        app = web.Application(middlewares=[observe])
        app.router.add_get("/metrics", metrics_handler(self.metrics.registry))
        app.router.add_get("/sagas/{saga_id}", ok)
        app.router.add_post("/sagas/{saga_id}/advance", boom)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    def hit(self, method: str, path: str) -> int:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method, data=b"" if method == "POST" else None)
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def dashboard_exprs() -> list[tuple[str, str]]:
    dash = json.loads((METRICS_DIR / "grafana" / "saga-journey.json").read_text())
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            expr = t["expr"]
            for var, value in GRAFANA_VARS.items():
                expr = expr.replace(var, value)
            assert "$" not in expr, expr
            out.append((p["title"], expr))
    return out


def test_prometheus_scrapes_a_failing_workload(tmp_path, runtime, prometheus_bin):
    deadline = time.monotonic() + DEADLINE_S
    orch, metrics = runtime
    server = start_metrics_server(metrics.registry, port=0)
    gateway = StandInGateway(metrics)
    port = free_port()
    config = tmp_path / "prometheus.yml"
    rules = sorted((METRICS_DIR / "prometheus" / "rules").glob("*.yml"))
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(r) for r in rules],
        "scrape_configs": [{"job_name": "saga-journey",
                            "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}]}],
    }))
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen(
        [prometheus_bin, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    prom = Prom(port)
    try:
        poll("Prometheus ready", lambda: urllib.request.urlopen(prom.base + "/-/ready", timeout=2).status == 200, deadline)
        poll("the target to be up", lambda: prom.values('up{job="saga-journey"}') == [1.0], deadline)

        # Warm-up: journey types become known, their outcome series exist at 0 and are scraped
        # before anything fails (so increase() over them sees the first failure).
        journeys = design(orch)
        run_workload(orch, 4, fail_every=0, journeys=journeys)
        poll("warm-up scraped", lambda: prom.values("sum(saga_sagas_started_total)") == [4.0], deadline)
        poll("zero outcome series scraped",
             lambda: len(prom.values('saga_sagas_failed_total{outcome="compensation_failed"}')) == 2, deadline)

        result = run_workload(orch, 90, fail_every=3, journeys=journeys)
        for _ in range(20):
            assert gateway.hit("GET", "/sagas/s1") == 200
        for _ in range(5):
            assert gateway.hit("POST", "/sagas/s1/advance") == 500
        assert result.rollbacks > 0 and result.final["compensation_failed"] > 0
        assert len(result.rollbacks_by_type) == 2

        # The headline: the rollback histogram holds exactly the rollbacks the workload made.
        poll("all rollbacks scraped",
             lambda: prom.values("sum(saga_rollback_duration_seconds_count)") == [float(result.rollbacks)],
             deadline)
        by_type = {r["metric"]["journey_type"]: float(r["value"][1]) for r in prom.query(
            "sum by (journey_type) (saga_rollback_duration_seconds_count)")["data"]["result"]}
        assert by_type == {jt: float(n) for jt, n in result.rollbacks_by_type.items()}
        assert prom.values('sum(saga_sagas{state="FAILED"})') == [float(result.rollbacks)]
        assert prom.values("sum(saga_compensation_failed_sagas)") == [float(result.final["compensation_failed"])]

        # Every rule Prometheus loaded from our files is healthy and its query returns data.
        def loaded_rules():
            groups = prom.get("/api/v1/rules")["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            ready = all(r["health"] == "ok" and r.get("lastEvaluation", "").startswith("2") for r in rules)
            return rules if ready and len(rules) == 17 else None

        rules_loaded = poll("rules evaluated", loaded_rules, deadline)
        recording = [r for r in rules_loaded if r["type"] == "recording"]
        alerting = [r for r in rules_loaded if r["type"] == "alerting"]
        for rule in recording:
            poll(f"recording rule {rule['name']} to have data",
                 lambda: prom.values(rule["name"]), deadline)
            assert prom.values(rule["query"]), rule["name"]
        for rule in alerting:
            m = re.fullmatch(r"(.+?)\s*>\s*([0-9.]+)", rule["query"].strip(), re.S)
            assert m, f"alert {rule['name']} is not '<signal> > <threshold>': {rule['query']}"
            assert prom.query(rule["query"])["status"] == "success"
            assert prom.values(m.group(1)), f"signal of {rule['name']} returns no data"

        # Compensation failed in this workload, so that alert fires (it has no 'for').
        def firing():
            alerts = prom.get("/api/v1/alerts")["data"]["alerts"]
            return {a["labels"]["journey_type"] for a in alerts
                    if a["labels"]["alertname"] == "SagaCompensationFailing" and a["state"] == "firing"}

        assert poll("SagaCompensationFailing to fire", firing, deadline) <= set(result.rollbacks_by_type)

        # Every dashboard query parses and returns data.
        for title, expr in dashboard_exprs():
            out = prom.query(expr)
            assert out["status"] == "success", (title, expr, out)
            assert out["data"]["result"], f"panel {title!r} has no data: {expr}"
        jt_values = prom.get("/api/v1/label/journey_type/values")["data"]
        assert {"order_processing", "enterprise_migration"} <= set(jt_values)
        assert prom.values('sum(saga_http_requests_total{status_class="5xx"})') == [5.0]
        assert time.monotonic() < deadline
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        gateway.close()
        server.close()
