"""The composition root: every object of a runtime is built here, from config, once.

``construct_runtime(config, store_url=...)`` opens the store the URL names (through the
backend factory: the runtime knows the store only by its ports), builds the actor runtime
around it, starts it and resumes owed work. No object is patched after it is built: what one
part needs from another is passed to its constructor.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from saga_journey.actors.compensator_actor import AbandonedThreads
from saga_journey.actors.directory import Directory
from saga_journey.actors.loop_actor import RuntimeLoop
from saga_journey.actors.services import Services
from saga_journey.persistence.factory import backend_for, data_dir_url
from saga_journey.persistence.ports import Store, StoreOptions
from saga_journey.persistence.store import Outcome, run_outcomes

from .catalog import JourneyCatalog
from .clock import Clock, SystemClock
from .config import RuntimeConfig
from .errors import InvalidInputError
from .events import Tee, TransitionHub
from .handlers import Handler, HandlerRegistry
from .idempotency import IdempotencyGuard
from .logs import warn_missing_handlers
from .observer import RuntimeObserver
from .orchestrator import RuntimeParts, SagaOrchestrator, tune_gc
from .placement import Placement
from .requests import Requests
from .retention import Pruner
from .timers import TimerService


def store_url(data_dir: str | None, store: str | None) -> str:
    """The store URL from ``--data-dir`` / ``--store`` (exactly one of them)."""
    if (data_dir is None) == (store is None):
        raise InvalidInputError("give either a data folder or a store URL (e.g. lmdb:./data), not both")
    return store if store is not None else data_dir_url(str(data_dir))


def construct_runtime(
    config: RuntimeConfig,
    *,
    store_url: str,
    clock: Clock | None = None,
    observer: RuntimeObserver | None = None,
    handlers: Mapping[str, Handler] | None = None,
    shards: int | None = None,
    owned_shards: frozenset[int] | None = None,
) -> SagaOrchestrator:
    """Open the store at ``store_url``, build the runtime on it, start it and resume owed work.

    ``shards``: a new data folder is created sharded into this many shards (None/1: the
    one-environment layout). ``owned_shards``: of a sharded folder, the shards this runtime
    writes (a worker of ``serve --workers``; None: all); it reads the others.

    The runtime loop is the running loop (an async host) or a loop thread started here.
    ``handlers`` are registered before recovery, so compensations owed from a previous run find
    their handler at once.
    """
    backend = backend_for(store_url)  # a bad URL is refused before anything is started
    observer = observer or RuntimeObserver()
    runtime = RuntimeLoop.current_or_new()
    loop = runtime.loop

    def handoff(outcomes: list[Outcome]) -> None:  # each committed batch: one loop call
        loop.call_soon_threadsafe(run_outcomes, outcomes)

    try:
        store = backend.open(StoreOptions(
            map_size=config.map_size, group_commit=config.group_commit, max_batch=config.max_batch,
            on_commit=observer.on_commit, handoff=handoff, shards=shards, owned_shards=owned_shards,
        ))
    except BaseException:
        runtime.close()
        raise
    try:
        orch = SagaOrchestrator(assemble(config, store, runtime, clock or SystemClock(), observer, handlers))
    except BaseException:
        store.close()
        runtime.close()
        raise
    orch.start()
    warn_missing_handlers(orch)
    if config.tune_gc:
        tune_gc()
    return orch


def assemble(
    config: RuntimeConfig,
    store: Store,
    runtime: RuntimeLoop,
    clock: Clock,
    observer: RuntimeObserver,
    handlers: Mapping[str, Handler] | None = None,
) -> RuntimeParts:
    """Build the parts of a runtime over an open store (nothing is started)."""
    placement = placement_of(store)
    registry = HandlerRegistry()
    for name, fn in (handlers or {}).items():
        registry.register(name, fn)
    transitions = TransitionHub()
    timers = TimerService(clock)
    journeys = JourneyCatalog(store, registry, clock, latest_cached=placement.writes_journeys)
    pool = ThreadPoolExecutor(
        max_workers=max(1, config.max_handler_threads), thread_name_prefix="saga-journey-handler"
    )
    abandoned = AbandonedThreads(config.max_abandoned_handler_threads, config.max_handler_threads)
    closing = threading.Event()

    def services(directory: Directory) -> Services:
        return Services(
            store=store, handlers=registry, runtime=runtime, pool=pool, clock=clock, timers=timers,
            observer=Tee(observer, transitions), config=config, load_journey=journeys.load,
            directory=directory, closing=closing, abandoned=abandoned,
        )

    directory = Directory(services)
    return RuntimeParts(
        config=config, clock=clock, observer=observer, transitions=transitions, store=store,
        handlers=registry, journeys=journeys,
        pruner=Pruner(store, timers, clock, config, observer),
        idempotency=IdempotencyGuard(store.get_idempotency),
        requests=Requests(config, observer, runtime.on_loop),
        timers=timers, runtime=runtime, pool=pool, services=directory.services, directory=directory,
        placement=placement,
    )


def placement_of(store: Store) -> Placement:
    """What ``store`` lets this runtime write: every saga, or those of its owned shards."""
    owned = getattr(store, "owned", None)
    return Placement(int(getattr(store, "shards", 1)), None if owned is None else frozenset(owned))
