"""Run many pykka actors on a few threads (M:N), the way Akka and Orleans schedule actors.

A ``pykka.ThreadingActor`` owns a thread, and on CPython thousands of mostly idle threads
cost memory and GIL hand-offs on every message (measured: a thousand of them round-trip
messages 4x slower than a hundred). A ``PooledActor`` is a regular pykka actor (ActorRef,
tell/ask/stop, ActorRegistry, on_start/on_stop/on_failure) whose mailbox, when it goes from
empty to non-empty, is put on the dispatcher's ready queue; a worker then runs a bounded
batch of that actor's messages. An actor is scheduled at most once at a time, so its
messages are still processed one at a time, in order.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from collections import deque
from typing import Any

import pykka
from pykka import ActorDeadError, ActorRegistry
from pykka._envelope import Envelope  # noqa: PLC2701 - the mailbox holds pykka's envelopes

log = logging.getLogger("saga_journey.dispatcher")


class Dispatcher:
    def __init__(self, threads: int = 2, throughput: int = 64, name: str = "saga-journey-dispatch") -> None:
        self._ready: queue.SimpleQueue[_PooledInbox | None] = queue.SimpleQueue()
        self._throughput = throughput
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(threads)
        ]
        for t in self._threads:
            t.start()

    def schedule(self, inbox: _PooledInbox) -> None:
        self._ready.put(inbox)

    def _work(self) -> None:
        while True:
            inbox = self._ready.get()
            if inbox is None:
                return
            try:
                inbox.run_batch(self._throughput)
            except BaseException:  # a worker must survive anything an actor does
                log.exception("dispatcher worker caught an escaped error")

    def close(self) -> None:
        for _ in self._threads:
            self._ready.put(None)
        for t in self._threads:
            t.join(timeout=5)


class _PooledInbox:
    """The mailbox of a PooledActor: quacks like the ``queue.Queue`` pykka expects."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._queue: deque[Envelope[Any]] = deque()
        self._lock = threading.Lock()
        self._scheduled = False
        self.actor: PooledActor | None = None
        self.held: deque[Any] | None = None  # messages the actor holds back (its stash)

    def put(self, envelope: Envelope[Any], block: bool = True, timeout: float | None = None) -> None:
        actor = self.actor
        with self._lock:
            if actor is not None and actor.actor_stopped.is_set():
                dead = True
            else:
                dead = False
                self._queue.append(envelope)
                if self._scheduled:
                    return
                self._scheduled = True
        if dead:
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception(
                    exc_info=(ActorDeadError, ActorDeadError(f"{actor} is stopped"), None)
                )
            return
        self._dispatcher.schedule(self)

    def get(self, block: bool = True, timeout: float | None = None) -> Envelope[Any]:
        with self._lock:
            if not self._queue:
                raise queue.Empty
            return self._queue.popleft()

    get_nowait = get

    def empty(self) -> bool:
        return not self._queue

    def qsize(self) -> int:
        """Messages waiting for this actor: in the mailbox and held back in its stash."""
        return len(self._queue) + (len(self.held) if self.held is not None else 0)

    def run_batch(self, limit: int) -> None:
        actor = self.actor
        assert actor is not None
        for _ in range(limit):
            with self._lock:
                if not self._queue or actor.actor_stopped.is_set():
                    break
                envelope = self._queue.popleft()
            actor._process(envelope)
        if actor.actor_stopped.is_set():
            actor._actor_loop_teardown()
            return
        with self._lock:
            if not self._queue:
                self._scheduled = False
                return
        self._dispatcher.schedule(self)


class PooledActor(pykka.Actor):
    """A pykka actor that runs on a shared Dispatcher instead of a thread of its own."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        super().__init__()
        assert isinstance(self.actor_inbox, _PooledInbox)
        self.actor_inbox.actor = self

    def _create_actor_inbox(self) -> Any:  # type: ignore[override]
        return _PooledInbox(self._dispatcher)

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return pykka.ThreadingFuture()

    def _start_actor_loop(self) -> None:
        self._actor_loop_setup()  # on_start runs on the starting thread; messages on the pool

    def _process(self, envelope: Envelope[Any]) -> None:
        """One turn of pykka's actor loop, for one envelope."""
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:
                    self._handle_failure(*sys.exc_info())
        except BaseException:
            self._stop()
            ActorRegistry.stop_all()
            raise
