"""The routing port: which process answers a request, and the hop that takes it there.

The gateway asks its ``Router`` where a request belongs before running it. ``LocalRouter``
(one process: ``serve``, ``serve --workers 1``, an embedding host) answers "here" for all.
``WorkerRouter`` (a worker of ``serve --workers N``) sends a request that changes a saga of
another worker's shard, or waits on one (``?wait=``), or designs a journey (the catalog's owner
writes them), to its owner over one local hop (``hop.peer_address``) and relays the answer.
Reads (status, history, lists, counts, events) are answered where they land: every worker
reads the whole folder. A later deployment (a cluster) implements the same port.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from aiohttp import web
from multidict import CIMultiDict

from saga_journey.persistence.shard_map import CATALOG_SHARD, idempotency_shard, owner_of, saga_shard

from .hop import HOP_HEADER, peer_address
from .hop_client import HopClient, HopProtocolError
from .problems import problem_response

# request headers that describe this connection, not the request
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host",
                         "content-length", "proxy-authorization", "proxy-connection", "trailer"})
_ANSWER_DROPPED = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "date",
                             "server", "content-encoding"})
CONNECT_TIMEOUT_S = 2.0
HOP_MARGIN_S = 10.0  # a forwarded request may take the owner's own timeout plus this
_HOP_FAILURES = (OSError, TimeoutError, asyncio.IncompleteReadError, HopProtocolError, ValueError)
GATHER_TIMEOUT_S = 5.0


class Router(Protocol):
    """Where a request runs: ``None`` is here, an int is the index of another worker."""

    index: int
    stats: HopStats

    def saga_target(self, tenant_id: str, saga_id: str) -> int | None: ...

    def create_target(self, tenant_id: str, saga_id: str | None, idempotency_key: str | None) -> int | None: ...

    def journey_target(self) -> int | None: ...

    def peers(self) -> Sequence[int]: ...

    async def forward(self, request: web.Request, target: int, body: bytes | None,
                      *, timeout_s: float, content_type: str | None = None) -> web.Response: ...

    async def gather(self, path: str, *, method: str = "GET", body: bytes | None = None,
                     headers: dict[str, str] | None = None,
                     timeout_s: float = GATHER_TIMEOUT_S) -> list[tuple[int, bytes | None]]: ...

    async def close(self) -> None: ...


class LocalRouter:
    """One process owns every saga: everything runs here."""

    index = 0

    def __init__(self) -> None:
        self.stats = HopStats()

    def saga_target(self, tenant_id: str, saga_id: str) -> int | None:
        return None

    def create_target(self, tenant_id: str, saga_id: str | None, idempotency_key: str | None) -> int | None:
        return None

    def journey_target(self) -> int | None:
        return None

    def peers(self) -> Sequence[int]:
        return ()

    async def forward(self, request: web.Request, target: int, body: bytes | None,
                      *, timeout_s: float, content_type: str | None = None) -> web.Response:
        raise RuntimeError("a one-process gateway has no other worker to forward to")

    async def gather(self, path: str, *, method: str = "GET", body: bytes | None = None,
                     headers: dict[str, str] | None = None,
                     timeout_s: float = GATHER_TIMEOUT_S) -> list[tuple[int, bytes | None]]:
        return []

    async def close(self) -> None:
        return None


class HopStats:
    """How many requests this worker answered itself, and how many it forwarded (and their
    round trip, which includes the owner's own work)."""

    def __init__(self) -> None:
        self.local = 0
        self.forwarded = 0
        self.failed = 0
        self.forward_seconds = 0.0


class HopCollector:
    """``saga_http_hops_total{outcome}`` and ``saga_http_hop_seconds_total`` of one worker (read
    at scrape time from its ``HopStats``): the share of requests forwarded, and their round trip."""

    def __init__(self, stats: HopStats) -> None:
        self.stats = stats

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        hops = CounterMetricFamily("saga_http_hops", "Requests of serve --workers by where they ran: "
                                   "local (here), forwarded (to their owner), failed (owner unreachable)",
                                   labels=["outcome"])
        for outcome in ("local", "forwarded", "failed"):
            hops.add_metric([outcome], getattr(self.stats, outcome))
        yield hops
        yield CounterMetricFamily("saga_http_hop_seconds", "Round-trip seconds of forwarded requests "
                                  "(the hop and the owner's own work)", value=self.stats.forward_seconds)


class WorkerRouter:
    """Worker ``index`` of ``workers`` over a folder of ``shards`` shards (owner: shard % workers)."""

    def __init__(self, data_folder: str, index: int, workers: int, shards: int) -> None:
        self.data_folder = data_folder
        self.index = index
        self.workers = workers
        self.shards = shards
        self.stats = HopStats()
        self._clients: dict[int, HopClient] = {}
        self._peers = tuple(i for i in range(workers) if i != index)

    def _here(self, shard: int) -> int | None:
        owner = owner_of(shard, self.workers)
        return None if owner == self.index else owner

    def saga_target(self, tenant_id: str, saga_id: str) -> int | None:
        return self._here(saga_shard(tenant_id, saga_id, self.shards))

    def create_target(self, tenant_id: str, saga_id: str | None, idempotency_key: str | None) -> int | None:
        if saga_id is not None:
            return self.saga_target(tenant_id, saga_id)
        if idempotency_key is not None:
            return self._here(idempotency_shard(tenant_id, idempotency_key, self.shards))
        return None  # a new id is picked in one of this worker's shards

    def journey_target(self) -> int | None:
        return self._here(CATALOG_SHARD)

    def peers(self) -> Sequence[int]:
        return self._peers

    def _client(self, target: int) -> HopClient:
        client = self._clients.get(target)
        if client is None:
            client = self._clients[target] = HopClient(peer_address(self.data_folder, target))
        return client

    async def forward(self, request: web.Request, target: int, body: bytes | None,
                      *, timeout_s: float, content_type: str | None = None) -> web.Response:
        """Send ``request`` (its body: ``body``) to worker ``target`` and relay its answer. An
        owner that cannot be reached (restarting) is answered 503 with Retry-After."""
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP
                   and not (content_type is not None and k.lower() == "content-type")]
        headers.append((HOP_HEADER, str(self.index)))
        if content_type is not None:  # the body was re-encoded
            headers.append(("Content-Type", content_type))
        started = time.perf_counter()
        try:
            status, answer, payload = await self._client(target).request(
                request.method, request.path_qs, headers, body,
                connect_timeout_s=CONNECT_TIMEOUT_S, timeout_s=timeout_s)
        except _HOP_FAILURES as exc:
            self.stats.failed += 1
            return problem_response(
                503, "owner_unavailable",
                f"the worker that owns this saga (worker {target}) did not answer ({type(exc).__name__}); "
                "it is restarting or overloaded: retry", headers={"Retry-After": "1"}, extra={"worker": target},
            )
        self.stats.forwarded += 1
        self.stats.forward_seconds += time.perf_counter() - started
        out = CIMultiDict((k, v) for k, v in answer if k.lower() not in _ANSWER_DROPPED)
        return web.Response(status=status, body=payload, headers=out)

    async def gather(self, path: str, *, method: str = "GET", body: bytes | None = None,
                     headers: dict[str, str] | None = None,
                     timeout_s: float = GATHER_TIMEOUT_S) -> list[tuple[int, bytes | None]]:
        """``method path`` to every other worker (answered locally there): each one's body, or
        None for one that failed (not 200) or did not answer within ``timeout_s``."""
        sent = [*(headers or {}).items(), (HOP_HEADER, str(self.index))]

        async def one(target: int) -> tuple[int, bytes | None]:
            try:
                status, _, payload = await self._client(target).request(
                    method, path, sent, body, connect_timeout_s=CONNECT_TIMEOUT_S, timeout_s=timeout_s)
            except _HOP_FAILURES:
                return target, None
            return target, payload if status == 200 else None

        return list(await asyncio.gather(*(one(t) for t in self.peers())))

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()


__all__ = ["HopCollector", "HopStats", "LocalRouter", "Router", "WorkerRouter"]
