"""Serving metrics: the embedding helper, the aiohttp handler, and promtool's lint of the output."""

from __future__ import annotations

import asyncio
import subprocess
import urllib.request

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from saga_journey.metrics import exposition, metrics_handler, start_metrics_server
from saga_journey.metrics.workload import run_workload


def test_embedding_server_serves_the_registry(runtime):
    orch, metrics = runtime
    run_workload(orch, 6, fail_every=2)
    server = start_metrics_server(metrics.registry, port=0)
    try:
        assert server.host == "127.0.0.1" and server.port > 0
        with urllib.request.urlopen(server.url, timeout=10) as resp:
            body = resp.read().decode()
            assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    finally:
        server.close()
    assert 'saga_sagas_started_total{journey_type="order_processing"}' in body
    assert "saga_rollback_duration_seconds_bucket" in body
    assert 'saga_sagas{journey_type="order_processing",state="COMPLETED"}' in body
    with pytest.raises(OSError):
        urllib.request.urlopen(server.url, timeout=2)


def test_bad_port_is_refused():
    with pytest.raises(ValueError):
        start_metrics_server(CollectorRegistry(), port=70000)


def test_exposition_negotiates_the_format(runtime):
    _, metrics = runtime
    body, ctype = exposition(metrics.registry)
    assert ctype == "text/plain; version=0.0.4; charset=utf-8" and b"saga_live_actors" in body
    body, ctype = exposition(metrics.registry, "application/openmetrics-text; version=1.0.0")
    assert ctype.startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")


def test_aiohttp_handler(runtime):
    orch, metrics = runtime
    run_workload(orch, 4, fail_every=2)

    async def scenario() -> tuple[int, str, str, int]:
        app = web.Application()
        app.router.add_get("/metrics", metrics_handler(metrics.registry))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            loop = asyncio.get_running_loop()

            def get(accept: str | None) -> tuple[int, str, str]:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
                if accept:
                    req.add_header("Accept", accept)
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return resp.status, resp.headers["Content-Type"], resp.read().decode()

            status, ctype, body = await loop.run_in_executor(None, get, None)
            _, om_type, _ = await loop.run_in_executor(
                None, get, "application/openmetrics-text;version=1.0.0")
            return status, ctype, body, om_type
        finally:
            await runner.cleanup()

    status, ctype, body, om_type = asyncio.run(scenario())
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    assert "saga_sagas_started_total" in body and "saga_store_used_bytes" in body
    assert om_type.startswith("application/openmetrics-text")


def test_promtool_check_metrics_accepts_the_exposition(runtime, promtool):
    orch, metrics = runtime
    run_workload(orch, 30, fail_every=3)
    metrics.on_http_request("/sagas/{saga_id}", 200, 0.002)  # gateway series too
    body, _ = exposition(metrics.registry)
    out = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert out.returncode == 0, (out.stdout + out.stderr).decode()
    # promtool lints on stdout/stderr even when it exits 0; there must be no complaint at all.
    assert (out.stdout + out.stderr).strip() == b"", (out.stdout + out.stderr).decode()
