"""What every actor of one runtime shares: loop, store, clock, timers, handlers, observer, directory."""

from __future__ import annotations

import threading
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from saga_journey.persistence.ports import RuntimeStore
from saga_journey.runtime.clock import Clock
from saga_journey.runtime.config import RuntimeConfig
from saga_journey.runtime.handlers import HandlerRegistry
from saga_journey.runtime.model import Journey
from saga_journey.runtime.observer import RuntimeObserver
from saga_journey.runtime.timers import TimerService

from .compensator_actor import AbandonedThreads
from .loop_actor import RuntimeLoop

if TYPE_CHECKING:
    from .directory import Directory


@dataclass(eq=False, frozen=True)
class Services:
    store: RuntimeStore  # the recorder and queries ports
    handlers: HandlerRegistry
    runtime: RuntimeLoop  # every saga and compensator actor runs on this loop
    pool: Executor  # sync compensation handlers (bounded by ``abandoned.max_threads``)
    clock: Clock
    timers: TimerService
    observer: RuntimeObserver
    config: RuntimeConfig
    load_journey: Callable[[str, int], Journey]
    directory: Directory  # saga key -> live actor; built with these services (compose.assemble)
    closing: threading.Event
    abandoned: AbandonedThreads
