"""1,000 concurrent SSE subscribers on a real `saga-journey serve`: server RSS growth and delivery.

    .venv/bin/python bench/bench_sse.py [--subscribers 1000] [--sagas 20]

Starts the server (--insecure-dev) on a free port, opens N streams on GET /v1/events, starts
``--sagas`` sagas, waits until every stream received every saga_started event, and prints the
server's RSS before the streams, with them open, and after the events, plus the delivery time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from contextlib import closing

import aiohttp


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def count_events(resp: aiohttp.ClientResponse, n: int) -> int:
    got = 0
    while got < n:
        line = await resp.content.readline()
        if not line:
            break
        if line.startswith(b"data: "):
            json.loads(line[6:])
            got += 1
    return got


async def run(subscribers: int, sagas: int) -> dict[str, float]:
    data = tempfile.mkdtemp(prefix="bench-sse-")
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "saga_journey.runtime.cli", "serve", "--create", "--insecure-dev",
        "--data-dir", data, "--port", str(port), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert b"listening on" in await asyncio.wait_for(proc.stdout.readline(), 60)
        base = f"http://127.0.0.1:{port}"
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as http:
            r = await http.post(f"{base}/v1/journeys", json={"journey_type": "plain", "journey_id": "p",
                                                             "requirements": {"milestones": ["a", "b"]}})
            assert r.status == 201, await r.text()
            before = rss_kib(proc.pid)
            streams = await asyncio.gather(*(http.get(f"{base}/v1/events") for _ in range(subscribers)))
            assert all(s.status == 200 for s in streams)
            for s in streams:
                assert (await s.content.readline()).startswith(b": connected")
                await s.content.readline()
            opened = rss_kib(proc.pid)
            counters = [asyncio.create_task(count_events(s, sagas)) for s in streams]
            started = time.perf_counter()
            for i in range(sagas):
                r = await http.post(f"{base}/v1/sagas", json={"journey_id": "p", "saga_id": f"s-{i}"})
                assert r.status == 201
            counts = await asyncio.gather(*counters)
            delivered = time.perf_counter() - started
            after = rss_kib(proc.pid)
            for s in streams:
                s.close()
        assert all(c == sagas for c in counts), counts[:10]
        return {"subscribers": subscribers, "events_each": sagas, "rss_before_kib": before,
                "rss_streams_open_kib": opened, "rss_after_events_kib": after,
                "growth_per_subscriber_kib": round((after - before) / subscribers, 2),
                "delivery_s": round(delivered, 3)}
    finally:
        proc.terminate()
        await proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--sagas", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.subscribers, args.sagas))))


if __name__ == "__main__":
    main()
