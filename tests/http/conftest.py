"""A real gateway (aiohttp test server on 127.0.0.1) over a real orchestrator in tmp_path."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, AsyncIterator, Callable

import pytest

from saga_journey.http.app import create_app
from saga_journey.http.auth import hash_token
from saga_journey.http.settings import ApiKey, GatewaySettings
from saga_journey.runtime import RuntimeObserver, SagaOrchestrator
from saga_journey.runtime.handlers import CompensationContext
from saga_journey.runtime.journeys import TEMPLATES

TOKENS = {
    "acme-admin": ("acme", "alice", ["admin"]),
    "acme-reader": ("acme", "rita", ["read"]),
    "globex-writer": ("globex", "bob", ["write"]),
    "globex-admin": ("globex", "gus", ["admin"]),
}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class RecordingObserver(RuntimeObserver):
    def __init__(self) -> None:
        self.http: list[tuple[str, int]] = []

    def on_http_request(self, route: str, status: int, seconds: float) -> None:
        self.http.append((route, status))


class Calls:
    """Compensation calls seen by in-process handlers, in order; ``wait(n)`` blocks until n arrived."""

    def __init__(self) -> None:
        self.names: list[tuple[str, str]] = []
        self._cond = threading.Condition()
        self.fail: set[str] = set()

    def handler(self, name: str) -> Callable[[CompensationContext], None]:
        def run(ctx: CompensationContext) -> None:
            with self._cond:
                self.names.append((name, ctx.milestone_id))
                self._cond.notify_all()
            if name in self.fail:
                raise RuntimeError(f"{name} is down")

        return run


def settings(**overrides: Any) -> GatewaySettings:
    keys = tuple(
        ApiKey(hash_token(tok), tenant, user, frozenset(roles)) for tok, (tenant, user, roles) in TOKENS.items()
    )
    return GatewaySettings(api_keys=keys, **overrides)


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def observer() -> RecordingObserver:
    return RecordingObserver()


@pytest.fixture
async def orch(tmp_path, calls: Calls, observer: RecordingObserver) -> AsyncIterator[SagaOrchestrator]:
    handlers = {h: calls.handler(h) for steps in TEMPLATES.values() for _, h in steps}
    o = SagaOrchestrator.open(str(tmp_path / "data"), handlers=handlers, observer=observer)
    yield o
    await asyncio.get_running_loop().run_in_executor(None, o.close)


@pytest.fixture
async def make_client(aiohttp_client, orch: SagaOrchestrator):
    async def make(**overrides: Any):
        return await aiohttp_client(create_app(orch, settings(**overrides)))

    return make


@pytest.fixture
async def client(make_client):
    return await make_client()
