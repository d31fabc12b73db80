"""One thread that fires scheduled callbacks: thousands of pending timers cost no thread each."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from typing import Callable

from .clock import Clock

log = logging.getLogger("saga_journey.timers")


class TimerHandle:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class TimerService:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, TimerHandle, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        clock.on_advance(self._wake)
        self._thread = threading.Thread(target=self._run, name="saga-journey-timers", daemon=True)
        self._thread.start()

    def call_at(self, due: float, callback: Callable[[], None]) -> TimerHandle:
        handle = TimerHandle()
        with self._cond:
            heap = self._heap
            earliest = not heap or due < heap[0][0]
            heapq.heappush(heap, (due, next(self._seq), handle, callback))
            if earliest:  # a later timer than the next one needs no wake-up of the thread
                self._cond.notify()
        return handle

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return self.call_at(self._clock.now() + delay, callback)

    def pending(self) -> int:
        with self._cond:
            return sum(1 for _, _, h, _ in self._heap if not h.cancelled)

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    if self._heap and self._heap[0][0] <= self._clock.now():
                        break
                    timeout = None
                    if self._heap:
                        timeout = self._clock.wait_hint(self._heap[0][0] - self._clock.now())
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, _, handle, callback = heapq.heappop(self._heap)
            if handle.cancelled:
                continue
            try:
                callback()
            except Exception:  # a timer callback must never kill the timer thread
                log.exception("timer callback failed")

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()
        self._thread.join(timeout=5)
