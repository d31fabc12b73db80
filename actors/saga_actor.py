"""SagaActor: one per live saga; applies its messages serially, persists, then acts.

Order of work for every message: the pure core decides and evolves; the new snapshot and its
history entry go to the store's group-commit writer; only when the commit is confirmed is
the caller answered and are effects (compensators, timers) dispatched. While a write is in
flight, further requests wait in a local stash, so each saga sees its messages one at a time
and never acts on state that is not yet durable.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import pykka

from saga_journey.persistence.keys import local_id
from saga_journey.persistence.store import SagaWrite
from saga_journey.runtime import crashpoints
from saga_journey.runtime.codec import event_to_dict, state_to_dict, status_view
from saga_journey.runtime.errors import (
    InvalidInputError,
    NotFoundError,
    OverloadedError,
    RuntimeClosedError,
    SagaError,
    StorageError,
)
from saga_journey.runtime.isotime import with_iso
from saga_journey.runtime.handlers import CompensationContext, idempotency_key
from saga_journey.runtime.machine import (
    decide,
    evolve,
    fault,
    has_work_owed,
    next_wake,
    owed_effects,
)
from saga_journey.runtime.replies import Reply
from saga_journey.runtime.model import (
    ArmTimer,
    CompensationOutcome,
    Event,
    Journey,
    RunCompensation,
    SagaFaulted,
    SagaState,
    TimerFired,
)

from .compensator_actor import CompensatorActor, HandlerSlot
from .loop_actor import LoopActor
from .messages import (
    Command,
    Committed,
    CompensationReport,
    HandlerTimeout,
    Passivate,
    RunAttempt,
    RunOwed,
    TimerDue,
)
from .services import Services

log = logging.getLogger("saga_journey.saga_actor")

STORAGE_RETRY_S = 1.0
HANDLER_THREADS_BUSY_RETRY_S = 0.05  # all sync-handler threads taken: look again this soon  # after a failed write of a compensation outcome, re-run that attempt


@dataclass(slots=True)
class _InFlight:
    token: int
    state: SagaState
    event: Event
    reply: Reply | None
    response: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Fault:
    """Park the saga after an unexpected error (queued when a write was in flight)."""

    reason: str
    while_handling: str


def _resolve(reply: Reply | None, value: Any = None, error: BaseException | None = None) -> None:
    if reply is None or reply.done():
        return
    if error is not None:
        reply.set_exception(error)
    else:
        reply.set_result(value)


class SagaActor(LoopActor):
    """The actor of one live saga; runs on the runtime loop, not a thread of its own."""

    def __init__(
        self, services: Services, saga_id: str, journey: Journey | None, state: SagaState | None
    ) -> None:
        self._stash: deque[Any] = deque()  # before the inbox is built: it counts these too
        super().__init__(services.runtime)
        self._svc = services
        self._saga_id = saga_id  # the directory's key (layout.scoped_key), not the plain id
        self._id = local_id(saga_id)  # what errors show
        self._journey = journey
        self._state = state
        self._inflight: _InFlight | None = None
        self._token = 0
        self._compensator: tuple[str, CompensatorActor] | None = None
        self._slot: HandlerSlot | None = None  # the running compensator's sync-call slot
        self._timeout_timer: Any = None
        self._running: tuple[str, int] | None = None  # (milestone, attempt) handed to a compensator
        self._scheduled: tuple[str, int] | None = None  # (milestone, attempt) waiting on a timer
        self._armed: set[tuple[str, float]] = set()  # durable timers armed by this activation
        self._last_active = time.monotonic()

    # --- mailbox -----------------------------------------------------------------------

    def _held_messages(self) -> deque[Any]:
        return self._stash  # stashed requests count in the mailbox depth

    def on_receive(self, message: Any) -> None:
        try:
            self._receive(message)
        except Exception as exc:  # never let one bad message kill or strand the saga
            self._fault(message, exc)

    def _receive(self, message: Any) -> None:
        if isinstance(message, Passivate):
            self._maybe_passivate(message.idle_for_s)
            return
        self._last_active = time.monotonic()
        if isinstance(message, Committed):
            self._on_committed(message)
        elif isinstance(message, RunOwed):
            self._dispatch_effects()
        elif self._inflight is not None:
            if isinstance(message, Command) and self._queued_commands() >= self._svc.config.max_queued_per_saga:
                _resolve(message.reply, error=OverloadedError(
                    f"saga {self._id} has {self._svc.config.max_queued_per_saga} requests "
                    "queued; retry shortly", saga_id=self._id))
                return
            self._stash.append(message)
        else:
            self._handle(message)

    def _queued_commands(self) -> int:
        return sum(1 for m in self._stash if isinstance(m, Command))

    def _handle(self, message: Any) -> None:
        if isinstance(message, Command):
            self._handle_command(message)
        elif isinstance(message, CompensationReport):
            self._handle_report(message.outcome)
        elif isinstance(message, TimerDue):
            self._handle_timer(message)
        elif isinstance(message, HandlerTimeout):
            self._handle_handler_timeout(message)
        elif isinstance(message, _Fault):
            self._park(message)

    def _handle_handler_timeout(self, msg: HandlerTimeout) -> None:
        """Abandon an attempt that ran too long; the core records it as a failed attempt (a
        late outcome of the abandoned call is then stale and ignored by the core)."""
        if self._running != (msg.milestone_id, msg.attempt) or self._state is None:
            return
        comp = self._compensator
        if comp is not None and comp[0] == msg.milestone_id:
            if self._slot is not None and self._slot.abandon():
                log.warning(
                    "saga %s: compensation handler for %s (attempt %d) still running after "
                    "%.3gs; its thread is abandoned (%d abandoned now)", self._saga_id,
                    msg.milestone_id, msg.attempt, msg.after_s, self._svc.abandoned.count(),
                )
            self._stop_compensator()
        self._handle_report(
            CompensationOutcome(
                milestone_id=msg.milestone_id,
                attempt=msg.attempt,
                ok=False,
                at=self._svc.clock.now(),
                duration_s=msg.after_s,
                error=f"HandlerTimeout: handler did not return within {msg.after_s:g}s; abandoned",
                retryable=True,
            )
        )

    def _handle_timer(self, due: TimerDue) -> None:
        state, journey = self._state, self._journey
        if state is None or journey is None:
            return
        self._armed.discard((due.kind, due.due))
        fired = TimerFired(due.kind, due.due, self._svc.clock.now())
        if fired.at < fired.due:  # woken early (e.g. re-armed): arm again for the real time
            self._dispatch_effects()
            return
        decision = decide(journey, state, fired)
        if decision.event is not None:
            self._persist(decision.event, None)

    def _handle_command(self, cmd: Command) -> None:
        state = self._state
        try:
            if state is not None and cmd.tenant_id is not None and cmd.tenant_id != state.tenant_id:
                raise NotFoundError(f"saga {self._id} not found", saga_id=self._id)
            if state is not None and cmd.journey_id is not None and cmd.journey_id != state.journey_id:
                raise InvalidInputError(
                    f"saga {self._id} runs journey {state.journey_id!r}, "
                    f"not {cmd.journey_id!r}",
                    expected=state.journey_id,
                )
            message = cmd.build(self._svc.clock.now())
            journey = self._journey or getattr(message, "journey", None)
            assert journey is not None
            decision = decide(journey, state, message)
        except SagaError as exc:
            _resolve(cmd.reply, error=exc)
            self._stop_if_never_started()
            return
        if self._journey is None:
            self._journey = journey
        if decision.event is None:
            assert state is not None
            _resolve(cmd.reply, {**with_iso(status_view(state)), "replayed": True, "note": decision.note})
            return
        self._persist(decision.event, cmd.reply, cmd.idempotency)

    def _handle_report(self, outcome: CompensationOutcome) -> None:
        state, journey = self._state, self._journey
        assert state is not None and journey is not None
        if self._running == (outcome.milestone_id, outcome.attempt):
            self._running = None
            if self._timeout_timer is not None:
                self._timeout_timer.cancel()
                self._timeout_timer = None
        self._svc.observer.on_compensation_attempt(
            state.journey_type, outcome.milestone_id, outcome.ok, outcome.duration_s
        )
        decision = decide(journey, state, outcome)
        if decision.event is not None:
            self._persist(decision.event, None)

    # --- persistence -------------------------------------------------------------------

    def _persist(
        self, event: Event, reply: Reply | None, idem: tuple[str, str] | None = None
    ) -> None:
        prev = self._state
        new = evolve(prev, event)
        # The status view is built only for someone who reads it (a caller, a stored replay).
        response: dict[str, Any] = {}
        if reply is not None or idem:
            response = with_iso(status_view(new))  # a fresh dict: extended in place
            response["event"] = event.kind
        write = SagaWrite(
            saga_id=new.saga_id,
            snapshot=state_to_dict(new),
            events=(event_to_dict(event, seq=new.version, status_after=new.status),),
            first_seq=new.version,
            tenant_id=new.tenant_id,
            journey_type=new.journey_type,
            status=new.status,
            prev_status=prev.status if prev is not None else None,
            owed=has_work_owed(new),
            wake_at=next_wake(new),
            retention_s=self._journey.retention_s if self._journey is not None else None,
            idempotency=(
                (idem[0], {"fingerprint": idem[1], "response": response}) if idem else None
            ),
        )
        self._token += 1
        token = self._token
        self._inflight = _InFlight(token, new, event, reply, response)

        def committed(error: BaseException | None) -> None:
            try:
                self.send_now(Committed(token, error))  # handed back on the loop: handle it now
            except pykka.ActorDeadError:
                log.error("saga %s stopped before its commit was confirmed", self._saga_id)

        crashpoints.hit(crashpoints.AFTER_DECIDE)
        try:
            self._svc.store.submit([write], committed)
        except SagaError as exc:
            self._inflight = None
            _resolve(reply, error=exc)
            self._stop_if_never_started()
        except Exception:
            self._inflight = None  # not submitted: no confirmation will come (the fault parks)
            raise

    def _on_committed(self, msg: Committed) -> None:
        inflight = self._inflight
        if inflight is None or inflight.token != msg.token:
            log.error("saga %s: unexpected commit confirmation %s", self._saga_id, msg.token)
            return
        self._inflight = None
        if msg.error is not None:
            error = msg.error if isinstance(msg.error, SagaError) else StorageError(str(msg.error))
            _resolve(inflight.reply, error=error)
            if isinstance(inflight.event, SagaFaulted):  # never spin on a park that fails
                log.error("saga %s: could not record its internal error (%s); it stays as "
                          "stored until activated again", self._saga_id, msg.error)
            elif inflight.reply is None and self._state is not None:
                # A compensation outcome was not recorded: run that attempt again later.
                self._running = None
                self._wake_after(STORAGE_RETRY_S)
            self._stop_if_never_started()
        else:
            if inflight.reply is not None:
                crashpoints.hit(crashpoints.BEFORE_REPLY)
            elif inflight.event.kind.startswith("compensation"):
                crashpoints.hit(crashpoints.AFTER_COMP_RECORDED)
            self._state = state = inflight.state
            self._svc.observer.on_transition(state, inflight.event)
            _resolve(inflight.reply, inflight.response)
            self._svc.directory.notify(self._saga_id, state)
            if state.is_terminal:
                self._stop_compensator()
            self._dispatch_effects()
        while self._stash and self._inflight is None:
            self._handle(self._stash.popleft())
        if self._state is not None and self._state.is_terminal:
            self._maybe_passivate(0.0)

    # --- unexpected errors -------------------------------------------------------------

    def _fault(self, message: Any, exc: Exception) -> None:
        """An unexpected error: the caller gets it, and the saga is parked with it recorded
        (never dropped with nothing scheduled). If parking fails too: log and stop."""
        log.exception("saga %s: unexpected error handling %r", self._saga_id, message)
        if isinstance(message, Command):
            _resolve(message.reply, error=exc)
        state = self._state
        journey_type = state.journey_type if state is not None else "unknown"
        try:
            self._svc.observer.on_internal_error(journey_type)
        except Exception:
            log.exception("observer hook on_internal_error failed")
        if isinstance(message, _Fault):
            log.error("saga %s: could not park after an internal error; giving up", self._saga_id)
            return
        what = type(message).__name__
        parking = _Fault(f"internal error while handling {what}: {type(exc).__name__}: {exc}", what)
        if self._inflight is not None:
            self._stash.appendleft(parking)  # parked once the pending write is confirmed
            return
        try:
            self._park(parking)
        except Exception:
            log.exception("saga %s: could not park after an internal error; giving up", self._saga_id)

    def _park(self, parking: _Fault) -> None:
        self._stop_compensator()
        self._running = self._scheduled = None
        if self._timeout_timer is not None:
            self._timeout_timer.cancel()
            self._timeout_timer = None
        now = self._svc.clock.now()
        event = fault(self._journey, self._state, parking.reason, parking.while_handling, now)
        if event is not None:
            self._persist(event, None)
            return
        self._stop_if_never_started()
        while self._stash and self._inflight is None:
            self._handle(self._stash.popleft())

    # --- effects -----------------------------------------------------------------------

    def _dispatch_effects(self) -> None:
        state, journey = self._state, self._journey
        if state is None or journey is None or self._svc.closing.is_set():
            return
        for effect in owed_effects(journey, state):
            if isinstance(effect, RunCompensation):
                self._run_compensation(state, effect)
            elif isinstance(effect, ArmTimer):
                self._arm(effect)

    def _arm(self, timer: ArmTimer) -> None:
        key = (timer.kind, timer.due)
        if key in self._armed:
            return
        self._armed.add(key)
        self._svc.directory.send_at(timer.due, self._saga_id, TimerDue(timer.kind, timer.due))

    def _wake_after(self, delay: float) -> None:
        """Re-dispatch owed effects after ``delay`` (through the directory: may re-activate)."""
        self._svc.directory.send_at(self._svc.clock.now() + delay, self._saga_id, RunOwed())

    def _run_compensation(self, state: SagaState, effect: RunCompensation) -> None:
        key = (effect.milestone_id, effect.attempt)
        if self._running == key:
            return
        if effect.not_before is not None and effect.not_before > self._svc.clock.now():
            if self._scheduled != key:
                self._scheduled = key
                self._svc.directory.send_at(effect.not_before, self._saga_id, RunOwed())
            return
        self._scheduled = None
        self._running = key
        handler = self._svc.handlers.get(effect.handler)
        if handler is None:
            self._fail_attempt_now(effect, f"compensation handler {effect.handler!r} is not registered")
            return
        is_async = self._svc.handlers.is_async(handler)
        comp = self._compensator
        same = comp is not None and comp[0] == effect.milestone_id  # a retry of this milestone
        slot = None
        if not is_async:
            if self._svc.abandoned.full():
                self._fail_attempt_now(effect, (
                    f"{self._svc.abandoned.count()} hung compensation handler threads are "
                    f"abandoned (limit {self._svc.abandoned.limit}); not starting another"))
                return
            slot = self._slot if same and self._slot is not None else HandlerSlot(self._svc.abandoned)
            if not slot.reserve():  # every handler thread is busy: try again shortly
                self._running = None
                self._wake_after(HANDLER_THREADS_BUSY_RETRY_S)
                return
        if same:
            assert comp is not None
            comp[1].send_now(RunAttempt(effect.attempt))
        else:
            done = state.recorded(effect.milestone_id)
            ctx = CompensationContext(
                saga_id=state.saga_id,
                journey_id=state.journey_id,
                journey_type=state.journey_type,
                tenant_id=state.tenant_id,
                milestone_id=effect.milestone_id,
                # From the internal key: two tenants' order-42 must not share a handler's key.
                idempotency_key=idempotency_key(self._saga_id, effect.milestone_id),
                step_result=dict(done.result) if done else {},
                context=state.context,
                attempt=effect.attempt,
            )
            self._slot = slot
            if comp is None:  # the rollback's first milestone: its compensator
                me = self
                actor = CompensatorActor.spawn(
                    self._svc.runtime,
                    handler=handler,
                    context=ctx,
                    report=lambda outcome: me.send_now(CompensationReport(outcome)),
                    pool=self._svc.pool,
                    clock=self._svc.clock,
                    slot=slot,
                )
                self._compensator = (effect.milestone_id, actor)
                actor.send_now(RunAttempt(effect.attempt))
            else:  # the previous milestone's outcome is recorded: the same actor runs the next
                self._compensator = (effect.milestone_id, comp[1])
                comp[1].send_now(RunAttempt(effect.attempt, handler, ctx, slot))
        timeout = effect.retry.handler_timeout_s
        if timeout is None:
            timeout = self._svc.config.handler_timeout_s
        if timeout is not None:
            message = HandlerTimeout(effect.milestone_id, effect.attempt, timeout)
            self._timeout_timer = self._svc.directory.send_at(
                self._svc.clock.now() + timeout, self._saga_id, message
            )

    def _fail_attempt_now(self, effect: RunCompensation, error: str) -> None:
        self.actor_ref.tell(
            CompensationReport(
                CompensationOutcome(
                    milestone_id=effect.milestone_id,
                    attempt=effect.attempt,
                    ok=False,
                    at=self._svc.clock.now(),
                    error=error,
                )
            )
        )

    def _stop_compensator(self) -> None:
        if self._compensator is not None:
            self._compensator[1].actor_ref.stop(block=False)
            self._compensator = None
            self._slot = None

    # --- lifecycle ---------------------------------------------------------------------

    def _stop_if_never_started(self) -> None:
        if self._state is None and self._inflight is None:
            self._svc.directory.remove(self._saga_id, self)
            self.stop()

    def _maybe_passivate(self, idle_for_s: float) -> None:
        if self._inflight is not None or self._stash or self._running is not None:
            return
        if time.monotonic() - self._last_active < idle_for_s:
            return
        if self._svc.directory.try_passivate(self._saga_id, self):
            self._stop_compensator()
            self.stop()

    def on_stop(self) -> None:
        self._stop_compensator()
        closed = RuntimeClosedError("the runtime stopped before this request was answered")
        if self._inflight is not None:
            _resolve(self._inflight.reply, error=closed)
        for message in self._stash:
            if isinstance(message, Command):
                _resolve(message.reply, error=closed)
        self._svc.observer.on_actor_passivated()
