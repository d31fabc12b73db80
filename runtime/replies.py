"""Replies: where an actor delivers the one answer to a request, across threads.

Sync callers block on ``Reply.result``. Async callers await ``Reply.wait()``: an answer settled
on the caller's own loop thread (the runtime loop, for an async host) settles its asyncio future
directly; from any other thread it reaches the caller's loop through one ``LoopBridge`` per
loop, which queues answers and wakes the loop once per burst (``call_soon_threadsafe``) instead
of once per answer, and never blocks it.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any, Callable

_bridges: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopBridge] = weakref.WeakKeyDictionary()
_bridges_lock = threading.Lock()


class LoopBridge:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[Reply] = []
        self._scheduled = False

    @staticmethod
    def for_loop(loop: asyncio.AbstractEventLoop) -> LoopBridge:
        bridge = _bridges.get(loop)
        if bridge is None:
            with _bridges_lock:
                bridge = _bridges.get(loop)
                if bridge is None:
                    bridge = _bridges[loop] = LoopBridge(loop)
        return bridge

    def deliver(self, reply: Reply) -> None:
        with self._lock:
            self._pending.append(reply)
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            with self._lock:
                self._pending.clear()
                self._scheduled = False

    def _drain(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            self._scheduled = False
        for reply in pending:
            reply._settle_async()


class Reply:
    """One answer, settled once by whichever thread has it.

    Callbacks must be added before the reply is handed to another thread (``on_settle``); a
    reply is settled at most once, so no lock is needed on this hot path.
    """

    __slots__ = ("_done", "_value", "_error", "_callbacks", "_event", "_bridge", "_future", "_owner")

    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        on_settle: list[Callable[[Reply], None]] | None = None,
    ) -> None:
        self._done = False
        self._value: Any = None
        self._error: BaseException | None = None
        self._callbacks = on_settle
        self._event: threading.Event | None = None if loop else threading.Event()
        self._bridge = LoopBridge.for_loop(loop) if loop else None
        self._future: asyncio.Future[Any] | None = loop.create_future() if loop else None
        self._owner = threading.get_ident() if loop else 0  # the awaiting loop's thread

    @classmethod
    def resolved(cls, value: Any) -> Reply:
        reply = cls()
        reply.set_result(value)
        return reply

    def done(self) -> bool:
        return self._done

    def set_result(self, value: Any) -> None:
        self._settle(value, None)

    def set_exception(self, error: BaseException) -> None:
        self._settle(None, error)

    def _settle(self, value: Any, error: BaseException | None) -> None:
        if self._done:
            return
        self._value, self._error, self._done = value, error, True
        for callback in self._callbacks or ():
            try:
                callback(self)
            except Exception:  # an observer must not break the answer
                pass
        if self._event is not None:
            self._event.set()
        if self._bridge is not None:
            if threading.get_ident() == self._owner:
                self._settle_async()
            else:
                self._bridge.deliver(self)

    def _settle_async(self) -> None:
        fut = self._future
        if fut is None or fut.done():
            return
        if self._error is not None:
            fut.set_exception(self._error)
        else:
            fut.set_result(self._value)

    def exception(self) -> BaseException | None:
        return self._error

    def result(self, timeout: float | None = None) -> Any:
        """Block until settled (sync replies only). Raises TimeoutError after ``timeout``."""
        if not self._done:
            if self._event is None:
                raise RuntimeError("an async reply must be awaited with wait()")
            if not self._event.wait(timeout):
                raise TimeoutError
        if self._error is not None:
            raise self._error
        return self._value

    async def wait(self) -> Any:
        if self._future is None:
            return self.result()
        if self._done and not self._future.done():
            self._settle_async()
        return await self._future
