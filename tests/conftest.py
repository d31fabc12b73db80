from __future__ import annotations

import threading
from typing import Any, Callable, Iterator

import pytest

from saga_journey.runtime import CompensationContext, RuntimeConfig, RuntimeObserver, SagaOrchestrator
from saga_journey.runtime.journeys import TEMPLATES

FAST_RETRY = {"max_attempts": 3, "initial_delay_s": 0.0, "backoff": 1.0, "max_delay_s": 0.0}


class Recorder:
    """Compensation handlers that record the order they ran in; behaviour is scriptable."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()
        self.behaviour: dict[str, Callable[[CompensationContext], Any]] = {}

    def handler(self, name: str) -> Callable[[CompensationContext], None]:
        def run(ctx: CompensationContext) -> None:
            with self.lock:
                self.calls.append((name, ctx.milestone_id, ctx.attempt))
            action = self.behaviour.get(name)
            if action is not None:
                action(ctx)

        return run

    def all_handlers(self) -> dict[str, Callable[[CompensationContext], None]]:
        names = {h for steps in TEMPLATES.values() for _, h in steps}
        return {n: self.handler(n) for n in names}

    def milestones(self) -> list[str]:
        with self.lock:
            return [m for _, m, _ in self.calls]


class EventObserver(RuntimeObserver):
    def __init__(self) -> None:
        self.passivated = threading.Event()
        self.transitions: list[str] = []

    def on_actor_passivated(self) -> None:
        self.passivated.set()

    def on_transition(self, state, event) -> None:
        self.transitions.append(event.kind)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def open_orch(tmp_path, recorder) -> Iterator[Callable[..., SagaOrchestrator]]:
    opened: list[SagaOrchestrator] = []

    def factory(path=None, **kwargs: Any) -> SagaOrchestrator:
        kwargs.setdefault("handlers", recorder.all_handlers())
        orch = SagaOrchestrator.open(str(path or tmp_path / "data"), **kwargs)
        opened.append(orch)
        return orch

    yield factory
    for orch in opened:
        orch.close()


@pytest.fixture
def orch(open_orch) -> SagaOrchestrator:
    return open_orch()


@pytest.fixture
def fast_retry() -> dict[str, float]:
    return dict(FAST_RETRY)


@pytest.fixture
def observer() -> EventObserver:
    return EventObserver()
