"""Overload over the embedded API: measure capacity, offer 10x it for a bounded time, then
normal load again. Prints accepted/refused counts, RSS, and latency of accepted requests
before, during and after, and checks that every accepted saga is stored.

    python bench/overload.py [--seconds 3] [--factor 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from saga_journey.runtime import OverloadedError, RuntimeConfig, SagaOrchestrator  # noqa: E402

UC = {"tenant_id": "default", "user_id": "bench"}


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def pct(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))] * 1000 if xs else float("nan")


async def closed_loop(orch, jid, seconds, concurrency, prefix, accepted):
    lat: list[float] = []
    stop = time.perf_counter() + seconds
    n = 0

    async def one_worker(w):
        nonlocal n
        i = 0
        while time.perf_counter() < stop:
            sid = f"{prefix}-{w}-{i}"
            i += 1
            t = time.perf_counter()
            try:
                await orch.execute_saga_journey(jid, "bench", {}, UC, saga_id=sid)
            except OverloadedError:
                await asyncio.sleep(0.001)  # refused at once: back off (and let replies in)
                continue
            lat.append(time.perf_counter() - t)
            accepted.append(sid)
            n += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(one_worker(w) for w in range(concurrency)))
    return n / (time.perf_counter() - t0), lat


async def open_loop(orch, jid, seconds, rate, accepted):
    lat: list[float] = []
    refused = 0
    tasks = set()
    peak_rss = rss_mb()

    async def one(sid):
        nonlocal refused
        t = time.perf_counter()
        try:
            await orch.execute_saga_journey(jid, "bench", {}, UC, saga_id=sid)
        except OverloadedError:
            refused += 1
            return
        lat.append(time.perf_counter() - t)
        accepted.append(sid)

    t0 = time.perf_counter()
    sent = 0
    while (now := time.perf_counter()) - t0 < seconds:
        due = int((now - t0) * rate)
        while sent < due:
            task = asyncio.create_task(one(f"ov-{sent}"))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        peak_rss = max(peak_rss, rss_mb())
        await asyncio.sleep(0.001)
    await asyncio.gather(*tasks)
    return sent, refused, lat, peak_rss


async def main_async(args) -> int:
    data = tempfile.mkdtemp(prefix="saga-overload-")
    config = RuntimeConfig(max_in_flight_requests=args.max_in_flight)
    async with SagaOrchestrator.open(data, config=config, handlers={"undo": lambda ctx: None}) as orch:
        j = await orch.design_saga_journey("ov", {"milestones": [{"id": "a", "compensation_handler": "undo"}]}, None, UC)
        jid = j["journey_id"]
        accepted: list[str] = []
        cap, base = await closed_loop(orch, jid, args.seconds, 200, "base", accepted)
        rss_before = rss_mb()
        sent, refused, during, peak = await open_loop(orch, jid, args.seconds, cap * args.factor, accepted)
        _, after = await closed_loop(orch, jid, args.seconds, 200, "after", accepted)
        stored = 0
        cursor = None
        while True:
            page = await orch.list_sagas(user_context=UC, limit=1000, cursor=cursor)
            stored += len(page["sagas"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
    print(f"machine: {platform.platform()}, {os.cpu_count()} cpus, python {platform.python_version()}")
    print(f"capacity (closed loop, c=200): {cap:,.0f} executes/s")
    print(f"overload: offered {sent:,} in {args.seconds}s ({args.factor}x = {cap * args.factor:,.0f}/s), "
          f"accepted {sent - refused:,}, refused {refused:,} (OverloadedError)")
    print(f"RSS: before {rss_before:.0f} MB, peak during overload {peak:.0f} MB, "
          f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    for name, xs in (("before", base), ("during", during), ("after", after)):
        print(f"latency of accepted {name:>6}: p50 {pct(xs, .5):.1f} ms  p99 {pct(xs, .99):.1f} ms  (n={len(xs):,})")
    print(f"accepted {len(accepted):,}, stored {stored:,}: {'nothing lost' if stored == len(accepted) else 'LOST'}")
    return 0 if stored == len(accepted) else 1


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--factor", type=float, default=10.0)
    p.add_argument("--max-in-flight", type=int, default=2000)
    return asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
