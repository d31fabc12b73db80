"""Directory: saga key -> live SagaActor; activates from the snapshot on demand, passivates idle ones.

Sagas are named by their internal key (``layout.scoped_key(tenant, saga_id)``), never by the
plain id, so two tenants' ``order-42`` are two sagas; errors show the plain id.

Every message to a saga goes through ``send``, under the lock of the saga's shard. A saga
actor passivates itself only through ``try_passivate``, which takes the same lock and checks
that its mailbox is empty: so no message can slip into a mailbox that is about to stop.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable

import pykka

from saga_journey.persistence.keys import local_id, scoped_key
from saga_journey.runtime.codec import state_from_dict, status_view
from saga_journey.runtime.isotime import with_iso
from saga_journey.runtime.errors import (
    ConflictError,
    CorruptRecordError,
    NotFoundError,
    OverloadedError,
    RuntimeClosedError,
)
from saga_journey.runtime.model import Journey, SagaState
from saga_journey.runtime.timers import TimerHandle

from .loop_actor import LoopInbox
from .messages import Passivate, RunOwed
from .saga_actor import SagaActor
from .services import Services

log = logging.getLogger("saga_journey.directory")

SHARDS = 64
EAGER_PASSIVATION_INTERVAL_S = 0.1


class Directory:
    def __init__(self, make_services: Callable[[Directory], Services]) -> None:
        """``make_services(directory)``: what the actors share, this directory among it."""
        self._svc = make_services(self)
        self._shards: list[tuple[threading.Lock, dict[str, pykka.ActorRef[Any]]]] = [
            (threading.Lock(), {}) for _ in range(SHARDS)
        ]
        self._count_lock = threading.Lock()
        self._live = 0
        self._activations = 0
        # saga id -> [(version to pass, or None: terminal only), future of its status view]
        self._waiters: dict[str, list[tuple[int | None, Future[dict[str, Any]]]]] = {}
        self._waiters_lock = threading.Lock()
        self._last_eager = 0.0
        self._reaper: TimerHandle | None = None

    @property
    def services(self) -> Services:
        return self._svc

    def _shard(self, saga_id: str) -> tuple[threading.Lock, dict[str, pykka.ActorRef[Any]]]:
        return self._shards[hash(saga_id) % SHARDS]

    # --- sending -----------------------------------------------------------------------

    def send(self, saga_id: str, message: Any, *, activate_only_if_stored: bool = False) -> None:
        """Deliver ``message`` to the saga's actor, activating it from its snapshot if needed.

        Raises NotFoundError if the saga is neither live nor stored.
        """
        if self._svc.closing.is_set():
            raise RuntimeClosedError("the runtime is closing")
        lock, live = self._shard(saga_id)
        with lock:
            ref = live.get(saga_id)
            if ref is None:
                ref = self._activate(saga_id, live)
                if ref is None:
                    if activate_only_if_stored:
                        return
                    raise NotFoundError(f"saga {local_id(saga_id)} not found", saga_id=local_id(saga_id))
            ref.tell(message)

    def send_at(self, due: float, saga_id: str, message: Any) -> TimerHandle:
        """Deliver ``message`` at clock time ``due``, activating the saga then if it is passivated.

        Timers hold the saga id, not an actor: a pending timer never keeps a saga live.
        """
        return self._svc.timers.call_at(
            due, lambda: self.send(saga_id, message, activate_only_if_stored=True)
        )

    def create(self, saga_id: str, journey: Journey, message: Any, *, fresh: bool = False) -> None:
        """Start the actor of a new saga and hand it its first message (the start command).

        ``fresh``: the id was just generated (time-ordered, 80 random bits), so the store is
        not read to look for a saga under it; the writer still refuses to overwrite one."""
        lock, live = self._shard(saga_id)
        with lock:
            if saga_id in live or (not fresh and self._svc.store.load_saga(saga_id) is not None):
                plain = local_id(saga_id)
                raise ConflictError(f"saga {plain} already exists", saga_id=plain)
            self._check_capacity()
            ref = SagaActor.start(self._svc, saga_id, journey, None)
            live[saga_id] = ref
            self._count(+1)
            ref.tell(message)

    def _activate(self, saga_id: str, live: dict[str, pykka.ActorRef[Any]]) -> pykka.ActorRef[Any] | None:
        snapshot = self._svc.store.load_saga(saga_id)
        if snapshot is None:
            return None
        state = state_of(self._svc.store, saga_id, snapshot)
        journey = self._svc.load_journey(
            scoped_key(state.tenant_id, state.journey_id), state.journey_version
        )
        self._check_capacity()
        ref = SagaActor.start(self._svc, saga_id, journey, state)
        live[saga_id] = ref
        self._count(+1)
        self._svc.observer.on_actor_activated()
        ref.tell(RunOwed())
        return ref

    def _check_capacity(self) -> None:
        cfg = self._svc.config
        live = self._live
        if live >= cfg.hard_live_actor_limit:
            self._passivate_idle_eagerly()
            raise OverloadedError(
                f"{live} sagas are live (limit {cfg.hard_live_actor_limit}); retry shortly"
            )
        if live >= cfg.max_live_actors:
            self._passivate_idle_eagerly()

    def _count(self, delta: int) -> None:
        with self._count_lock:
            self._live += delta
            if delta > 0:
                self._activations += 1

    # --- passivation -------------------------------------------------------------------

    def try_passivate(self, saga_id: str, actor: SagaActor) -> bool:
        lock, live = self._shard(saga_id)
        with lock:
            if live.get(saga_id) is not actor.actor_ref or not actor.actor_inbox.empty():
                return False
            del live[saga_id]
        self._count(-1)
        return True

    def remove(self, saga_id: str, actor: SagaActor) -> None:
        lock, live = self._shard(saga_id)
        with lock:
            if live.get(saga_id) is actor.actor_ref:
                del live[saga_id]
                self._count(-1)

    def _passivate_idle_eagerly(self) -> None:
        now = time.monotonic()
        if now - self._last_eager < EAGER_PASSIVATION_INTERVAL_S:
            return
        self._last_eager = now
        # Called with a shard lock held: broadcasting takes every shard lock, so hand it to the
        # timer thread rather than deadlock on our own (non-reentrant) lock or another's.
        message = Passivate(idle_for_s=min(1.0, self._svc.config.idle_passivate_s))
        self._svc.timers.call_later(0.0, lambda: self.broadcast(message))

    def broadcast(self, message: Any) -> None:
        for lock, live in self._shards:
            with lock:
                refs = list(live.values())
            for ref in refs:
                try:
                    ref.tell(message)
                except pykka.ActorDeadError:
                    pass

    def start_reaper(self) -> None:
        interval = max(0.05, min(self._svc.config.idle_passivate_s / 2, 5.0))

        def reap() -> None:
            if self._svc.closing.is_set():
                return
            self.broadcast(Passivate(idle_for_s=self._svc.config.idle_passivate_s))
            self._reaper = self._svc.timers.call_later(interval, reap)

        self._reaper = self._svc.timers.call_later(interval, reap)

    # --- recovery, waiting, shutdown -----------------------------------------------------

    def recover(self) -> int:
        """Activate every stored saga with work owed; each resumes its owed effects.

        Sagas that only wait on a timer are not activated: a timer wakes them when it is due
        (at once if it is overdue), so pending timers cost a heap entry, not a live actor.
        """
        n = 0
        for saga_id in self._svc.store.sagas_with_work_owed():
            try:
                self.send(saga_id, RunOwed(), activate_only_if_stored=True)
            except CorruptRecordError as exc:
                # Quarantined by the store (counted in its stats); every other saga recovers.
                log.error("saga %s not recovered: %s", saga_id, exc)
                continue
            n += 1
        for saga_id, wake_at in self._svc.store.pending_wakeups():
            self.send_at(wake_at, saga_id, RunOwed())
        return n

    def add_waiter(self, saga_id: str, after_version: int | None = None) -> Future[dict[str, Any]]:
        """A future of the saga's status once it is terminal or its version passes ``after_version``."""
        fut: Future[dict[str, Any]] = Future()
        with self._waiters_lock:
            self._waiters.setdefault(saga_id, []).append((after_version, fut))
        return fut

    def drop_waiter(self, saga_id: str, fut: Future[dict[str, Any]]) -> None:
        with self._waiters_lock:
            waiters = self._waiters.get(saga_id)
            if waiters:
                waiters[:] = [w for w in waiters if w[1] is not fut]
                if not waiters:
                    del self._waiters[saga_id]

    def notify(self, saga_id: str, state: SagaState) -> None:
        """A transition of the saga committed: answer the waiters it satisfies (O(1) if none)."""
        if saga_id not in self._waiters:
            return
        terminal, version = state.is_terminal, state.version
        with self._waiters_lock:
            waiters = self._waiters.get(saga_id, [])
            ready = [f for after, f in waiters if terminal or (after is not None and version > after)]
            if not ready:
                return
            rest = [w for w in waiters if w[1] not in ready]
            if rest:
                self._waiters[saga_id] = rest
            else:
                del self._waiters[saga_id]
        view = with_iso(status_view(state))
        for fut in ready:
            if not fut.done():
                fut.set_result(view)

    def live_count(self) -> int:
        return self._live

    def activations(self) -> int:
        return self._activations

    def mailbox_depths(self) -> tuple[int, int]:
        """(messages queued over all live saga actors, deepest single mailbox); O(live)."""
        total = deepest = 0
        for lock, live in self._shards:
            with lock:
                refs = list(live.values())
            for ref in refs:
                inbox = ref.actor_inbox
                n = inbox.qsize() if isinstance(inbox, LoopInbox) else 0  # every live actor's is
                total += n
                if n > deepest:
                    deepest = n
        return total, deepest

    def stop_all(self, timeout: float = 10.0, *, wait: bool = True) -> None:
        refs: list[pykka.ActorRef[Any]] = []
        for lock, live in self._shards:
            with lock:
                refs.extend(live.values())
                live.clear()
        with self._count_lock:
            self._live = 0
        futures = [ref.stop(block=False) for ref in refs]
        if not wait:
            return
        deadline = time.monotonic() + timeout
        for f in futures:
            try:
                f.get(timeout=max(0.0, deadline - time.monotonic()))
            except Exception:
                pass


def state_of(store: Any, saga_id: str, snapshot: dict[str, Any]) -> Any:
    """The snapshot as a SagaState; one that passes its CRC but is malformed is quarantined."""
    try:
        return state_from_dict(snapshot)
    except Exception as exc:  # KeyError, TypeError, ValueError ... from a malformed record
        where = f"sagas/{saga_id}"
        reason = f"snapshot cannot be decoded into a saga state: {type(exc).__name__}: {exc}"
        store.quarantine(where, reason)
        raise CorruptRecordError(f"{where}: {reason}", where=where) from exc


def view_of(snapshot: dict[str, Any], store: Any = None) -> dict[str, Any]:
    if store is None:
        return with_iso(status_view(state_from_dict(snapshot)))
    key = scoped_key(str(snapshot.get("tenant_id") or "?"), str(snapshot.get("saga_id")))
    return with_iso(status_view(state_of(store, key, snapshot)))
