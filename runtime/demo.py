"""The seed's enterprise migration, run end to end with a failure at transform_data."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable, TextIO

from .errors import InvalidInputError
from .handlers import CompensationContext
from .journeys import TEMPLATES
from .orchestrator import SagaOrchestrator


DEMO_TENANT = "default"


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def _handler(name: str, out: TextIO) -> Callable[[CompensationContext], None]:
    def undo(ctx: CompensationContext) -> None:
        print(
            f"    handler {name}({ctx.milestone_id}) key={ctx.idempotency_key} attempt={ctx.attempt}",
            file=out,
        )

    return undo


def run_demo(store_url: str, out: TextIO, fail_at: str = "transform_data") -> dict:
    """Run the demo saga on the store at ``store_url`` (``lmdb:./data``; created if absent)."""
    milestones = [m for m, _ in TEMPLATES["enterprise_migration"]]
    if fail_at not in milestones:  # checked before the data folder is opened (or created)
        raise InvalidInputError(f"--fail-at {fail_at!r} is not a milestone of enterprise_migration; "
                                f"choose one of {', '.join(milestones)}")
    handlers = {h: _handler(h, out) for _, h in TEMPLATES["enterprise_migration"]}
    with SagaOrchestrator.open(store=store_url, handlers=handlers) as orch:
        # The tenant `saga-journey serve --insecure-dev` (make serve) acts as: the gateway shows this saga.
        uc = {"tenant_id": DEMO_TENANT, "user_id": "user_123"}
        journey = orch.design_saga_journey_sync(
            "enterprise_migration",
            {"metadata": {"source": "legacy_system", "target": "new_system"}},
            user_context=uc,
        )
        ex = orch.execute_saga_journey_sync(
            journey["journey_id"], "user_123", {"migration_id": "mig_001"}, uc
        )
        saga_id = ex["saga_id"]
        print(f"saga {saga_id} of journey {journey['journey_id']} v{journey['version']}", file=out)
        for milestone in [m["id"] for m in journey["milestones"]]:
            if milestone == fail_at:
                result = {"status": "failed", "milestone_id": milestone, "error": "schema mismatch"}
            else:
                result = {"status": "complete", "milestone_id": milestone}
            status = orch.advance_saga_step_sync(
                saga_id, journey["journey_id"], "user_123", result, uc
            )
            if status["status"] != "IN_PROGRESS":
                break
        started = time.perf_counter()
        final = orch.wait_for_saga_sync(saga_id, uc, timeout=30)
        elapsed_ms = (time.perf_counter() - started) * 1000
        print("timeline:", file=out)
        for entry in orch.get_saga_execution_history_sync(saga_id, uc):
            what = entry.get("milestone_id") or ""
            extra = f" ({entry['reason']})" if entry.get("reason") else ""
            print(
                f"  {_stamp(entry['at'])}  #{entry['seq']:<2} {entry['type']:<24} {what:<18}"
                f" -> {entry['status_after']}{extra}",
                file=out,
            )
        print(
            f"final: {final['status']}, compensation {final['compensation_status']}, "
            f"compensated in order {final['compensated_milestones']} "
            f"(rollback finished {elapsed_ms:.1f} ms after the failure was acknowledged)",
            file=out,
        )
        print(
            f"see it through the gateway: make serve (or saga-journey serve --store {store_url} "
            f"--insecure-dev), then\n  curl -s localhost:8080/v1/sagas/{saga_id}/history",
            file=out,
        )
        return final
