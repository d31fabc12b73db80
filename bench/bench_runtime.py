"""Embedded runtime benchmark: durable transitions/s, advance and rollback latency, group commit gain.

N concurrent sagas (default 1,000) each run through 4 milestones from one asyncio client; a
fraction fails at the last milestone, so 3 no-op compensations roll it back. Every figure is
measured by the client: a transition counts once its acknowledgement (sent after the LMDB
commit) arrives. The same workload then runs against a store with one commit per transition.

    python bench/bench_runtime.py [--sagas 1000] [--fail 0.1] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

from saga_journey.runtime import RuntimeConfig, SagaOrchestrator
from saga_journey.runtime.journeys import TEMPLATES

UC = {"tenant_id": "bench", "user_id": "bench"}
DISPATCHER_THREADS = RuntimeConfig().dispatcher_threads


def machine() -> str:
    import lmdb
    import pykka  # noqa: F401

    return (
        f"{platform.platform()} | {os.cpu_count()} cpus | Python {platform.python_version()} | "
        f"lmdb {lmdb.__version__} (LMDB {'.'.join(map(str, lmdb.version()))})"
    )


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


def handlers() -> dict[str, Any]:
    names = {h for steps in TEMPLATES.values() for _, h in steps}
    return {n: (lambda ctx: None) for n in names}


async def one_saga(orch: SagaOrchestrator, journey_id: str, fail: bool, out: dict[str, list]) -> None:
    t = time.perf_counter()
    ex = await orch.execute_saga_journey(journey_id, "bench", {"n": 1}, UC)
    out["execute"].append(time.perf_counter() - t)
    sid = ex["saga_id"]
    for i in range(4):
        last = i == 3
        status = "failed" if (fail and last) else "complete"
        t = time.perf_counter()
        await orch.advance_saga_step(sid, journey_id, "bench", {"status": status}, UC)
        done = time.perf_counter()
        out["advance"].append(done - t)
        if fail and last:
            final = await orch.wait_for_saga(sid, UC, timeout=120)
            out["rollback"].append(time.perf_counter() - t)
            assert final["compensation_status"] == "succeeded", final
            assert final["compensated_milestones"] == ["reserve_inventory", "process_payment", "create_order"]


async def workload(
    orch: SagaOrchestrator, n: int, fail_fraction: float, rounds: int = 1
) -> dict[str, Any]:
    journey = await orch.design_saga_journey("order_processing", user_context=UC)
    out: dict[str, list] = {"execute": [], "advance": [], "rollback": []}
    every = max(1, round(1 / fail_fraction)) if fail_fraction > 0 else 0
    peak_live = 0
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal peak_live
        while not stop.is_set():
            peak_live = max(peak_live, orch.stats()["live_actors"])
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    commits0 = orch.store.stats()["commits"]
    t0 = time.perf_counter()
    slots = asyncio.Semaphore(n)  # n sagas in flight at any time, n * rounds in all

    async def bounded(k: int) -> None:
        async with slots:
            await one_saga(orch, journey["journey_id"], bool(every) and k % every == 0, out)

    await asyncio.gather(*(bounded(k) for k in range(n * rounds)))
    elapsed = time.perf_counter() - t0
    stop.set()
    await sampler
    acked = len(out["execute"]) + len(out["advance"])
    return {
        "elapsed": elapsed,
        "acked": acked,
        "tps": acked / elapsed,
        "commits": orch.store.stats()["commits"] - commits0,
        "max_batch": orch.store.stats()["max_batch_size_seen"],
        "adv_p50": pct(out["advance"], 50) * 1000,
        "adv_p99": pct(out["advance"], 99) * 1000,
        "rb_p50": pct(out["rollback"], 50) * 1000,
        "rb_p99": pct(out["rollback"], 99) * 1000,
        "rollbacks": len(out["rollback"]),
        "peak_live": peak_live,
    }


async def idle_rollbacks(orch: SagaOrchestrator, count: int) -> list[float]:
    """Rollback latency with no other load: fail at milestone 4, 3 no-op compensations."""
    journey = await orch.design_saga_journey("order_processing", user_context=UC)
    times = []
    for _ in range(count):
        ex = await orch.execute_saga_journey(journey["journey_id"], "bench", {}, UC)
        for _ in range(3):
            await orch.advance_saga_step(ex["saga_id"], None, "bench", {"status": "complete"}, UC)
        t = time.perf_counter()
        await orch.advance_saga_step(ex["saga_id"], None, "bench", {"status": "failed"}, UC)
        await orch.wait_for_saga(ex["saga_id"], UC, timeout=30)
        times.append(time.perf_counter() - t)
    return times


def run(
    group_commit: bool, n: int, fail: float, idle: int, rounds: int
) -> tuple[dict[str, Any], list[float]]:
    folder = tempfile.mkdtemp(prefix="saga-bench-")
    try:
        config = RuntimeConfig(group_commit=group_commit, dispatcher_threads=DISPATCHER_THREADS)

        async def both() -> tuple[dict[str, Any], list[float]]:
            # Opened inside the running loop: the actors run on the client's loop (no hop).
            orch = SagaOrchestrator.open(folder, config=config, handlers=handlers())
            try:
                result = await workload(orch, n, fail, rounds)
                idle_times = await idle_rollbacks(orch, idle) if idle else []
            finally:
                await asyncio.get_running_loop().run_in_executor(None, orch.close)
            return result, idle_times

        return asyncio.run(both())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sagas", type=int, default=1000)
    ap.add_argument("--fail", type=float, default=0.1, help="fraction of sagas that fail")
    ap.add_argument("--rounds", type=int, default=5, help="sagas in all = sagas x rounds")
    ap.add_argument("--idle-rollbacks", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="small run (smoke test)")
    ap.add_argument("--dispatcher-threads", type=int, default=DISPATCHER_THREADS)
    args = ap.parse_args()
    globals()["DISPATCHER_THREADS"] = args.dispatcher_threads
    if args.quick:
        args.sagas, args.idle_rollbacks, args.rounds = 100, 20, 2
    print(f"machine: {machine()}")
    print(
        f"workload: {args.sagas} concurrent sagas ({args.sagas * args.rounds} in all) x 4 milestones, "
        f"{args.fail:.0%} fail at milestone 4 (3 no-op compensations each)"
    )
    group, idle = run(True, args.sagas, args.fail, args.idle_rollbacks, args.rounds)
    single, _ = run(False, args.sagas, args.fail, 0, max(1, args.rounds // 5))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = "{:<28} {:>12} {:>12}"
    print(row.format("", "group commit", "1 commit/txn"))
    for label, key, fmt in [
        ("durable transitions/s", "tps", "{:,.0f}"),
        ("acknowledged transitions", "acked", "{:,}"),
        ("LMDB commits", "commits", "{:,}"),
        ("largest batch", "max_batch", "{:,}"),
        ("advance p50 (ms)", "adv_p50", "{:.2f}"),
        ("advance p99 (ms)", "adv_p99", "{:.2f}"),
        ("rollback p50 (ms, loaded)", "rb_p50", "{:.2f}"),
        ("rollback p99 (ms, loaded)", "rb_p99", "{:.2f}"),
        ("rollbacks", "rollbacks", "{:,}"),
        ("peak live actors", "peak_live", "{:,}"),
    ]:
        print(row.format(label, fmt.format(group[key]), fmt.format(single[key])))
    print(f"group-commit gain: {group['tps'] / single['tps']:.1f}x durable transitions/s")
    if idle:
        print(
            f"rollback of 3 no-op compensations, no other load ({len(idle)} runs): "
            f"p50 {pct(idle, 50) * 1000:.2f} ms, p99 {pct(idle, 99) * 1000:.2f} ms, "
            f"mean {statistics.mean(idle) * 1000:.2f} ms"
        )
    print(f"peak RSS: {rss_mb:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
