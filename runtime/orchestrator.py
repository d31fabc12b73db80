"""SagaOrchestrator: the public API, in async and sync flavours, over the actor runtime.

Every write is answered only after its LMDB commit. Saga and compensator actors run on one
runtime loop: the loop running where the orchestrator is opened (an async host), else a loop
thread the orchestrator starts (sync hosts; the ``_sync`` API). Async methods awaited on the
runtime loop are answered on it directly; from any other loop through a ``LoopBridge`` (batched
``call_soon_threadsafe``). Async methods never block the event loop.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import math
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from collections.abc import Mapping
from typing import Any, Callable, TypeVar

import msgpack

from saga_journey.actors.directory import Directory, view_of
from saga_journey.actors.loop_actor import RuntimeLoop
from saga_journey.actors.messages import Command
from saga_journey.actors.services import Services
from saga_journey.persistence.keys import local_id, scoped_key
from saga_journey.persistence.recent import ORDERS, Query
from saga_journey.persistence.store import JourneyWrite, SagaStore

from .clock import Clock, SystemClock
from .codec import status_view
from .config import RuntimeConfig
from .errors import (
    CorruptRecordError,
    HandlerMissingError,
    IdempotencyKeyReusedError,
    InvalidInputError,
    NotFoundError,
    OverloadedError,
    RequestInFlightError,
    RuntimeClosedError,
    SagaError,
)
from .handlers import Handler, HandlerRegistry
from .journeys import build_journey, check_id, template_definitions
from .model import (
    SAGA_STATES,
    AbortSaga,
    Journey,
    ReportStep,
    RetryCompensation,
    SkipCompensation,
    StartSaga,
)
from .logs import warn_missing_handlers
from .events import Tee, TransitionHub
from .isotime import entry_with_iso
from .observer import RuntimeObserver
from .replies import Reply
from .retention import Pruner
from .timers import TimerService
from .values import check_value

T = TypeVar("T")
UserContext = Mapping[str, Any] | None
MAX_CONTEXT_BYTES = 256 * 1024
MAX_VERSION = 10**9  # journey versions are stored as 10 digits


class SagaOrchestrator:
    """Durable saga orchestration embedded in the host process.

    Open it on a data folder (``SagaOrchestrator.open("./data")``), register compensation
    handlers, design journeys, then execute and advance sagas. Use it as a context manager
    (sync or async) or call ``close()``.
    """

    def __init__(
        self,
        store: SagaStore,
        *,
        config: RuntimeConfig | None = None,
        clock: Clock | None = None,
        observer: RuntimeObserver | None = None,
        runtime: RuntimeLoop | None = None,
    ) -> None:
        """``runtime``: the loop to run actors on; default: the running loop, else a new loop thread."""
        self.config = config or RuntimeConfig()
        self.clock = clock or SystemClock()
        self.observer = observer or RuntimeObserver()
        self.transitions = TransitionHub()  # committed transitions, for event streams
        self.store = store
        self.handlers = HandlerRegistry()
        self._journeys: dict[tuple[str, int], Journey] = {}
        self._latest: dict[str, Journey] = {}
        self._design_lock = threading.Lock()
        self._idem_lock = threading.Lock()
        self._idem_in_flight: set[str] = set()
        self._closed = False
        self._admission_lock = threading.Lock()
        self._in_flight = 0
        self._timers = TimerService(self.clock)
        self._runtime = runtime or RuntimeLoop.current_or_new()
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, self.config.max_handler_threads), thread_name_prefix="saga-journey-handler"
        )
        self._svc = Services(
            store=store,
            handlers=self.handlers,
            runtime=self._runtime,
            pool=self._pool,
            clock=self.clock,
            timers=self._timers,
            observer=Tee(self.observer, self.transitions),
            config=self.config,
            load_journey=self._load_journey,
        )
        self._svc.abandoned.limit = self.config.max_abandoned_handler_threads
        self._svc.abandoned.max_threads = self.config.max_handler_threads
        self._directory = Directory(self._svc)
        self._directory.start_reaper()
        self.recovered = 0
        self.pruner = Pruner(store, self._timers, self.clock, self.config, self.observer)
        self.pruner.start()

    @classmethod
    def open(
        cls,
        data_dir: str,
        *,
        config: RuntimeConfig | None = None,
        clock: Clock | None = None,
        observer: RuntimeObserver | None = None,
        handlers: Mapping[str, Handler] | None = None,
    ) -> SagaOrchestrator:
        """Open (or create) the store in ``data_dir`` and resume every saga with work owed.

        Pass ``handlers`` to register compensation handlers before recovery starts, so that
        compensations owed from a previous run find their handler at once.
        """
        from saga_journey.persistence.lmdb_store import LmdbStore, run_outcomes  # late: import cycle

        config = config or RuntimeConfig()
        observer = observer or RuntimeObserver()
        runtime = RuntimeLoop.current_or_new()
        loop = runtime.loop
        try:
            store = LmdbStore(
                data_dir,
                map_size=config.map_size,
                group_commit=config.group_commit,
                max_batch=config.max_batch,
                on_commit=observer.on_commit,
                # each committed batch goes back to the loop in one call
                handoff=lambda outcomes: loop.call_soon_threadsafe(run_outcomes, outcomes),
            )
        except BaseException:
            runtime.close()
            raise
        orch = cls(store, config=config, clock=clock, observer=observer, runtime=runtime)
        for name, fn in (handlers or {}).items():
            orch.register_compensation_handler(name, fn)
        orch.recovered = orch._directory.recover()
        warn_missing_handlers(orch)
        if config.tune_gc:
            tune_gc()
        return orch

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
            "in_flight_requests": self._in_flight,
            "abandoned_handler_threads": self._svc.abandoned.count(),
            "handler_threads": self._svc.abandoned.occupied(),
            "store": self.store.stats(),  # includes quarantined_records
        }

    # --- helpers -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeClosedError("the orchestrator is closed")

    def _tenant(self, user_context: UserContext) -> str:
        if user_context is None:
            return self.config.default_tenant
        if not isinstance(user_context, Mapping):
            raise InvalidInputError("user_context must be a mapping with an optional 'tenant_id'")
        tenant = user_context.get("tenant_id", self.config.default_tenant)
        return check_id(tenant, "user_context.tenant_id")

    def _actor(self, user_context: UserContext) -> str:
        if isinstance(user_context, Mapping):
            who = user_context.get("user_id")
            if isinstance(who, str):
                return check_value(who, "user_context.user_id")
        return "system"

    def _load_journey(self, journey_key: str, version: int) -> Journey:
        """A journey version by its internal key (``scoped_key(tenant, journey_id)``)."""
        key = (journey_key, version)
        journey = self._journeys.get(key)
        if journey is None:
            raw = self.store.load_journey(journey_key, version)
            if raw is None:
                raise NotFoundError(f"journey {local_id(journey_key)} v{version} not found")
            journey = Journey.from_dict(raw)
            self._journeys[key] = journey
        return journey

    def _journey_for(self, journey_id: str, tenant: str, version: int | None = None) -> Journey:
        check_id(journey_id, "journey_id")
        if version is not None and (
            isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION
        ):
            raise InvalidInputError(f"journey version must be an integer from 1 to {MAX_VERSION}")
        key = scoped_key(tenant, journey_id)
        journey = self._latest.get(key) if version is None else None
        if journey is None:
            raw = self.store.load_journey(key, version)
            if raw is not None:
                journey = self._load_journey(key, int(raw["version"]))
                if version is None:
                    # This process owns the store (folder lock), so the cache stays authoritative.
                    self._latest[key] = journey
        if journey is None or journey.tenant_id != tenant:
            suffix = f" v{version}" if version is not None else ""
            raise NotFoundError(f"journey {journey_id}{suffix} not found", journey_id=journey_id)
        return journey

    def _admit(self) -> None:
        """Admission control: refuse a write when too many are accepted and unanswered."""
        with self._admission_lock:
            if self._in_flight >= self.config.max_in_flight_requests:
                raise OverloadedError(
                    f"{self._in_flight} requests are in flight (limit "
                    f"{self.config.max_in_flight_requests}); retry shortly"
                )
            self._in_flight += 1

    def _release(self, _: Reply | None = None) -> None:
        with self._admission_lock:
            self._in_flight -= 1

    def _admitted(self, reply: Reply, send: Callable[[], None]) -> Reply:
        self._admit()
        try:
            send()
        except BaseException:
            self._release()
            raise
        return reply  # settling it releases the slot (see _new_reply)

    def in_flight(self) -> int:
        return self._in_flight

    def _ask(self, saga_id: str, command: Command) -> Reply:
        self._check_open()
        check_id(saga_id, "saga_id")
        assert command.reply is not None and command.tenant_id is not None
        key = scoped_key(command.tenant_id, saga_id)
        return self._admitted(command.reply, lambda: self._directory.send(key, command))

    def _wait(self, reply: Reply) -> Any:
        if not reply.done() and self._runtime.on_loop():
            raise SagaError(
                "a _sync method was called on the runtime's own event loop, where it would block "
                "the loop that answers it; await the async method instead"
            )
        try:
            return reply.result(timeout=self.config.reply_timeout_s)
        except TimeoutError:
            raise SagaError(
                f"no reply within {self.config.reply_timeout_s}s; the request may still apply"
            ) from None

    def _new_reply(
        self, is_async: bool, operation: str, release: Callable[[Reply], None] | None = None
    ) -> Reply:
        """A reply that reports its latency, frees its admission slot (and its idempotency key)."""
        started = time.perf_counter()
        observer = self.observer

        def timed(r: Reply) -> None:
            observer.on_request(operation, time.perf_counter() - started, r.exception() is None)

        callbacks = [timed, self._release] if release is None else [timed, self._release, release]
        loop = asyncio.get_running_loop() if is_async else None
        return Reply(loop=loop, on_settle=callbacks)

    def _idempotent(
        self,
        tenant: str,
        key: str | None,
        request: list[Any],
        submit: Callable[[tuple[str, str] | None, Callable[[Reply], None] | None], Reply],
    ) -> Reply:
        """Run ``submit`` at most once per (tenant, key); repeats replay the stored response.

        The response is stored by the saga actor in the same commit as the transition, so a
        retry after a crash either finds it or finds nothing applied.
        """
        if key is None:
            return submit(None, None)
        if not isinstance(key, str) or not 0 < len(key) <= 255:
            raise InvalidInputError("idempotency key must be a string of 1-255 characters")
        check_value(key, "idempotency key")
        store_key = scoped_key(tenant, key)
        fingerprint = hashlib.sha256(msgpack.packb(request, use_bin_type=True)).hexdigest()
        with self._idem_lock:
            if store_key in self._idem_in_flight:
                raise RequestInFlightError(
                    f"a request with idempotency key {key!r} is still in progress; retry later"
                )
            record = self.store.get_idempotency(store_key)
            if record is None:
                self._idem_in_flight.add(store_key)
        if record is not None:
            if record.get("fingerprint") != fingerprint:
                raise IdempotencyKeyReusedError(
                    f"idempotency key {key!r} was already used for a different request"
                )
            return Reply.resolved({**record["response"], "replayed": True})

        def release(_: Reply | None = None) -> None:
            with self._idem_lock:
                self._idem_in_flight.discard(store_key)

        try:
            return submit((store_key, fingerprint), release)
        except BaseException:
            release()
            raise

    # --- design ------------------------------------------------------------------------

    def _submit_design(
        self,
        journey_type: str,
        requirements: Mapping[str, Any] | None,
        compensation_handlers: Mapping[str, Any] | None,
        user_context: UserContext,
        journey_id: str | None,
        allow_unregistered_handlers: bool,
        idempotency_key: str | None = None,
    ) -> Reply:
        self._check_open()
        tenant = self._tenant(user_context)
        if requirements is not None and not isinstance(requirements, Mapping):
            raise InvalidInputError("requirements must be an object")
        _check_packable(requirements, "requirements")
        _check_packable(compensation_handlers, "compensation_handlers")
        request = [
            "design",
            journey_type,
            requirements,
            compensation_handlers,
            journey_id,
            bool(allow_unregistered_handlers),
        ]

        def submit(idem: tuple[str, str] | None, release: Callable[[Reply], None] | None) -> Reply:
            try:
                return Reply.resolved(
                    self._design(
                        tenant, journey_type, requirements, compensation_handlers, journey_id,
                        allow_unregistered_handlers, idem,
                    )
                )
            finally:
                if release is not None:
                    release(None)

        return self._idempotent(tenant, idempotency_key, request, submit)

    def _design(
        self,
        tenant: str,
        journey_type: str,
        requirements: Mapping[str, Any] | None,
        compensation_handlers: Mapping[str, Any] | None,
        journey_id: str | None,
        allow_unregistered_handlers: bool,
        idem: tuple[str, str] | None,
    ) -> dict[str, Any]:
        with self._design_lock:
            version = 1
            if journey_id is None:
                journey_id = "jrn_" + uuid.uuid4().hex
            else:
                check_id(journey_id, "journey_id")
                latest = self.store.load_journey(scoped_key(tenant, journey_id))
                if latest is not None:
                    version = int(latest["version"]) + 1
            journey = build_journey(
                journey_id=journey_id,
                version=version,
                journey_type=journey_type,
                tenant_id=tenant,
                requirements=requirements,
                compensation_handlers=compensation_handlers,
                created_at=self.clock.now(),
            )
            missing = self.handlers.missing(journey.handler_names())
            if missing and not allow_unregistered_handlers:
                raise HandlerMissingError(
                    f"no compensation handler is registered under {missing}; register them "
                    "first or pass allow_unregistered_handlers=True",
                    missing=missing,
                )
            record = journey.to_dict()
            response = {**record, "missing_handlers": missing}
            stored = (idem[0], {"fingerprint": idem[1], "response": response}) if idem else None
            self.store.write([JourneyWrite(record, idempotency=stored)])
        self._journeys[(scoped_key(tenant, journey_id), version)] = journey
        self._latest[scoped_key(tenant, journey_id)] = journey
        return response

    async def design_saga_journey(
        self,
        journey_type: str,
        requirements: Mapping[str, Any] | None = None,
        compensation_handlers: Mapping[str, Any] | None = None,
        user_context: UserContext = None,
        *,
        journey_id: str | None = None,
        allow_unregistered_handlers: bool = False,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Design (or re-version, when ``journey_id`` exists) a journey and store it durably."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            None,
            lambda: self.design_saga_journey_sync(
                journey_type,
                requirements,
                compensation_handlers,
                user_context,
                journey_id=journey_id,
                allow_unregistered_handlers=allow_unregistered_handlers,
                idempotency_key=idempotency_key,
            ),
        )

    def design_saga_journey_sync(
        self,
        journey_type: str,
        requirements: Mapping[str, Any] | None = None,
        compensation_handlers: Mapping[str, Any] | None = None,
        user_context: UserContext = None,
        *,
        journey_id: str | None = None,
        allow_unregistered_handlers: bool = False,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        return self._submit_design(
            journey_type,
            requirements,
            compensation_handlers,
            user_context,
            journey_id,
            allow_unregistered_handlers,
            idempotency_key,
        ).result()

    def get_journey_sync(
        self, journey_id: str, user_context: UserContext = None, *, version: int | None = None
    ) -> dict[str, Any]:
        return self._journey_for(journey_id, self._tenant(user_context), version).to_dict()

    async def get_journey(
        self, journey_id: str, user_context: UserContext = None, *, version: int | None = None
    ) -> dict[str, Any]:
        return self.get_journey_sync(journey_id, user_context, version=version)

    def list_journeys_sync(self, user_context: UserContext = None) -> list[dict[str, Any]]:
        return self.store.list_journeys(self._tenant(user_context))

    async def list_journeys(self, user_context: UserContext = None) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.list_journeys_sync, user_context)

    @staticmethod
    def journey_templates() -> list[dict[str, Any]]:
        return template_definitions()

    # --- execute -----------------------------------------------------------------------

    def _submit_execute(
        self,
        journey_id: str,
        user_id: str,
        context: Mapping[str, Any] | None,
        user_context: UserContext,
        saga_id: str | None,
        journey_version: int | None,
        idempotency_key: str | None = None,
        is_async: bool = False,
    ) -> Reply:
        self._check_open()
        tenant = self._tenant(user_context)
        check_id(user_id, "user_id")
        if context is not None and not isinstance(context, Mapping):
            raise InvalidInputError("context must be an object")
        ctx = dict(context or {})
        _check_packable(ctx, "context")
        journey = self._journey_for(journey_id, tenant, journey_version)
        missing = self.handlers.missing(journey.handler_names())
        if missing:
            raise HandlerMissingError(
                f"journey {journey_id} v{journey.version} needs compensation handlers that are "
                f"not registered: {missing}",
                missing=missing,
            )
        if saga_id is not None:
            check_id(saga_id, "saga_id")
        request = ["execute", journey_id, journey_version, user_id, ctx, saga_id]

        def submit(idem: tuple[str, str] | None, release: Callable[[Reply], None] | None) -> Reply:
            sid = saga_id if saga_id is not None else new_saga_id()
            reply = self._new_reply(is_async, "execute", release)
            command = Command(
                build=lambda now: StartSaga(sid, journey, user_id, ctx, now),
                reply=reply,
                tenant_id=tenant,
                idempotency=idem,
            )
            key = scoped_key(tenant, sid)
            return self._admitted(reply, lambda: self._directory.create(key, journey, command))

        return self._idempotent(tenant, idempotency_key, request, submit)

    async def execute_saga_journey(
        self,
        journey_id: str,
        user_id: str,
        context: Mapping[str, Any] | None = None,
        user_context: UserContext = None,
        *,
        saga_id: str | None = None,
        journey_version: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Start a saga of the journey's latest version (or ``journey_version``); returns its status."""
        return await self._submit_execute(
            journey_id, user_id, context, user_context, saga_id, journey_version, idempotency_key,
            is_async=True,
        ).wait()

    def execute_saga_journey_sync(
        self,
        journey_id: str,
        user_id: str,
        context: Mapping[str, Any] | None = None,
        user_context: UserContext = None,
        *,
        saga_id: str | None = None,
        journey_version: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        return self._wait(
            self._submit_execute(
                journey_id, user_id, context, user_context, saga_id, journey_version, idempotency_key
            )
        )

    # --- advance / compensate ----------------------------------------------------------

    def _submit_advance(
        self,
        saga_id: str,
        journey_id: str | None,
        user_id: str | None,
        step_result: Mapping[str, Any],
        user_context: UserContext,
        idempotency_key: str | None = None,
        is_async: bool = False,
    ) -> Reply:
        tenant = self._tenant(user_context)
        if journey_id is not None:
            check_id(journey_id, "journey_id")
        _check_packable(step_result, "step_result")
        result = dict(step_result) if isinstance(step_result, Mapping) else step_result

        def submit(idem: tuple[str, str] | None, release: Callable[[Reply], None] | None) -> Reply:
            command = Command(
                build=lambda now: ReportStep(result, now),
                reply=self._new_reply(is_async, "advance", release),
                tenant_id=tenant,
                journey_id=journey_id,
                idempotency=idem,
            )
            return self._ask(saga_id, command)

        request = ["advance", saga_id, journey_id, result]
        return self._idempotent(tenant, idempotency_key, request, submit)

    async def advance_saga_step(
        self,
        saga_id: str,
        journey_id: str | None = None,
        user_id: str | None = None,
        step_result: Mapping[str, Any] | None = None,
        user_context: UserContext = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Report the current milestone's result: ``{"status": "complete" | "failed", ...}``.

        Name the milestone with ``step_result["milestone_id"]`` (or pass ``idempotency_key``)
        to make retries safe: an exact repeat of a recorded report is answered with
        ``replayed: True`` and applies nothing.
        """
        return await self._submit_advance(
            saga_id, journey_id, user_id, step_result or {}, user_context, idempotency_key,
            is_async=True,
        ).wait()

    def advance_saga_step_sync(
        self,
        saga_id: str,
        journey_id: str | None = None,
        user_id: str | None = None,
        step_result: Mapping[str, Any] | None = None,
        user_context: UserContext = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        return self._wait(
            self._submit_advance(
                saga_id, journey_id, user_id, step_result or {}, user_context, idempotency_key
            )
        )

    def _submit_compensate(
        self,
        saga_id: str,
        reason: str,
        user_context: UserContext,
        idempotency_key: str | None = None,
        is_async: bool = False,
    ) -> Reply:
        tenant = self._tenant(user_context)
        if not isinstance(reason, str) or not reason:
            raise InvalidInputError("reason must be a non-empty string")
        _check_packable(reason, "reason")
        by = self._actor(user_context)

        def submit(idem: tuple[str, str] | None, release: Callable[[Reply], None] | None) -> Reply:
            command = Command(
                build=lambda now: AbortSaga(reason, by, now),
                reply=self._new_reply(is_async, "compensate", release),
                tenant_id=tenant,
                idempotency=idem,
            )
            return self._ask(saga_id, command)

        request = ["compensate", saga_id, reason]
        return self._idempotent(tenant, idempotency_key, request, submit)

    async def compensate_saga(
        self,
        saga_id: str,
        reason: str = "aborted by request",
        user_context: UserContext = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Abort an IN_PROGRESS saga: its completed milestones are compensated in reverse order."""
        return await self._submit_compensate(
            saga_id, reason, user_context, idempotency_key, is_async=True
        ).wait()

    def compensate_saga_sync(
        self,
        saga_id: str,
        reason: str = "aborted by request",
        user_context: UserContext = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        return self._wait(self._submit_compensate(saga_id, reason, user_context, idempotency_key))

    # --- operator actions on parked sagas ----------------------------------------------

    def _submit_operator(
        self, saga_id: str, user_context: UserContext, build: Callable[[str, float], Any], is_async: bool
    ) -> Reply:
        tenant = self._tenant(user_context)
        by = self._actor(user_context)
        command = Command(
            build=lambda now: build(by, now),
            reply=self._new_reply(is_async, "operator"),
            tenant_id=tenant,
        )
        return self._ask(saga_id, command)

    @staticmethod
    def _reason(reason: Any) -> str:
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidInputError("reason must be a non-empty string (it goes in the audit trail)")
        _check_packable(reason, "reason")
        return reason

    def retry_compensation_sync(
        self, saga_id: str, reason: str, user_context: UserContext = None
    ) -> dict[str, Any]:
        """Resume a parked rollback at the compensation that failed, with a fresh budget."""
        reason = self._reason(reason)
        return self._wait(
            self._submit_operator(
                saga_id, user_context, lambda by, now: RetryCompensation(by, reason, now), False
            )
        )

    async def retry_compensation(
        self, saga_id: str, reason: str, user_context: UserContext = None
    ) -> dict[str, Any]:
        reason = self._reason(reason)
        return await self._submit_operator(
            saga_id, user_context, lambda by, now: RetryCompensation(by, reason, now), True
        ).wait()

    def skip_compensation_sync(
        self, saga_id: str, milestone_id: str, reason: str, user_context: UserContext = None
    ) -> dict[str, Any]:
        """Record that the failed compensation of ``milestone_id`` was done by hand; continue."""
        reason = self._reason(reason)
        check_id(milestone_id, "milestone_id")
        return self._wait(
            self._submit_operator(
                saga_id,
                user_context,
                lambda by, now: SkipCompensation(milestone_id, by, reason, now),
                False,
            )
        )

    async def skip_compensation(
        self, saga_id: str, milestone_id: str, reason: str, user_context: UserContext = None
    ) -> dict[str, Any]:
        reason = self._reason(reason)
        check_id(milestone_id, "milestone_id")
        return await self._submit_operator(
            saga_id,
            user_context,
            lambda by, now: SkipCompensation(milestone_id, by, reason, now),
            True,
        ).wait()

    # --- reads -------------------------------------------------------------------------

    def _snapshot(self, saga_id: str, user_context: UserContext) -> tuple[str, dict[str, Any]]:
        """(internal key, committed snapshot) of the caller's tenant's saga ``saga_id``."""
        self._check_open()
        tenant = self._tenant(user_context)
        check_id(saga_id, "saga_id")
        key = scoped_key(tenant, saga_id)
        snap = self.store.load_saga(key)
        if snap is None or snap.get("tenant_id") != tenant:
            raise NotFoundError(f"saga {saga_id} not found", saga_id=saga_id)
        return key, snap

    def get_saga_status_sync(self, saga_id: str, user_context: UserContext = None) -> dict[str, Any]:
        """The committed status of a saga (what every acknowledged write has produced)."""
        return view_of(self._snapshot(saga_id, user_context)[1], self.store)

    async def get_saga_status(self, saga_id: str, user_context: UserContext = None) -> dict[str, Any]:
        return self.get_saga_status_sync(saga_id, user_context)

    def get_saga_execution_history_sync(
        self, saga_id: str, user_context: UserContext = None, *, after_seq: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        key, _ = self._snapshot(saga_id, user_context)
        return [entry_with_iso(e) for e in self.store.load_history(key, after_seq=after_seq, limit=limit)]

    async def get_saga_execution_history(
        self, saga_id: str, user_context: UserContext = None, *, after_seq: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            None,
            lambda: self.get_saga_execution_history_sync(
                saga_id, user_context, after_seq=after_seq, limit=limit
            ),
        )

    def list_sagas_sync(
        self,
        status: str | None = None,
        journey_type: str | None = None,
        user_context: UserContext = None,
        *,
        limit: int = 100,
        cursor: str | None = None,
        parked: bool | None = None,
        journey_id: str | None = None,
        user_id: str | None = None,
        updated_after: float | None = None,
        updated_before: float | None = None,
        order: str = "newest",
    ) -> dict[str, Any]:
        """A page of sagas by ``updated_at`` (``order``: "newest" first, or "oldest"), filtered:
        ``{"sagas": [...], "next_cursor"}``. ``updated_after`` is inclusive, ``updated_before``
        exclusive (epoch seconds). A cursor never repeats or skips a saga that did not change."""
        self._check_open()
        tenant = self._tenant(user_context)
        if status is not None and status not in SAGA_STATES:
            raise InvalidInputError(f"status must be one of {list(SAGA_STATES)}, got {status!r}")
        for name, value in (("journey_type", journey_type), ("journey_id", journey_id), ("user_id", user_id)):
            if value is not None:
                check_id(value, name)
        if parked is not None and not isinstance(parked, bool):
            raise InvalidInputError("parked must be true or false")
        for name, value in (("updated_after", updated_after), ("updated_before", updated_before)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise InvalidInputError(f"{name} must be a finite number of epoch seconds")
        if order not in ORDERS:
            raise InvalidInputError(f"order must be one of {list(ORDERS)}, got {order!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInputError("limit must be an integer from 1 to 1000")
        query = Query(tenant, status, parked, journey_type, journey_id, user_id,
                      updated_after, updated_before, order)
        snaps, next_cursor = self.store.find_sagas(query, limit=limit, after=cursor)
        views = []
        for snap in snaps:
            try:
                views.append(view_of(snap, self.store))
            except CorruptRecordError:
                continue  # quarantined; one bad record must not hide the others
        return {"sagas": views, "next_cursor": next_cursor}

    async def list_sagas(
        self,
        status: str | None = None,
        journey_type: str | None = None,
        user_context: UserContext = None,
        **filters: Any,
    ) -> dict[str, Any]:
        """Async twin of ``list_sagas_sync`` (same keyword filters)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            None, lambda: self.list_sagas_sync(status, journey_type, user_context, **filters)
        )

    def _submit_wait(
        self, saga_id: str, user_context: UserContext, version: int | None
    ) -> tuple[str, Future[dict[str, Any]]]:
        """(directory key, future of the awaited status); the future is done if already satisfied."""
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 0):
            raise InvalidInputError("version must be an integer >= 0")
        key, snap = self._snapshot(saga_id, user_context)
        fut = self._directory.add_waiter(key, version)
        snap = self.store.load_saga(key) or snap  # re-read after registering: nothing is missed
        view = view_of(snap, self.store)
        if view["status"] in ("COMPLETED", "FAILED") or (
            version is not None and int(view.get("version", 0)) > version
        ):
            self._directory.drop_waiter(key, fut)
            done: Future[dict[str, Any]] = Future()
            done.set_result(view)
            return key, done
        return key, fut

    def _waited_out(
        self, saga_id: str, key: str, user_context: UserContext, fut: Future[dict[str, Any]],
        timeout: float, return_on_timeout: bool,
    ) -> dict[str, Any]:
        self._directory.drop_waiter(key, fut)
        if return_on_timeout:
            return self.get_saga_status_sync(saga_id, user_context)
        raise SagaError(f"saga {saga_id} did not finish within {timeout}s") from None

    def wait_for_saga_sync(
        self,
        saga_id: str,
        user_context: UserContext = None,
        *,
        timeout: float = 30.0,
        version: int | None = None,
        return_on_timeout: bool = False,
    ) -> dict[str, Any]:
        """Block until the saga is COMPLETED or FAILED, or (with ``version``) its version is
        greater than ``version``; return its status. At the timeout: raise SagaError, or with
        ``return_on_timeout`` return the status as it is then."""
        key, fut = self._submit_wait(saga_id, user_context, version)
        try:
            return fut.result(timeout=timeout)
        except FutureTimeout:
            return self._waited_out(saga_id, key, user_context, fut, timeout, return_on_timeout)

    async def wait_for_saga(
        self,
        saga_id: str,
        user_context: UserContext = None,
        *,
        timeout: float = 30.0,
        version: int | None = None,
        return_on_timeout: bool = False,
    ) -> dict[str, Any]:
        """Async twin of ``wait_for_saga_sync`` (a long-poll: it never blocks the loop)."""
        key, fut = self._submit_wait(saga_id, user_context, version)
        if fut.done():
            return fut.result()
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
        except asyncio.TimeoutError:
            return self._waited_out(saga_id, key, user_context, fut, timeout, return_on_timeout)


GC_GEN0_THRESHOLD = 20_000


def tune_gc() -> None:
    """Move what start-up built out of the collector's sight and collect gen 0 less often."""
    gc.collect()
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, GC_GEN0_THRESHOLD), max(gen1, 20), max(gen2, 20))


def new_saga_id() -> str:
    """Time-ordered ids (ms timestamp, then 80 random bits): sagas started together share
    B-tree pages in LMDB, so a group commit dirties (and fsyncs) far fewer pages."""
    return f"saga_{time.time_ns() // 1_000_000:012x}{uuid.uuid4().hex[:20]}"


def _check_packable(value: Any, what: str) -> None:
    """Admissible (``values.check_value``: readable back through JSON and msgpack) and small."""
    check_value(value, what)
    packed = msgpack.packb(value, use_bin_type=True)
    if len(packed) > MAX_CONTEXT_BYTES:
        raise InvalidInputError(f"{what} is {len(packed)} bytes; the limit is {MAX_CONTEXT_BYTES}")


__all__ = ["SagaOrchestrator", "status_view"]
