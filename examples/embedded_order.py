"""Embedding saga-journey: an order fails at shipping and is rolled back, newest first.

    python examples/embedded_order.py [--data-dir DIR]    # default: a fresh temporary folder
"""

import argparse
import asyncio
import tempfile

from saga_journey.runtime import CompensationContext, NonRetryableError, SagaOrchestrator


class Payments:  # stand-ins for your own services
    def refund(self, charge_id: str, idempotency_key: str) -> None:
        print(f"refunded {charge_id} (idempotency key {idempotency_key})")


class Inventory:
    async def release(self, order_id: str, key: str) -> None:
        print(f"released the stock held for {order_id} (idempotency key {key})")


payments, inventory = Payments(), Inventory()


def refund(ctx: CompensationContext) -> None:          # sync handlers run on a bounded thread pool
    if "charge_id" not in ctx.step_result:
        raise NonRetryableError("no charge to refund")  # stops the retries at once
    payments.refund(ctx.step_result["charge_id"], idempotency_key=ctx.idempotency_key)


async def release(ctx: CompensationContext) -> None:   # async handlers run on the runtime's loop
    await inventory.release(ctx.context["order_id"], key=ctx.idempotency_key)


async def main(data_dir: str) -> None:
    uc = {"tenant_id": "acme", "user_id": "user_123"}   # who is asking (tenant isolation)
    async with SagaOrchestrator.open(data_dir, handlers={"refund_payment": refund}) as orch:
        orch.register_compensation_handler("release_inventory", release)
        orch.register_compensation_handler("cancel_order", lambda ctx: print("cancelled", ctx.context["order_id"]))
        orch.register_compensation_handler("cancel_shipment", lambda ctx: None)

        journey = await orch.design_saga_journey(
            journey_type="order_processing",           # a built-in template ...
            requirements={"deadline_s": 3600},         # or {"milestones": [...]}; free-form data under "metadata"
            compensation_handlers={"process_payment": "refund_payment"},
            user_context=uc,
        )
        ex = await orch.execute_saga_journey(journey_id=journey["journey_id"], user_id="user_123",
                                             context={"order_id": "o-7"}, user_context=uc)
        saga_id = ex["saga_id"]
        await orch.advance_saga_step(saga_id=saga_id, journey_id=journey["journey_id"], user_id="user_123",
                                     step_result={"status": "complete", "milestone_id": "create_order"},
                                     user_context=uc)
        await orch.advance_saga_step(saga_id=saga_id, step_result={"status": "complete",
                                     "charge_id": "ch_1"}, user_context=uc)
        await orch.advance_saga_step(saga_id=saga_id, step_result={"status": "complete"}, user_context=uc)
        await orch.advance_saga_step(saga_id=saga_id, step_result={"status": "failed",
                                     "error": "carrier refused"}, user_context=uc)
        final = await orch.wait_for_saga(saga_id, uc)   # FAILED, compensated newest first
        status = await orch.get_saga_status(saga_id, uc)     # the same view, at any time
        history = await orch.get_saga_execution_history(saga_id, uc)
        print(f"{final['status']}, compensated newest first: {status['compensated_milestones']}")
        print("history:", ", ".join(entry["type"] for entry in history))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", help="LMDB data folder (default: a fresh temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(args.data_dir or tmp))
