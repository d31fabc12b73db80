"""CompensatorActor: runs one milestone's compensation handler and reports each attempt back."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import pykka

from saga_journey.runtime.clock import Clock
from saga_journey.runtime.errors import NonRetryableError
from saga_journey.runtime.handlers import CompensationContext, Handler, HandlerRegistry
from saga_journey.runtime.model import CompensationOutcome

from .async_runner import AsyncRunner
from .messages import RunAttempt

log = logging.getLogger("saga_journey.compensator")


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class CompensatorActor(pykka.ThreadingActor):
    """One per compensation. Sync handlers run on this actor's thread, async ones on the runner.

    Retry timing is not decided here: each attempt's outcome goes back to the saga actor, whose
    pure core records it durably and decides whether and when the next attempt runs.
    """

    use_daemon_thread = True

    def __init__(
        self,
        *,
        handler: Handler,
        context: CompensationContext,
        report: Callable[[CompensationOutcome], None],
        runner: AsyncRunner,
        clock: Clock,
    ) -> None:
        super().__init__()
        self._handler = handler
        self._context = context
        self._report = report
        self._runner = runner
        self._clock = clock
        self._is_async = HandlerRegistry.is_async(handler)

    def on_receive(self, message: Any) -> None:
        if isinstance(message, RunAttempt):
            self._run(message.attempt)

    def _run(self, attempt: int) -> None:
        ctx = CompensationContext(**{**_fields(self._context), "attempt": attempt})
        started = time.perf_counter()
        if self._is_async:
            try:
                future = self._runner.submit(self._handler(ctx))
            except BaseException as exc:  # the call itself failed before returning a coroutine
                self._finish(attempt, started, exc)
                return
            future.add_done_callback(lambda f: self._finish(attempt, started, f.exception()))
            return
        try:
            self._handler(ctx)
        except BaseException as exc:  # handlers are user code: every failure becomes a report
            self._finish(attempt, started, exc)
        else:
            self._finish(attempt, started, None)

    def _finish(self, attempt: int, started: float, exc: BaseException | None) -> None:
        duration = time.perf_counter() - started
        if exc is not None and not isinstance(exc, Exception):
            log.warning("compensation handler raised %r", exc)
        try:
            self._report(
                CompensationOutcome(
                    milestone_id=self._context.milestone_id,
                    attempt=attempt,
                    ok=exc is None,
                    at=self._clock.now(),
                    duration_s=duration,
                    error=None if exc is None else describe(exc),
                    retryable=not isinstance(exc, NonRetryableError),
                )
            )
        except Exception:
            log.exception("could not report compensation outcome for %s", self._context.saga_id)


def _fields(ctx: CompensationContext) -> dict[str, Any]:
    return {name: getattr(ctx, name) for name in ctx.__dataclass_fields__}
