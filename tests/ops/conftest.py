"""A real ``saga-journey serve`` subprocess with webhook compensation handlers served by the test."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from saga_journey.client import SagaClient
from saga_journey.http.auth import hash_token

ROOT = str(Path(__file__).resolve().parent.parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

ADMIN, READER = "tok-ops-admin", "tok-ops-reader"
ORDER = [("create_order", "cancel_order"), ("process_payment", "refund_payment"),
         ("reserve_inventory", "release_inventory"), ("ship_product", "cancel_shipment")]
CLI = [sys.executable, "-m", "saga_journey.runtime.cli"]


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Hooks:
    """The user's compensation service. A saga whose context names ``fail_undo: M`` fails the
    compensation of milestone M (HTTP 500) until the test puts the saga in ``fixed``."""

    port: int = 0
    fixed: set[str] = field(default_factory=set)
    calls: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(body)
        broken = body["context"].get("fail_undo") == body["milestone_id"]
        if broken and body["saga_id"] not in self.fixed:
            return web.Response(status=500, text="ledger unavailable")
        return web.json_response({"ok": True})


def _serve_hooks(hooks: Hooks, ready: threading.Event, stop: list[Any]) -> None:
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/hooks/{name}", hooks.handle)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", hooks.port).start())
    stop.append((loop, runner))
    ready.set()
    loop.run_forever()
    loop.run_until_complete(runner.cleanup())
    loop.close()


@dataclass
class Gateway:
    url: str
    data_dir: Path
    hooks: Hooks
    proc: subprocess.Popen[str]

    def client(self, token: str = ADMIN, **options: Any) -> SagaClient:
        return SagaClient(self.url, token, **options)

    def cli(self, *args: str, token: str = ADMIN, input: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "SAGA_JOURNEY_URL": self.url, "SAGA_JOURNEY_TOKEN": token, "COLUMNS": "250"}
        return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, input=input,
                              timeout=timeout)


@contextmanager
def running_gateway(tmp: Path) -> Iterator[Gateway]:
    """A ``saga-journey serve`` subprocess on a new data folder in ``tmp``, with its hooks."""
    hooks, ready, stop = Hooks(port=free_port()), threading.Event(), []
    thread = threading.Thread(target=_serve_hooks, args=(hooks, ready, stop), daemon=True)
    thread.start()
    assert ready.wait(30)
    lines = ["[gateway]", "shutdown_timeout_s = 5", ""]
    for token, roles in ((ADMIN, '["admin"]'), (READER, '["read"]')):
        lines += ["[[api_keys]]", f'sha256 = "{hash_token(token)}"', 'tenant_id = "acme"',
                  'user_id = "ops"', f"roles = {roles}", ""]
    for _, handler in ORDER:
        lines += [f"[webhooks.{handler}]", f'url = "http://127.0.0.1:{hooks.port}/hooks/{handler}"',
                  "timeout_s = 5", ""]
    (tmp / "saga.toml").write_text("\n".join(lines))
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "--create", "--data-dir", str(tmp / "data"), "--host", "127.0.0.1",
         "--port", str(port), "--config", str(tmp / "saga.toml")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert "listening on" in line, line + (proc.stderr.read() if proc.stderr else "")
        yield Gateway(f"http://127.0.0.1:{port}", tmp / "data", hooks, proc)
    finally:
        proc.terminate()
        proc.wait(30)
        loop = stop[0][0]
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One server for the tests of a module (they must not assume they see only their sagas)."""
    with running_gateway(tmp_path_factory.mktemp("ops")) as gw:
        yield gw


@pytest.fixture
def own_gateway(tmp_path: Path) -> Iterator[Gateway]:
    """A server of the test's own: every saga on it is the test's."""
    with running_gateway(tmp_path) as gw:
        yield gw


def design(gateway: Gateway) -> dict[str, Any]:
    """order_processing whose compensations give up after 2 quick attempts (then park)."""
    with gateway.client() as c:
        return c.design_saga_journey(
            "order_processing", {"retry": {"max_attempts": 2, "initial_delay_s": 0.01, "max_delay_s": 0.01}}
        )


@pytest.fixture(scope="module")
def journey(gateway: Gateway) -> dict[str, Any]:
    return design(gateway)


def make_saga(client: SagaClient, journey_id: str, user: str, outcome: str) -> dict[str, Any]:
    """A saga of ``journey_id`` left in state ``outcome``:
    in_progress | completed | compensated | parked (refund_payment's undo keeps failing)."""
    context = {"fail_undo": "process_payment"} if outcome == "parked" else {}
    saga = client.execute_saga_journey(journey_id, user, context)
    sid = saga["saga_id"]
    steps = {"in_progress": 1, "completed": 4, "compensated": 2, "parked": 3}[outcome]
    for milestone, _ in ORDER[:steps]:
        saga = client.advance_saga_step(sid, step_result={"status": "complete", "milestone_id": milestone})
    if outcome in ("compensated", "parked"):
        client.advance_saga_step(sid, step_result={"status": "failed", "milestone_id": ORDER[steps][0],
                                                    "error": "card declined"})
        saga = client.wait_for_saga(sid, timeout=60)
        assert saga["status"] == "FAILED" and saga["parked"] == (outcome == "parked"), saga
    return saga
