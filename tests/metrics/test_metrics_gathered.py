"""gathered_metrics_handler: one scrape of any worker shows every worker's series."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

from saga_journey.http.hop import HOP_HEADER
from saga_journey.metrics import gathered_metrics_handler, merge_expositions
from saga_journey.metrics.exposition import exposition
from saga_journey.metrics.merge import WORKER_UP

OPENMETRICS = "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5"


def registry_of(worker: int) -> CollectorRegistry:
    reg = CollectorRegistry()
    Counter("saga_sagas_started_total", "Started.", ["journey_type"], registry=reg).labels("order").inc(10 + worker)
    Gauge("saga_live_actors", "Live actors.", registry=reg).set(worker + 1)
    Histogram("saga_step_seconds", "Step.", buckets=(1.0,), registry=reg).observe(0.5 * (worker + 1))
    return reg


def read(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def by_worker(text: str, name: str) -> dict[str | None, float]:
    return {dict(labels).get("worker"): v for (n, labels), v in read(text).items() if n == name}


def app_of(registry: CollectorRegistry, worker: int, fetch_peers) -> web.Application:
    app = web.Application()
    app.router.add_get("/metrics", gathered_metrics_handler(registry, worker, fetch_peers))
    return app


async def test_local_and_peers_are_merged_with_a_worker_label_and_up(aiohttp_client):
    asked: list[str] = []
    peer1 = exposition(registry_of(1))[0]

    async def fetch_peers(path: str) -> list[tuple[int, bytes | None]]:
        asked.append(path)
        return [(2, None), (1, peer1)]

    reg0 = registry_of(0)
    client = await aiohttp_client(app_of(reg0, 0, fetch_peers))
    resp = await client.get("/metrics", headers={"Accept": OPENMETRICS})
    text = await resp.text()
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert asked == ["/metrics"]
    assert by_worker(text, "saga_sagas_started_total") == {"0": 10.0, "1": 11.0}
    assert by_worker(text, "saga_live_actors") == {"0": 1.0, "1": 2.0}
    assert by_worker(text, "saga_step_seconds_sum") == {"0": 0.5, "1": 1.0}
    assert by_worker(text, WORKER_UP) == {"0": 1.0, "1": 1.0, "2": 0.0}
    # the same as merging the parts by hand, in worker order
    assert read(text) == read(merge_expositions(
        [("0", exposition(reg0)[0]), ("1", peer1), ("2", None)]).decode())


async def test_a_hop_request_is_answered_with_the_local_text_only(aiohttp_client):
    async def fetch_peers(path: str) -> list[tuple[int, bytes | None]]:
        raise AssertionError("a hop request must not ask the peers")

    reg3 = registry_of(3)
    client = await aiohttp_client(app_of(reg3, 3, fetch_peers))
    resp = await client.get("/metrics", headers={HOP_HEADER: "0", "Accept": OPENMETRICS})
    text = await resp.text()
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert read(text) == read(exposition(reg3)[0].decode())
    assert WORKER_UP not in text and "worker=" not in text


async def test_a_failing_fetch_peers_still_serves_the_local_part(aiohttp_client, caplog):
    async def fetch_peers(path: str) -> list[tuple[int, bytes | None]]:
        raise OSError("hop down")

    client = await aiohttp_client(app_of(registry_of(0), 0, fetch_peers))
    with caplog.at_level(logging.ERROR, logger="saga_journey.metrics"):
        resp = await client.get("/metrics")
        text = await resp.text()
    assert resp.status == 200
    assert by_worker(text, "saga_live_actors") == {"0": 1.0}
    assert by_worker(text, WORKER_UP) == {"0": 1.0}
    assert any("gathering the peers' metrics failed" in r.getMessage() for r in caplog.records)


async def test_a_peer_listing_this_worker_or_twice_does_not_break_the_scrape(aiohttp_client):
    async def fetch_peers(path: str) -> list[tuple[int, bytes | None]]:
        return [(0, b"garbage from myself?\n"), (1, exposition(registry_of(1))[0]), (1, None)]

    client = await aiohttp_client(app_of(registry_of(0), 0, fetch_peers))
    text = await (await client.get("/metrics")).text()
    assert by_worker(text, "saga_live_actors") == {"0": 1.0, "1": 2.0}
    assert by_worker(text, WORKER_UP) == {"0": 1.0, "1": 1.0}


async def test_two_servers_each_gather_the_other_over_http(aiohttp_server):
    """Two real servers; each one's fetch_peers GETs the other with HOP_HEADER (what the lead's
    hop does over the workers' unix sockets). Either one's scrape shows both workers."""
    urls: dict[int, str] = {}
    timeout = aiohttp.ClientTimeout(total=2)

    def fetcher(me: int):
        async def fetch_peers(path: str) -> list[tuple[int, bytes | None]]:
            async def one(index: int, base: str) -> tuple[int, bytes | None]:
                try:
                    async with aiohttp.ClientSession(timeout=timeout) as session:
                        async with session.get(base + path, headers={HOP_HEADER: str(me)}) as resp:
                            return index, await resp.read() if resp.status == 200 else None
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    return index, None
            return list(await asyncio.gather(*(one(i, u) for i, u in urls.items() if i != me)))
        return fetch_peers

    servers = [await aiohttp_server(app_of(registry_of(i), i, fetcher(i))) for i in range(2)]
    for i, server in enumerate(servers):
        urls[i] = str(server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession(timeout=timeout) as session:
        texts = []
        for i in range(2):
            async with session.get(urls[i] + "/metrics") as resp:
                assert resp.status == 200
                texts.append(await resp.text())
        assert read(texts[0]) == read(texts[1])
        assert by_worker(texts[0], "saga_sagas_started_total") == {"0": 10.0, "1": 11.0}
        assert by_worker(texts[0], "saga_step_seconds_count") == {"0": 1.0, "1": 1.0}
        assert by_worker(texts[0], WORKER_UP) == {"0": 1.0, "1": 1.0}

        await servers[1].close()  # worker 1 gone: worker 0 says so instead of a smaller sum
        async with session.get(urls[0] + "/metrics") as resp:
            text = await resp.text()
        assert by_worker(text, "saga_sagas_started_total") == {"0": 10.0}
        assert by_worker(text, WORKER_UP) == {"0": 1.0, "1": 0.0}
