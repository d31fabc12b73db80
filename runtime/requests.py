"""Requests in flight: admission control, the reply each request is answered on, and the wait
of a ``_sync`` call for it."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable

from .config import RuntimeConfig
from .errors import OverloadedError, SagaError
from .observer import RuntimeObserver
from .replies import Reply


class Requests:
    """Counts accepted, unanswered writes (refusing past ``max_in_flight_requests``) and makes
    the replies that report their latency and free their slot when settled."""

    def __init__(self, config: RuntimeConfig, observer: RuntimeObserver, on_loop: Callable[[], bool]) -> None:
        """``on_loop()``: whether the caller runs on the runtime loop (where a sync wait would deadlock)."""
        self.config = config
        self.observer = observer
        self._on_loop = on_loop
        self._lock = threading.Lock()
        self._in_flight = 0

    def in_flight(self) -> int:
        return self._in_flight

    def admit(self) -> None:
        """Admission control: refuse a write when too many are accepted and unanswered."""
        with self._lock:
            if self._in_flight >= self.config.max_in_flight_requests:
                raise OverloadedError(
                    f"{self._in_flight} requests are in flight (limit "
                    f"{self.config.max_in_flight_requests}); retry shortly"
                )
            self._in_flight += 1

    def release(self, _: Reply | None = None) -> None:
        with self._lock:
            self._in_flight -= 1

    def admitted(self, reply: Reply, send: Callable[[], None]) -> Reply:
        self.admit()
        try:
            send()
        except BaseException:
            self.release()
            raise
        return reply  # settling it releases the slot (see new_reply)

    def new_reply(
        self, is_async: bool, operation: str, release: Callable[[Reply], None] | None = None
    ) -> Reply:
        """A reply that reports its latency, frees its admission slot (and its idempotency key)."""
        started = time.perf_counter()
        observer = self.observer

        def timed(r: Reply) -> None:
            observer.on_request(operation, time.perf_counter() - started, r.exception() is None)

        callbacks: list[Callable[[Reply], None]] = [timed, self.release] if release is None else [timed, self.release, release]
        loop = asyncio.get_running_loop() if is_async else None
        return Reply(loop=loop, on_settle=callbacks)

    def wait(self, reply: Reply) -> Any:
        """Block a ``_sync`` caller until ``reply`` is settled (refused on the runtime loop)."""
        if not reply.done() and self._on_loop():
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
