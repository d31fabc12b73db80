"""Chaos worker: one run of the runtime on a data folder, killed (or not) by a crash point.

Each run opens the orchestrator (recovery re-runs owed compensations), drives every saga
left IN_PROGRESS by earlier runs, starts ``--new-sagas`` new ones concurrently, and waits for
every non-terminal saga to end. Every acknowledged response is appended, fsynced, to the ack
log; every compensation handler call appends fsynced lines to the ledger. What each saga
does is a pure function of its id (``plan``), so any run can pick up any saga.

The workload talks to the runtime through a ``Client`` (here: the embedded async API). An
HTTP client with the same five methods can replace it (see ``make_client``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
import zlib
from typing import Any

from saga_journey.runtime import (
    CompensationContext,
    NotFoundError,
    RuntimeConfig,
    SagaError,
    SagaOrchestrator,
)

JOURNEY_ID = "chaos"
MILESTONES = ["m1", "m2", "m3", "m4"]
HANDLER = "undo"
RETRY = {"max_attempts": 1000, "initial_delay_s": 0.002, "backoff": 2.0, "max_delay_s": 0.02}
UC = {"tenant_id": "default", "user_id": "chaos"}
TERMINAL = ("COMPLETED", "FAILED")


def plan(saga_id: str) -> tuple[str, int]:
    """('complete', 4) | ('fail', k) | ('abort', k): act once k milestones are complete."""
    h = zlib.crc32(saga_id.encode())
    kind = h % 10
    if kind < 4:
        return "complete", 4
    if kind < 8:
        return "fail", (h // 10) % 4  # k=0: the first milestone fails, nothing to undo
    return "abort", 1 + (h // 10) % 3


def flaky(saga_id: str, milestone_id: str) -> bool:
    """Handlers of some milestones fail their first attempt (exercises retries)."""
    return zlib.crc32(f"{saga_id}/{milestone_id}".encode()) % 4 == 0


class FsyncLog:
    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lock = threading.Lock()

    def append(self, line: str) -> None:
        data = (line + "\n").encode()
        with self._lock:
            os.write(self._fd, data)
            os.fsync(self._fd)


class EmbeddedClient:
    """The workload's view of the runtime: the embedded async API."""

    def __init__(self, orch: SagaOrchestrator) -> None:
        self.orch = orch

    async def execute(self, saga_id: str) -> dict[str, Any]:
        return await self.orch.execute_saga_journey(JOURNEY_ID, "chaos", {"n": saga_id}, UC, saga_id=saga_id)

    async def advance(self, saga_id: str, step_result: dict[str, Any]) -> dict[str, Any]:
        return await self.orch.advance_saga_step(saga_id, JOURNEY_ID, "chaos", step_result, UC)

    async def abort(self, saga_id: str) -> dict[str, Any]:
        return await self.orch.compensate_saga(saga_id, "chaos abort", UC)

    async def status(self, saga_id: str) -> dict[str, Any]:
        return await self.orch.get_saga_status(saga_id, UC)

    async def wait(self, saga_id: str, timeout: float) -> dict[str, Any]:
        return await self.orch.wait_for_saga(saga_id, UC, timeout=timeout)

    async def in_progress(self) -> list[str]:
        out, cursor = [], None
        while True:
            page = await self.orch.list_sagas(status="IN_PROGRESS", user_context=UC, limit=1000, cursor=cursor)
            out += [s["saga_id"] for s in page["sagas"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return out

    async def non_terminal(self) -> list[str]:
        out = await self.in_progress()
        cursor = None
        while True:
            page = await self.orch.list_sagas(status="COMPENSATING", user_context=UC, limit=1000, cursor=cursor)
            out += [s["saga_id"] for s in page["sagas"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return out


class HttpClient(EmbeddedClient):
    """The same workload over the HTTP gateway: every acknowledged write is an HTTP 2xx.

    The gateway runs in the worker process over the same orchestrator, so the crash points
    still fire in the process that answers. Reads used only to drive the plan (wait, listing)
    stay on the embedded API; they acknowledge nothing.
    """

    def __init__(self, orch: SagaOrchestrator, base_url: str) -> None:
        super().__init__(orch)
        self.base = base_url
        self.session: Any = None

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        async with self.session.request(method, self.base + path, json=body) as resp:
            data = await resp.json(content_type=None)
        if resp.status >= 300:
            raise SagaError(f"HTTP {resp.status}: {data.get('detail')}")
        return data

    async def execute(self, saga_id: str) -> dict[str, Any]:
        body = {"journey_id": JOURNEY_ID, "context": {"n": saga_id}, "saga_id": saga_id, "user_id": "chaos"}
        return await self._call("POST", "/v1/sagas", body)

    async def advance(self, saga_id: str, step_result: dict[str, Any]) -> dict[str, Any]:
        body = {"step_result": step_result, "journey_id": JOURNEY_ID}
        return await self._call("POST", f"/v1/sagas/{saga_id}/advance", body)

    async def abort(self, saga_id: str) -> dict[str, Any]:
        return await self._call("POST", f"/v1/sagas/{saga_id}/compensate", {"reason": "chaos abort"})

    async def status(self, saga_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/v1/sagas/{saga_id}")


async def start_gateway(orch: SagaOrchestrator) -> tuple[Any, str]:
    """The gateway on 127.0.0.1 (a free port), without auth: tenant 'default', as the workload."""
    from aiohttp import web

    from saga_journey.http.app import create_app
    from saga_journey.http.settings import GatewaySettings

    runner = web.AppRunner(create_app(orch, GatewaySettings(insecure_dev=True)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}"


def make_handler(ledger: FsyncLog):
    def undo(ctx: CompensationContext) -> None:
        tag = f"{ctx.saga_id}\t{ctx.milestone_id}\t{ctx.attempt}"
        ledger.append(f"call\t{tag}")
        if ctx.attempt == 1 and flaky(ctx.saga_id, ctx.milestone_id):
            raise RuntimeError("flaky first attempt")
        ledger.append(f"ok\t{tag}")

    return undo


async def drive(client: Any, acks: FsyncLog, saga_id: str, view: dict[str, Any] | None) -> None:
    """Move one saga along its plan from whatever state it is in; ack every answer."""

    def ack(op: str, resp: dict[str, Any]) -> dict[str, Any]:
        acks.append(json.dumps({
            "op": op, "saga": saga_id, "version": resp["version"], "status": resp["status"],
            "event": None if resp.get("replayed") else resp.get("event"),
            "completed": resp["completed_milestones"],
        }))
        return resp

    kind, k = plan(saga_id)
    if view is None:
        view = ack("execute", await client.execute(saga_id))
    while view["status"] == "IN_PROGRESS":
        done = len(view["completed_milestones"])
        current = view["current_milestone"]
        if kind == "abort" and done == k:
            view = ack("abort", await client.abort(saga_id))
        elif kind == "fail" and done == k:
            view = ack("advance", await client.advance(
                saga_id, {"status": "failed", "milestone_id": current, "error": "planned failure"}))
        else:
            view = ack("advance", await client.advance(
                saga_id, {"status": "complete", "milestone_id": current, "out": f"{saga_id}:{current}"}))


async def run(args: argparse.Namespace) -> int:
    acks, ledger = FsyncLog(args.acks), FsyncLog(args.ledger)
    config = RuntimeConfig(reply_timeout_s=args.wait_s, idle_passivate_s=5.0)
    orch = SagaOrchestrator.open(args.data_dir, config=config, handlers={HANDLER: make_handler(ledger)})
    client: EmbeddedClient = EmbeddedClient(orch)
    gateway = None
    if args.client == "http":
        import aiohttp

        gateway, base = await start_gateway(orch)
        client = HttpClient(orch, base)
        client.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
    errors: list[str] = []
    try:
        try:
            await client.orch.get_journey(JOURNEY_ID, UC)
        except NotFoundError:
            await orch.design_saga_journey(
                "chaos",
                {"milestones": [{"id": m, "compensation_handler": HANDLER} for m in MILESTONES], "retry": RETRY},
                None, UC, journey_id=JOURNEY_ID,
            )

        async def one(saga_id: str, existing: bool) -> None:
            try:
                view = await client.status(saga_id) if existing else None
                await drive(client, acks, saga_id, view)
            except SagaError as exc:
                errors.append(f"{saga_id}: {exc!r}")

        old = await client.in_progress()
        new = [f"r{args.run_id:05d}-{i:03d}" for i in range(args.new_sagas)]
        await asyncio.gather(*(one(s, True) for s in old), *(one(s, False) for s in new))
        deadline = time.monotonic() + args.wait_s
        pending = await client.non_terminal()
        for saga_id in pending:
            try:
                await client.wait(saga_id, max(0.1, deadline - time.monotonic()))
            except SagaError as exc:
                errors.append(f"{saga_id}: {exc!r}")
        left = await client.non_terminal()
    finally:
        if gateway is not None:
            await client.session.close()
            await gateway.cleanup()
        await asyncio.get_running_loop().run_in_executor(None, orch.close)
    if args.report:
        with open(args.report, "w") as f:
            json.dump({"non_terminal": left, "errors": errors, "recovered": orch.recovered}, f)
    return 0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", required=True)
    p.add_argument("--acks", required=True)
    p.add_argument("--ledger", required=True)
    p.add_argument("--run-id", type=int, required=True)
    p.add_argument("--new-sagas", type=int, default=20)
    p.add_argument("--wait-s", type=float, default=30.0, help="bound for every saga to end (I5)")
    p.add_argument("--report")
    p.add_argument("--client", choices=["embedded", "http"], default="embedded",
                   help="drive the workload through the embedded API or the HTTP gateway")
    return asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
