"""An asyncio-backed pykka actor type: actors whose messages run on one event loop, no thread each.

Built on pykka's three actor-type hooks, as its gevent and eventlet types were:

* ``_create_actor_inbox``: a ``LoopInbox`` that, going from empty to non-empty, schedules a drain
  of the actor's messages on the runtime loop (``call_soon`` on the loop thread,
  ``call_soon_threadsafe`` from any other);
* ``_create_future``: a ``LoopFuture``: settled from any thread, awaited on a loop without
  blocking it (callbacks), ``get()`` from another thread still blocks as pykka's does;
* ``_start_actor_loop``: ``on_start`` runs on the loop before the first message.

Actors keep ActorRef, tell/ask, stop and the ActorRegistry. A drain runs a bounded batch of one
actor's messages, then yields to the loop, so the loop stays fair; an actor is scheduled at most
once at a time, so its messages are processed one at a time, in order.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sys
import threading
from collections import deque
from typing import Any, Callable, Generator, TypeVar

import pykka
from pykka import ActorDeadError, ActorRegistry

log = logging.getLogger("saga_journey.loop_actor")

T = TypeVar("T")


class RuntimeLoop:
    """The event loop the runtime's actors run on, and how any thread reaches it.

    ``attach()`` uses the loop running in the calling thread (an async host); ``start()`` runs a
    new loop on a thread of its own (sync hosts, the ``_sync`` API).
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, thread_id: int, thread: threading.Thread | None = None
    ) -> None:
        self.loop = loop
        self.thread_id = thread_id
        self._thread = thread

    @classmethod
    def attach(cls) -> RuntimeLoop | None:
        """The loop running in this thread, or None when there is none."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return cls(loop, threading.get_ident())

    @classmethod
    def start(cls, name: str = "saga-journey-loop") -> RuntimeLoop:
        """A new loop (uvloop's where installed) on a daemon thread of its own."""
        loop = _new_loop()
        ready = threading.Event()
        ident: list[int] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            ident.append(threading.get_ident())
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        ready.wait()
        return cls(loop, ident[0], thread)

    @classmethod
    def current_or_new(cls) -> RuntimeLoop:
        return cls.attach() or cls.start()

    @property
    def owns_thread(self) -> bool:
        return self._thread is not None

    def on_loop(self) -> bool:
        return threading.get_ident() == self.thread_id

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop soon; raises RuntimeError if the loop is closed."""
        if threading.get_ident() == self.thread_id:
            self.loop.call_soon(fn, *args)
        else:
            self.loop.call_soon_threadsafe(fn, *args)

    def run_sync(self, fn: Callable[[], T], timeout: float | None = None) -> T:
        """Run ``fn`` on the loop and return its result (directly when already on the loop)."""
        if self.on_loop() or self.loop.is_closed():
            return fn()
        done = threading.Event()
        out: list[Any] = []

        def call() -> None:
            try:
                out.append((True, fn()))
            except BaseException as exc:  # handed back to the calling thread
                out.append((False, exc))
            done.set()

        self.loop.call_soon_threadsafe(call)
        if not done.wait(timeout):
            raise TimeoutError("the runtime loop did not answer in time")
        ok, value = out[0]
        if not ok:
            raise value
        return value

    def close(self) -> None:
        """Stop and close the loop if this object started it; an attached loop is the host's."""
        thread = self._thread
        if thread is None or self.loop.is_closed():
            return
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:
            pass
        thread.join(timeout=5)
        if not thread.is_alive():
            self.loop.close()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class LoopFuture(pykka.Future[T]):
    """A pykka future settled from any thread; ``await`` it on a loop, ``get()`` it elsewhere.

    ``await`` never blocks the loop: a done callback settles an asyncio future on the awaiting
    loop (directly on that loop's thread, else through ``call_soon_threadsafe``).
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._done = False
        self._value: Any = None
        self._exc_info: Any = None
        self._event: threading.Event | None = None
        self._callbacks: list[Callable[[LoopFuture[T]], None]] | None = []

    def done(self) -> bool:
        return self._done

    def _settle(self, value: Any, exc_info: Any) -> None:
        with self._lock:
            if self._done or self._get_hook is not None:
                raise queue.Full
            self._value, self._exc_info, self._done = value, exc_info, True
            callbacks, self._callbacks = self._callbacks, None
            event = self._event
        if event is not None:
            event.set()
        for callback in callbacks or ():
            try:
                callback(self)
            except Exception:
                log.exception("future callback raised; ignored")

    def set(self, value: Any | None = None) -> None:
        self._settle(value, None)

    def set_exception(self, exc_info: Any = None) -> None:
        if exc_info is None:
            exc_info = sys.exc_info()
        assert len(exc_info) == 3
        self._settle(None, exc_info)

    def set_get_hook(self, func: Any) -> None:
        with self._lock:
            if self._done:
                raise queue.Full
            super().set_get_hook(func)

    def add_done_callback(self, fn: Callable[[LoopFuture[T]], None]) -> None:
        """Call ``fn(self)`` once settled (at once, on this thread, if it already is)."""
        with self._lock:
            if not self._done:
                assert self._callbacks is not None
                self._callbacks.append(fn)
                return
        fn(self)

    def _outcome(self) -> Any:
        if self._exc_info is not None:
            exc_type, exc_value, tb = self._exc_info
            if exc_value is None:
                exc_value = exc_type()
            if exc_value.__traceback__ is not tb:
                raise exc_value.with_traceback(tb)
            raise exc_value
        return self._value

    def get(self, *, timeout: float | None = None) -> Any:
        try:
            return super().get(timeout=timeout)  # futures made by map/filter/join
        except NotImplementedError:
            pass
        if not self._done:
            with self._lock:
                if not self._done:
                    if self._event is None:
                        self._event = threading.Event()
                    event = self._event
                else:
                    event = None
            if event is not None and not event.wait(timeout):
                raise pykka.Timeout(f"{timeout} seconds")
        return self._outcome()

    def __await__(self) -> Generator[Any, None, T]:
        if self._get_hook is not None:  # a derived future: compute it off the loop
            loop = asyncio.get_running_loop()
            return (yield from loop.run_in_executor(None, self.get).__await__())
        if not self._done:
            loop = asyncio.get_running_loop()
            waiter = loop.create_future()
            awaiting = threading.get_ident()

            def wake(_: LoopFuture[T]) -> None:
                if threading.get_ident() == awaiting:
                    _resolve_waiter(waiter)
                else:
                    loop.call_soon_threadsafe(_resolve_waiter, waiter)

            self.add_done_callback(wake)
            yield from waiter.__await__()
        return self._outcome()


def _resolve_waiter(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class LoopInbox:
    """A LoopActor's mailbox (pykka's inbox protocol: put, get, empty)."""

    def __init__(
        self, runtime: RuntimeLoop, throughput: int, actor: LoopActor, held: deque[Any] | None = None
    ) -> None:
        """``held``: messages the actor holds back (its stash), counted in ``qsize``."""
        self._runtime = runtime
        self._throughput = throughput
        self._queue: deque[Any] = deque()
        self._lock = threading.Lock()
        self._scheduled = True  # until the actor has started: messages wait for on_start
        self._actor = actor
        self.draining = False  # a drain of this actor is on the stack (handling a message)
        self.held = held

    def put(self, envelope: Any, /) -> None:
        actor = self._actor
        with self._lock:
            if not actor.actor_stopped.is_set():
                self._queue.append(envelope)
                if self._scheduled:
                    return
                self._scheduled = True
                dead = False
            else:
                dead = True
        if dead:
            _refuse(envelope, actor)
            return
        self._schedule()

    def _schedule(self) -> None:
        try:
            self._runtime.call(self._drain)
        except RuntimeError:  # the loop is closed: nothing will ever run these messages
            with self._lock:
                pending = list(self._queue)
                self._queue.clear()
            for envelope in pending:
                _refuse(envelope, self._actor)

    def get(self) -> Any:
        with self._lock:
            if not self._queue:
                raise queue.Empty
            return self._queue.popleft()

    def empty(self) -> bool:
        return not self._queue

    def qsize(self) -> int:
        """Messages waiting for this actor: in the mailbox and held back in its stash."""
        return len(self._queue) + (len(self.held) if self.held is not None else 0)

    def begin(self) -> None:
        """Run on_start on the loop, then the messages that arrived meanwhile."""
        self._actor._actor_loop_setup()
        self._drain()

    def started(self) -> None:
        """The actor started on the loop thread (on_start ran): drain what arrived meanwhile,
        or let the next ``put`` schedule the drain."""
        with self._lock:
            if not self._queue:
                self._scheduled = False
                return
        self._schedule()

    def _drain(self) -> None:
        actor = self._actor
        stopped = actor.actor_stopped
        q, lock = self._queue, self._lock
        self.draining = True
        try:
            for _ in range(self._throughput):
                with lock:
                    if not q or stopped.is_set():
                        break
                    envelope = q.popleft()
                actor._process(envelope)
        finally:
            self.draining = False
        if stopped.is_set():
            actor._actor_loop_teardown()
            return
        with lock:
            if not q:
                self._scheduled = False
                return
        self._runtime.loop.call_soon(self._drain)  # more waiting: yield to the loop first


def _refuse(envelope: Any, actor: Any) -> None:
    reply_to = getattr(envelope, "reply_to", None)
    if reply_to is not None:
        try:
            reply_to.set_exception(exc_info=(ActorDeadError, ActorDeadError(f"{actor} is stopped"), None))
        except queue.Full:
            pass


class _Letter:
    """An envelope without a reply (pykka's own Envelope type is private)."""

    __slots__ = ("message", "reply_to")

    def __init__(self, message: Any) -> None:
        self.message = message
        self.reply_to = None


class LoopActor(pykka.Actor):
    """A pykka actor run by the runtime loop: no thread of its own, a serial mailbox.

    Handlers (``on_receive`` and friends) run on the loop thread and must not block it.
    """

    throughput = 64  # messages of one actor per drain before the loop runs others

    def __init__(self, runtime: RuntimeLoop) -> None:
        self._runtime = runtime
        super().__init__()

    @classmethod
    def spawn(cls, *args: Any, **kwargs: Any) -> Any:
        """``start``, returning the actor itself (for its parent's ``send_now``), as pykka's
        ``Actor.start`` does it: construct, register, start the loop."""
        actor = cls(*args, **kwargs)
        ActorRegistry.register(actor.actor_ref)
        actor._start_actor_loop()
        return actor

    def _create_actor_inbox(self) -> LoopInbox:  # type: ignore[override]
        return LoopInbox(self._runtime, self.throughput, self, self._held_messages())

    def _held_messages(self) -> deque[Any] | None:
        """Messages a subclass holds back outside the mailbox (counted in its ``qsize``)."""
        return None

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return LoopFuture()

    def _start_actor_loop(self) -> None:
        inbox = self.actor_inbox
        assert isinstance(inbox, LoopInbox)
        if self._runtime.on_loop():  # started by code on the loop: begin now, no extra turn
            self._actor_loop_setup()
            inbox.started()
            return
        self._runtime.call(inbox.begin)

    def send_now(self, message: Any) -> None:
        """``tell``, but handled at once when called on the loop outside this actor's own
        message handling (e.g. from a commit hand-back): one loop turn fewer on the hot path.
        The message overtakes what waits in the mailbox, so use it only for messages whose
        order against those does not matter (confirmations, reports)."""
        inbox = self.actor_inbox
        assert isinstance(inbox, LoopInbox)
        if inbox.draining or self.actor_stopped.is_set() or not self._runtime.on_loop():
            self.actor_ref.tell(message)
            return
        inbox.draining = True
        try:
            self._process(_Letter(message))
        finally:
            inbox.draining = False
        if self.actor_stopped.is_set():
            self._actor_loop_teardown()

    def _process(self, envelope: Any) -> None:
        """One turn of pykka's actor loop (``Actor._actor_loop_running``), for one envelope."""
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
            ActorRegistry.stop_all(block=False)
            raise
