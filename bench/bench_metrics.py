"""Metrics on vs off: the embedded workload with the no-op observer and with SagaMetrics.

N sagas through 4 milestones (every FAIL_EVERY-th fails and compensates), driven by W threads
through the sync API; alternating rounds, each on a fresh data dir. Prints throughput of each
and the ratio, plus the machine. Bounded: --sagas and --rounds cap the work.

    python bench/bench_metrics.py [--sagas 2000] [--rounds 3] [--workers 16]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

from prometheus_client import CollectorRegistry, generate_latest

from saga_journey.metrics import SagaMetrics
from saga_journey.metrics.workload import handlers, run_workload
from saga_journey.runtime import RuntimeObserver, SagaOrchestrator


def one_round(with_metrics: bool, sagas: int, workers: int, fail_every: int) -> tuple[float, float, int]:
    """(sagas per wall second, sagas per CPU second of this process, exposition bytes)."""
    with tempfile.TemporaryDirectory() as tmp:
        observer: RuntimeObserver = SagaMetrics(CollectorRegistry()) if with_metrics else RuntimeObserver()
        with SagaOrchestrator.open(tmp, observer=observer, handlers=handlers()) as orch:
            if isinstance(observer, SagaMetrics):
                observer.attach(orch)
            cpu = time.process_time()
            result = run_workload(orch, sagas, fail_every=fail_every, workers=workers)
            cpu = time.process_time() - cpu
            size = len(generate_latest(observer.registry)) if isinstance(observer, SagaMetrics) else 0
    return sagas / result.seconds, sagas / cpu, size


def hook_cost_ns(n: int = 200_000) -> dict[str, float]:
    """Per-call cost of the hot hooks on cached children (no runtime around them)."""
    from saga_journey.runtime.model import MilestoneCompleted, SagaState

    m = SagaMetrics(CollectorRegistry())
    state = SagaState("s", "j", 1, "order_processing", "t", "u", {}, ("a", "b"), "IN_PROGRESS",
                      (), (), (), "none", 0, None, None, None, 0.0, 0.0, None, 1)
    event = MilestoneCompleted("a", {}, 0.0)
    out = {}
    for name, call in (
        ("on_transition", lambda: m.on_transition(state, event)),
        ("on_request", lambda: m.on_request("advance", 0.001, True)),
        ("on_commit", lambda: m.on_commit(10, 0.0005)),
    ):
        call()
        started = time.perf_counter()
        for _ in range(n):
            call()
        out[name] = (time.perf_counter() - started) / n * 1e9
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sagas", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--fail-every", type=int, default=5)
    args = ap.parse_args()
    if not (1 <= args.sagas <= 100_000 and 1 <= args.rounds <= 20 and 1 <= args.workers <= 256):
        ap.error("sagas 1-100000, rounds 1-20, workers 1-256")

    print(f"machine: {platform.platform()}, {os.cpu_count()} cpu(s), "
          f"python {platform.python_version()} ({platform.python_implementation()})")
    print(f"workload: {args.sagas} sagas x 4 milestones, 1 in {args.fail_every} failing "
          f"(with retries and exhausted compensations), {args.workers} client threads, "
          f"{args.rounds} alternating rounds, LMDB sync on")
    one_round(True, min(200, args.sagas), args.workers, args.fail_every)  # warm-up
    if hasattr(os, "getloadavg"):
        print(f"load average at start: {os.getloadavg()[0]:.1f} (other processes skew wall-clock figures)")
    runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    size = 0
    for r in range(args.rounds):
        for with_metrics in ((False, True) if r % 2 == 0 else (True, False)):
            wall, cpu, s = one_round(with_metrics, args.sagas, args.workers, args.fail_every)
            runs[with_metrics].append((wall, cpu))
            size = max(size, s)
            print(f"  round {r + 1} metrics {'on ' if with_metrics else 'off'}: "
                  f"{wall:8.0f} sagas/s wall, {cpu:8.0f} sagas per CPU-second")
    for i, what in ((0, "wall-clock throughput"), (1, "CPU efficiency (sagas per CPU-second)")):
        off_m = statistics.median(x[i] for x in runs[False])
        on_m = statistics.median(x[i] for x in runs[True])
        print(f"{what}, median of {args.rounds}:")
        print(f"  no-op observer : {off_m:8.0f}")
        print(f"  SagaMetrics    : {on_m:8.0f}")
        print(f"  ratio on/off   : {on_m / off_m:.3f}  (metrics cost {100 * (1 - on_m / off_m):+.1f}%; target <= 5%)")
    print(f"exposition size: {size} bytes")
    for hook, ns in hook_cost_ns().items():
        print(f"hook {hook:<14}: {ns / 1000:.2f} us per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
