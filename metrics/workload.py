"""A bounded synthetic workload: sagas through 4 milestones, some failing and compensating.

Used by the Prometheus end-to-end test, the metrics bench and anyone wanting a populated
dashboard (``python -m saga_journey.metrics.workload --help``). Outcomes are counted from the
sagas' final committed status, independently of the metrics.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from saga_journey.runtime.handlers import CompensationContext
from saga_journey.runtime.journeys import TEMPLATES

JOURNEY_TYPES = ("order_processing", "enterprise_migration")
FAST_RETRY = {"max_attempts": 3, "initial_delay_s": 0.005, "backoff": 2.0, "max_delay_s": 0.02}


class TransientError(Exception):
    pass


def _handler(ctx: CompensationContext) -> None:
    """Undo: fails once for ``flaky`` sagas (one retry) and always for ``broken`` ones."""
    if ctx.context.get("broken"):
        raise TransientError("downstream refuses the undo")
    if ctx.context.get("flaky") and ctx.attempt == 1:
        raise TransientError("downstream timed out")


def handlers() -> dict[str, Any]:
    return {h: _handler for jt in JOURNEY_TYPES for _, h in TEMPLATES[jt]}


@dataclass
class WorkloadResult:
    sagas: int = 0
    seconds: float = 0.0
    final: Counter[str] = field(default_factory=Counter)  # COMPLETED / compensated / compensation_failed
    rollbacks_by_type: Counter[str] = field(default_factory=Counter)

    @property
    def rollbacks(self) -> int:
        return self.final["compensated"] + self.final["compensation_failed"]


def design(orch: Any) -> dict[str, str]:
    """One journey per type with fast retries; returns journey_type -> journey_id."""
    return {
        jt: orch.design_saga_journey_sync(jt, {"retry": FAST_RETRY})["journey_id"]
        for jt in JOURNEY_TYPES
    }


def _one(orch: Any, journeys: dict[str, str], i: int, fail_every: int) -> dict[str, Any]:
    failing = fail_every > 0 and i % fail_every == 0
    k = i // max(fail_every, 1)
    jt = JOURNEY_TYPES[(k if failing else i) % len(JOURNEY_TYPES)]  # failures on every type
    ctx = {"n": i, "flaky": failing and k % 3 == 1, "broken": failing and k % 7 == 3}
    saga = orch.execute_saga_journey_sync(journeys[jt], "user", ctx)
    sid = saga["saga_id"]
    fail_at = k % 4 if failing else -1
    abort = failing and k % 5 == 2
    for idx, (mid, _) in enumerate(TEMPLATES[jt]):
        if idx == fail_at:
            if abort:
                orch.compensate_saga_sync(sid, "workload abort")
            else:
                orch.advance_saga_step_sync(sid, step_result={"status": "failed", "milestone_id": mid})
            break
        orch.advance_saga_step_sync(sid, step_result={"status": "complete", "milestone_id": mid})
    return orch.wait_for_saga_sync(sid, timeout=60)


def run_workload(
    orch: Any, n: int, *, fail_every: int = 4, workers: int = 8, journeys: dict[str, str] | None = None
) -> WorkloadResult:
    """Drive ``n`` sagas on ``workers`` threads; every ``fail_every``-th saga fails (0: none)."""
    if n < 0 or workers < 1 or fail_every < 0:
        raise ValueError("n and fail_every must be >= 0 and workers >= 1")
    journeys = journeys or design(orch)
    result = WorkloadResult(sagas=n)
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        finals = list(pool.map(lambda i: _one(orch, journeys, i, fail_every), range(n)))
    result.seconds = time.perf_counter() - started
    for view in finals:
        if view["status"] == "COMPLETED":
            result.final["COMPLETED"] += 1
            continue
        outcome = "compensation_failed" if view["compensation_status"] == "failed" else "compensated"
        result.final[outcome] += 1
        result.rollbacks_by_type[view["journey_type"]] += 1
    return result


def main(argv: list[str] | None = None) -> int:
    from prometheus_client import CollectorRegistry

    from saga_journey.runtime import SagaOrchestrator

    from .exposition import start_metrics_server
    from .observer import SagaMetrics

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir")
    ap.add_argument("--sagas", type=int, default=200)
    ap.add_argument("--fail-every", type=int, default=4)
    ap.add_argument("--port", type=int, default=9464, help="metrics port on 127.0.0.1 (0: any)")
    ap.add_argument("--serve-seconds", type=float, default=0.0,
                    help="keep serving metrics this long after the workload (bounded)")
    args = ap.parse_args(argv)
    registry = CollectorRegistry()
    metrics = SagaMetrics(registry)
    with SagaOrchestrator.open(args.data_dir, observer=metrics, handlers=handlers()) as orch:
        metrics.attach(orch)
        server = start_metrics_server(registry, port=args.port)
        print(f"metrics at {server.url}", flush=True)
        res = run_workload(orch, args.sagas, fail_every=args.fail_every)
        print(f"{res.sagas} sagas in {res.seconds:.2f}s: {dict(res.final)}", flush=True)
        time.sleep(max(0.0, min(args.serve_seconds, 3600.0)))
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
