"""Serving the registry: exposition bytes, a standalone server, and an aiohttp handler."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder, start_http_server


def exposition(registry: CollectorRegistry, accept: str | None = None) -> tuple[bytes, str]:
    """The registry rendered for a scrape: ``(body, content_type)``.

    Without ``accept`` this is the classic text format 0.0.4; with the scraper's Accept
    header, the format it prefers (OpenMetrics for Prometheus).
    """
    if accept is None:
        return generate_latest(registry), CONTENT_TYPE_PLAIN_0_0_4
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


@dataclass
class MetricsServer:
    """A running standalone /metrics server; ``close()`` stops it."""

    host: str
    port: int
    _server: Any
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(
    registry: CollectorRegistry, host: str = "127.0.0.1", port: int = 9464
) -> MetricsServer:
    """Serve ``registry`` over HTTP on a daemon thread (``port=0`` picks a free port).

    Binds to loopback by default: expose it wider only on purpose.
    """
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be 0-65535, got {port}")
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(host, server.server_port, server, thread)


def metrics_handler(registry: CollectorRegistry) -> Callable[[Any], Awaitable[Any]]:
    """An aiohttp handler for ``GET /metrics``: ``app.router.add_get("/metrics", handler)``.

    Rendering reads the store, so it runs in the default executor, off the event loop.
    """
    import asyncio

    from aiohttp import web

    async def handle_metrics(request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        accept = request.headers.get("Accept", "")
        body, content_type = await loop.run_in_executor(None, exposition, registry, accept)
        return web.Response(body=body, headers={"Content-Type": content_type})

    return handle_metrics
