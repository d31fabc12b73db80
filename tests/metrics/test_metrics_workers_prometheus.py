"""End to end with two workers: a real Prometheus scrapes one worker's gathered /metrics; every
dashboard query and recording rule adds the workers up (no result is split by ``worker``),
and a worker missing from the scrape shows on the dashboard."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
import urllib.request

from aiohttp import web
from prometheus_client import CollectorRegistry

from saga_journey.metrics import SagaMetrics, exposition, gathered_metrics_handler
from saga_journey.metrics.workload import design, handlers, run_workload
from saga_journey.runtime import SagaOrchestrator

from .conftest import METRICS_DIR
from .test_metrics_prometheus import Prom, dashboard_exprs, free_port, poll

DEADLINE_S = 45.0
MISSING_PANEL = "Workers missing from the scrape"


class Worker0:
    """Worker 0's gathered /metrics on a thread's event loop; worker 1's part comes from
    ``peer`` (its registry) unless ``peer_down`` is set (then it is missing, as on a timeout)."""

    def __init__(self, registry: CollectorRegistry, peer: CollectorRegistry) -> None:
        self.peer_down = False
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()

        async def fetch_peers(path: str) -> list[tuple[int, bytes | None]]:
            assert path == "/metrics"
            if self.peer_down:
                return [(1, None)]
            body, _ = await asyncio.get_running_loop().run_in_executor(None, exposition, peer, None)
            return [(1, body)]

        self.app = web.Application()
        self.app.router.add_get("/metrics", gathered_metrics_handler(registry, 0, fetch_peers))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.runner = web.AppRunner(self.app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def test_prometheus_adds_up_two_workers_and_sees_one_missing(tmp_path, runtime, prometheus_bin):
    deadline = time.monotonic() + DEADLINE_S
    orch0, metrics0 = runtime
    metrics1 = SagaMetrics(CollectorRegistry())
    orch1 = SagaOrchestrator.open(str(tmp_path / "data1"), observer=metrics1, handlers=handlers())
    metrics1.attach(orch1)
    server = Worker0(metrics0.registry, metrics1.registry)
    port = free_port()
    config = tmp_path / "prometheus.yml"
    rules = sorted((METRICS_DIR / "prometheus" / "rules").glob("*.yml"))
    config.write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(r) for r in rules],
        "scrape_configs": [{"job_name": "saga-journey",
                            "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}]}],
    }))
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen(
        [prometheus_bin, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    prom = Prom(port)
    try:
        poll("Prometheus ready", lambda: urllib.request.urlopen(prom.base + "/-/ready", timeout=2).status == 200, deadline)
        poll("the target to be up", lambda: prom.values('up{job="saga-journey"}') == [1.0], deadline)
        journeys = [design(orch0), design(orch1)]
        run_workload(orch0, 3, fail_every=0, journeys=journeys[0])
        run_workload(orch1, 5, fail_every=0, journeys=journeys[1])
        poll("warm-up scraped", lambda: prom.values("sum(saga_sagas_started_total)") == [8.0], deadline)

        results = [run_workload(orch0, 30, fail_every=3, journeys=journeys[0]),
                   run_workload(orch1, 45, fail_every=3, journeys=journeys[1])]
        for metrics, n in ((metrics0, 7), (metrics1, 4)):
            for _ in range(n):
                metrics.on_http_request("/v1/sagas/{saga_id}", 200, 0.003)
            metrics.on_http_request("/v1/sagas/{saga_id}/advance", 500, 0.01)

        # Each worker has its own series; summed without worker they are the two runtimes' total.
        by_worker = lambda expr: {r["metric"].get("worker"): float(r["value"][1])  # noqa: E731
                                  for r in prom.query(expr)["data"]["result"]}
        poll("both workers' sagas scraped",
             lambda: by_worker("sum by (worker) (saga_sagas_started_total)") == {"0": 33.0, "1": 50.0}, deadline)
        rollbacks = sum(r.rollbacks for r in results)
        poll("all rollbacks scraped",
             lambda: prom.values("sum(saga_rollback_duration_seconds_count)") == [float(rollbacks)], deadline)
        assert prom.values('sum without (worker) (saga_sagas{state="FAILED"})') != []
        assert sum(prom.values('sum without (worker) (saga_sagas{state="FAILED"})')) == rollbacks
        assert by_worker("saga_worker_up") == {"0": 1.0, "1": 1.0}

        # Every dashboard query and every recording rule: data, and none of it split by worker.
        for title, expr in dashboard_exprs():
            result = poll(f"panel {title!r} to have data",
                          lambda: prom.query(expr)["data"]["result"], deadline)
            split = [r["metric"] for r in result if "worker" in r["metric"]]
            assert not split, f"panel {title!r} splits by worker: {expr} -> {split}"
        groups = poll("rules evaluated", lambda: [
            g for g in prom.get("/api/v1/rules")["data"]["groups"]
            if all(r.get("lastEvaluation", "").startswith("2") for r in g["rules"])] or None, deadline)
        for rule in (r for g in groups for r in g["rules"] if r["type"] == "recording"):
            result = poll(f"recording rule {rule['name']}",
                          lambda: prom.query(rule["name"])["data"]["result"], deadline)
            assert not [r for r in result if "worker" in r["metric"]], rule["name"]
        assert prom.values('sum(saga_http_requests_total{status_class="5xx"})') == [2.0]
        missing = dict(dashboard_exprs())[MISSING_PANEL]
        assert prom.values(missing) == [0.0]

        # Worker 1 stops answering: the scrape still succeeds and says worker 1 is missing.
        server.peer_down = True
        poll("worker 1 reported missing", lambda: prom.values(missing) == [1.0], deadline)
        assert by_worker("saga_worker_up") == {"0": 1.0, "1": 0.0}
        assert prom.values('up{job="saga-journey"}') == [1.0]
        assert time.monotonic() < deadline
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        server.close()
        orch1.close()
