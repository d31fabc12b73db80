"""Serving the registry: exposition bytes, a standalone server, and an aiohttp handler."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder, start_http_server

from .merge import merge_expositions

log = logging.getLogger("saga_journey.metrics")

FetchPeers = Callable[[str], Awaitable[list[tuple[int, bytes | None]]]]


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


def gathered_metrics_handler(
    registry: CollectorRegistry, worker: int, fetch_peers: FetchPeers
) -> Callable[[Any], Awaitable[Any]]:
    """The ``GET /metrics`` handler of worker ``worker`` of ``serve --workers N``: one scrape
    shows every worker's series.

    The contract:

    * A request carrying ``HOP_HEADER`` (``http/hop.py``) is a peer gathering: it is answered
      with this worker's own registry only, always as text 0.0.4 whatever its Accept, and
      without a ``worker`` label (the gathering worker adds it). It never asks the peers.
    * Any other request renders the local registry and, at the same time, awaits
      ``fetch_peers(request.path)``: the caller's coroutine that GETs that path from every
      other worker with ``HOP_HEADER`` set, within its own timeout, and returns
      ``[(peer index, body or None on failure or timeout), ...]``. It must not raise (if it
      does, the failure is logged and only this worker's part is served). The answer is
      ``merge_expositions`` of this worker's part and the peers', ordered by worker index,
      each sample labelled ``worker="<index>"``, plus ``saga_worker_up{worker=...}`` (0 for
      a peer whose body is None or is not valid text). It is always text 0.0.4, which every
      Prometheus reads (the merge reads 0.0.4; an OpenMetrics peer body is rewritten).

    Rendering and merging read the store and parse text, so they run in the default
    executor, off the event loop.
    """
    import asyncio

    from aiohttp import web

    from saga_journey.http.hop import HOP_HEADER

    async def peers_of(path: str) -> list[tuple[int, bytes | None]]:
        try:
            return list(await fetch_peers(path))
        except Exception:  # the contract says it does not raise; a scrape still succeeds
            log.exception("gathering the peers' metrics failed; serving worker %s's only", worker)
            return []

    async def handle_metrics(request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        if HOP_HEADER in request.headers:
            body, content_type = await loop.run_in_executor(None, exposition, registry, None)
            return web.Response(body=body, headers={"Content-Type": content_type})
        (local, _), peers = await asyncio.gather(
            loop.run_in_executor(None, exposition, registry, None), peers_of(request.path))
        by_index: dict[int, bytes | None] = {worker: local}
        for index, part in peers:
            if index in by_index:
                continue  # this worker itself, or a peer listed twice
            if part is None:
                log.warning("worker %s's metrics are missing from this scrape (timed out or failed)", index)
            by_index[index] = part
        parts = [(str(index), by_index[index]) for index in sorted(by_index)]
        body = await loop.run_in_executor(None, merge_expositions, parts)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    return handle_metrics
