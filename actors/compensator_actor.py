"""CompensatorActor: runs one milestone's compensation handler and reports each attempt back."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Executor
from typing import Any, Callable

from saga_journey.runtime import crashpoints
from saga_journey.runtime.clock import Clock
from saga_journey.runtime.errors import NonRetryableError
from saga_journey.runtime.handlers import CompensationContext, Handler, HandlerRegistry
from saga_journey.runtime.model import CompensationOutcome, replace
from saga_journey.runtime.values import as_text

from .loop_actor import LoopActor, RuntimeLoop
from .messages import RunAttempt

log = logging.getLogger("saga_journey.compensator")


def describe(exc: BaseException) -> str:
    """The error as recorded in history and status: always storable and readable (values.as_text)."""
    text = as_text(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class AbandonedThreads:
    """Bounds the threads sync compensation handlers occupy: calls running plus calls abandoned
    after their timeout (a Python thread cannot be killed; it stays until the call returns)."""

    def __init__(self, limit: int, max_threads: int = 256) -> None:
        self.limit = limit  # abandoned calls beyond which new attempts fail at once
        self.max_threads = max_threads  # running + abandoned calls, a hard bound
        self._lock = threading.Lock()
        self._count = 0
        self._occupied = 0

    def count(self) -> int:
        return self._count

    def occupied(self) -> int:
        return self._occupied

    def full(self) -> bool:
        return self._count >= self.limit

    def _reserve(self) -> bool:
        with self._lock:
            if self._occupied >= self.max_threads:
                return False
            self._occupied += 1
            return True

    def _release(self, abandoned: bool) -> None:
        with self._lock:
            self._occupied -= 1
            if abandoned:
                self._count -= 1

    def _abandon(self) -> None:
        with self._lock:
            self._count += 1


class HandlerSlot:
    """One compensator's sync-call slot, shared with its saga actor: the saga reserves a thread
    before each attempt; the call's return (or the compensator's stop, if it never ran) gives
    it back; a timeout marks the running call abandoned (it keeps its thread until it returns)."""

    def __init__(self, tracker: AbandonedThreads) -> None:
        self._tracker = tracker
        self._lock = threading.Lock()
        self._reserved = False
        self._in_handler = False
        self._abandoned = False

    def reserve(self) -> bool:
        with self._lock:
            if self._reserved:
                return True
            self._reserved = self._tracker._reserve()
            return self._reserved

    def enter(self) -> None:
        with self._lock:
            self._in_handler = True

    def leave(self) -> None:
        with self._lock:
            self._in_handler = False
            reserved, self._reserved = self._reserved, False
            abandoned, self._abandoned = self._abandoned, False
        if reserved:
            self._tracker._release(abandoned)

    def cancel(self) -> None:
        """The compensator stops: give back a reservation that no call is using."""
        with self._lock:
            if self._in_handler or not self._reserved:
                return
            self._reserved = False
        self._tracker._release(False)

    def abandon(self) -> bool:
        """Mark a running sync call abandoned; False if no call is running."""
        with self._lock:
            if not self._in_handler or self._abandoned:
                return False
            self._abandoned = True
        self._tracker._abandon()
        return True


class CompensatorActor(LoopActor):
    """Runs a saga's compensation handlers, on the runtime loop (no thread of its own).

    One serves a rollback milestone after milestone (a ``RunAttempt`` with a new handler and
    context retargets it once the previous milestone's outcome is recorded), so a rollback
    starts one pykka actor, not one per milestone (a start and stop costs ~100 us: a uuid, an
    Event, two registry scans and three eagerly formatted debug logs).

    Async handlers run on the loop as tasks; sync handlers on the runtime's bounded handler
    pool (``HandlerSlot`` reserves the thread). Retry timing is not decided here: each attempt's
    outcome goes back to the saga actor, whose pure core records it durably and decides whether
    and when the next attempt runs.
    """

    def __init__(
        self,
        runtime: RuntimeLoop,
        *,
        handler: Handler,
        context: CompensationContext,
        report: Callable[[CompensationOutcome], None],
        pool: Executor,
        clock: Clock,
        slot: HandlerSlot | None = None,
    ) -> None:
        super().__init__(runtime)
        self._slot = slot
        self._task: asyncio.Future[Any] | None = None
        self._handler = handler
        self._context = context
        self._report = report
        self._pool = pool
        self._clock = clock
        self._is_async = HandlerRegistry.is_async(handler)

    def on_receive(self, message: Any) -> None:
        if isinstance(message, RunAttempt):
            if message.handler is not None:
                self._retarget(message.handler, message.context, message.slot)
            self._run(message.attempt)

    def _retarget(self, handler: Handler, context: CompensationContext, slot: HandlerSlot | None) -> None:
        """The next milestone (the previous one's attempt has finished and been recorded)."""
        if self._slot is not None and self._slot is not slot:
            self._slot.cancel()  # gives back a reservation no call used (none, normally)
        self._task = None
        self._handler, self._context, self._slot = handler, context, slot
        self._is_async = HandlerRegistry.is_async(handler)

    def _run(self, attempt: int) -> None:
        ctx = self._context
        if ctx.attempt != attempt:
            ctx = replace(ctx, attempt=attempt)
        started = time.perf_counter()
        crashpoints.hit(crashpoints.BEFORE_HANDLER)
        loop = self._runtime.loop
        if self._is_async:
            try:
                call = self._handler(ctx)
                task: asyncio.Future[Any] = loop.create_task(self._attempt(call, ctx, started))
            except BaseException as exc:  # the call itself failed before returning a coroutine
                self._finish(ctx, started, exc)
                return
            self._task = task
            return
        else:
            task = loop.run_in_executor(self._pool, _call_sync, self._handler, ctx, self._slot)
        self._task = task
        task.add_done_callback(lambda f: self._done(ctx, started, f))

    async def _attempt(self, call: Any, ctx: CompensationContext, started: float) -> None:
        """An async attempt, reported from inside its task as soon as the handler returns (a
        done callback would cost one more loop turn per compensation). Cancelled (abandoned
        after its timeout, or the compensator stopped): nothing is reported."""
        try:
            await call
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # user code: every other failure becomes a report
            crashpoints.hit(crashpoints.AFTER_HANDLER)
            self._finish(ctx, started, exc)
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt, SystemExit: reported, then left to stop the loop
            return
        crashpoints.hit(crashpoints.AFTER_HANDLER)
        self._finish(ctx, started, None)

    def _done(self, ctx: CompensationContext, started: float, future: asyncio.Future[Any]) -> None:
        """A sync attempt's pool future is done (on the loop)."""
        if future.cancelled():
            return  # abandoned after its timeout; the saga already recorded the attempt
        crashpoints.hit(crashpoints.AFTER_HANDLER)
        exc = future.exception()
        if exc is None:
            exc = future.result()  # _call_sync returns the handler's exception, if any
        self._finish(ctx, started, exc)

    def on_stop(self) -> None:
        if self._task is not None and self._is_async:
            self._task.cancel()
        if self._slot is not None:
            self._slot.cancel()

    def _finish(self, ctx: CompensationContext, started: float, exc: BaseException | None) -> None:
        duration = time.perf_counter() - started
        if exc is not None and not isinstance(exc, Exception):
            log.warning("compensation handler raised %r", exc)
        try:
            self._report(
                CompensationOutcome(
                    milestone_id=ctx.milestone_id,
                    attempt=ctx.attempt,
                    ok=exc is None,
                    at=self._clock.now(),
                    duration_s=duration,
                    error=None if exc is None else describe(exc),
                    retryable=not isinstance(exc, NonRetryableError),
                )
            )
        except Exception:
            log.exception("could not report compensation outcome for %s", ctx.saga_id)


def _call_sync(handler: Handler, ctx: CompensationContext, slot: HandlerSlot | None) -> BaseException | None:
    """Run a sync handler on a pool thread; its failure is returned, not raised."""
    if slot is not None:
        slot.enter()
    try:
        handler(ctx)
    except BaseException as exc:  # handlers are user code: every failure becomes a report
        return exc
    finally:
        if slot is not None:
            slot.leave()
    return None
