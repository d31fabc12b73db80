"""Clocks the runtime reads time from. Injected, so tests drive time without sleeping."""

from __future__ import annotations

import threading
import time
from typing import Callable, Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds since the epoch (stored in snapshots and history)."""

    def wait_hint(self, seconds: float) -> float | None:
        """How long a timer thread may block for ``seconds`` of this clock; None = until woken."""

    def on_advance(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever time jumps (manual clocks); real clocks never call it."""


MAX_WAIT_S = 3600.0


class SystemClock:
    def now(self) -> float:
        return time.time()

    def wait_hint(self, seconds: float) -> float | None:
        # Capped: a far-off due time (e.g. from a journey stored before policies were bounded)
        # must never exceed what a condition wait accepts (OverflowError beyond time_t).
        return min(max(seconds, 0.0), MAX_WAIT_S)

    def on_advance(self, callback: Callable[[], None]) -> None:
        return None


class ManualClock:
    """A clock that only moves when a test says so."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
            listeners = list(self._listeners)
        for callback in listeners:
            callback()

    def wait_hint(self, seconds: float) -> float | None:
        return None

    def on_advance(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.append(callback)
