"""SagaOrchestrator: the public API, in async and sync flavours, over the actor runtime.

Every write is answered only after its LMDB commit. Saga and compensator actors run on one
runtime loop: the loop running where the orchestrator is opened (an async host), else a loop
thread the orchestrator starts (sync hosts; the ``_sync`` API). Async methods awaited on the
runtime loop are answered on it directly; from any other loop through a ``LoopBridge`` (batched
``call_soon_threadsafe``). Async methods never block the event loop.

This module holds the object's life (build, open, recover, close) and ``stats``; the writes are
in ``commands``, the reads in ``queries``, request admission in ``requests``, idempotency keys
in ``idempotency``, journeys in ``catalog``, input checks in ``inputs``.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from saga_journey.actors.directory import Directory
from saga_journey.actors.loop_actor import RuntimeLoop
from saga_journey.actors.services import Services
from saga_journey.persistence.ports import Store

from .catalog import JourneyCatalog
from .clock import Clock
from .codec import status_view
from .commands import CommandApi, new_saga_id
from .config import RuntimeConfig
from .handlers import Handler, HandlerRegistry
from .idempotency import IdempotencyGuard
from .events import TransitionHub
from .observer import RuntimeObserver
from .placement import Placement
from .queries import QueryApi
from .requests import Requests
from .retention import Pruner
from .timers import TimerService


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeParts:
    """Everything a ``SagaOrchestrator`` is made of, built by ``compose.assemble``."""

    config: RuntimeConfig
    clock: Clock
    observer: RuntimeObserver
    transitions: TransitionHub
    store: Store
    handlers: HandlerRegistry
    journeys: JourneyCatalog
    pruner: Pruner
    idempotency: IdempotencyGuard
    requests: Requests
    timers: TimerService
    runtime: RuntimeLoop
    pool: ThreadPoolExecutor
    services: Services
    directory: Directory
    placement: Placement


class SagaOrchestrator(CommandApi, QueryApi):
    """Durable saga orchestration embedded in the host process.

    Open it on a data folder (``SagaOrchestrator.open("./data")``), register compensation
    handlers, design journeys, then execute and advance sagas. Use it as a context manager
    (sync or async) or call ``close()``.
    """

    def __init__(self, parts: RuntimeParts) -> None:
        """Built by the composition root (``compose.construct_runtime``; ``open`` calls it)."""
        self.config = parts.config
        self.clock = parts.clock
        self.observer = parts.observer
        self.transitions = parts.transitions  # committed transitions, for event streams
        self.store = parts.store
        self.handlers = parts.handlers
        self.journeys = parts.journeys
        self.pruner = parts.pruner
        self._idem = parts.idempotency
        self._requests = parts.requests
        self._timers = parts.timers
        self._runtime = parts.runtime
        self._pool = parts.pool
        self._svc = parts.services
        self._directory = parts.directory
        self._placement = parts.placement
        self._closed = False
        self.recovered = 0

    @classmethod
    def open(
        cls,
        data_dir: str | None = None,
        *,
        store: str | None = None,
        config: RuntimeConfig | None = None,
        clock: Clock | None = None,
        observer: RuntimeObserver | None = None,
        handlers: Mapping[str, Handler] | None = None,
        shards: int | None = None,
        owned_shards: frozenset[int] | None = None,
    ) -> SagaOrchestrator:
        """Open (or create) the store in ``data_dir`` (or at the store URL ``store``, e.g.
        ``lmdb:./data``) and resume every saga with work owed.

        Pass ``handlers`` to register compensation handlers before recovery starts, so that
        compensations owed from a previous run find their handler at once. ``shards`` and
        ``owned_shards``: see ``compose.construct_runtime`` (a sharded folder, a worker's part).
        """
        from .compose import construct_runtime, store_url  # the composition root builds this class

        return construct_runtime(
            config or RuntimeConfig(), store_url=store_url(data_dir, store), clock=clock,
            observer=observer, handlers=handlers, shards=shards, owned_shards=owned_shards,
        )

    def start(self) -> None:
        """Start the background work (passivation reaper, pruner) and resume owed work."""
        self._directory.start_reaper()
        self.pruner.start()
        self.recovered = self.resume()

    # --- lifecycle ---------------------------------------------------------------------

    def register_compensation_handler(self, name: str, handler: Handler) -> None:
        """Register a sync or async callable taking a ``CompensationContext``."""
        self.handlers.register(name, handler)

    def compensation_handler(self, name: str) -> Callable[[Handler], Handler]:
        """Decorator form of ``register_compensation_handler``."""

        def register(fn: Handler) -> Handler:
            self.register_compensation_handler(name, fn)
            return fn

        return register

    def resume(self) -> int:
        """Re-dispatch owed work of every stored saga (called by ``open``; safe to repeat)."""
        return self._directory.recover()

    def close(self) -> None:
        """Stop accepting requests, commit what is pending, stop actors and close the store."""
        if self._closed:
            return
        self._closed = True
        self._svc.closing.set()
        self.pruner.close()
        self._timers.close()
        self.store.close()  # commits what is queued; its callbacks are handed to the loop
        runtime = self._runtime
        if runtime.on_loop():  # cannot wait here: the actors stop when the loop runs on
            self._directory.stop_all(wait=False)
        else:
            try:
                runtime.run_sync(lambda: None, timeout=10)  # the handed-back commits run first
            except TimeoutError:
                pass
            self._directory.stop_all()
        self._pool.shutdown(wait=False)
        runtime.close()

    def __enter__(self) -> SagaOrchestrator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> SagaOrchestrator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def stats(self) -> dict[str, Any]:
        mailbox_messages, mailbox_max = self._directory.mailbox_depths()
        return {
            "live_actors": self._directory.live_count(),
            "mailbox_messages": mailbox_messages,
            "mailbox_max": mailbox_max,
            "activations": self._directory.activations(),
            "pending_timers": self._timers.pending(),
            "in_flight_requests": self._requests.in_flight(),
            "abandoned_handler_threads": self._svc.abandoned.count(),
            "handler_threads": self._svc.abandoned.occupied(),
            "store": self.store.stats(),  # includes quarantined_records
        }

    def in_flight(self) -> int:
        return self._requests.in_flight()



GC_GEN0_THRESHOLD = 200_000  # gen-0 collections were ~45 us per transition at 20k, ~1 us here


def tune_gc() -> None:
    """Move what start-up built out of the collector's sight and collect gen 0 less often."""
    gc.collect()
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, GC_GEN0_THRESHOLD), max(gen1, 20), max(gen2, 20))


__all__ = ["RuntimeParts", "SagaOrchestrator", "new_saga_id", "status_view", "tune_gc"]
