"""Fan-out of committed transitions to listeners (the gateway's event streams).

The saga actors call ``observer.on_transition`` after each commit; the orchestrator wraps its
observer in ``Tee`` so that the same call also reaches ``TransitionHub``. A listener must be
cheap and must not block: it is called on the runtime loop, inside the actor's commit path.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from .model import Event, SagaState
from .observer import RuntimeObserver

log = logging.getLogger("saga_journey.runtime")
Listener = Callable[[SagaState, Event], None]


class TransitionHub:
    """Listeners of committed transitions; ``add`` returns a function that removes it."""

    def __init__(self) -> None:
        self._listeners: tuple[Listener, ...] = ()  # replaced, never mutated: safe to iterate

    def add(self, listener: Listener) -> Callable[[], None]:
        self._listeners = (*self._listeners, listener)

        def remove() -> None:
            self._listeners = tuple(x for x in self._listeners if x is not listener)

        return remove

    def publish(self, state: SagaState, event: Event) -> None:
        for listener in self._listeners:
            try:
                listener(state, event)
            except Exception:
                log.exception("transition listener failed; ignored")


def _forward(name: str) -> Callable[..., None]:
    def hook(self: "Tee", *args: Any) -> None:
        getattr(self.inner, name)(*args)

    hook.__name__ = name
    return hook


class Tee(RuntimeObserver):
    """Every hook goes to ``inner``; ``on_transition`` also to ``hub``."""

    def __init__(self, inner: RuntimeObserver, hub: TransitionHub) -> None:
        self.inner = inner
        self.hub = hub

    def on_transition(self, state: SagaState, event: Event) -> None:
        self.inner.on_transition(state, event)
        self.hub.publish(state, event)


for _name in vars(RuntimeObserver):
    if _name.startswith("on_") and _name != "on_transition":
        setattr(Tee, _name, _forward(_name))
