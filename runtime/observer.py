"""Hooks the runtime calls on interesting moments; metrics implement them, the default ignores them."""

from __future__ import annotations

from collections.abc import Callable

from .model import Event, SagaState


class RuntimeObserver:
    """No-op base; every hook must be cheap and must not raise."""

    def on_transition(self, state: SagaState, event: Event) -> None:
        """A transition committed; ``state`` is the state after ``event``."""

    def on_request(self, operation: str, seconds: float, ok: bool) -> None:
        """An API call finished (after its commit, for writes)."""

    def on_compensation_attempt(
        self, journey_type: str, milestone_id: str, ok: bool, seconds: float
    ) -> None:
        """A compensation handler returned or raised."""

    def on_internal_error(self, journey_type: str) -> None:
        """An unexpected error inside a saga's actor (the saga is parked with it recorded)."""

    def on_actor_activated(self) -> None: ...

    def on_actor_passivated(self) -> None: ...

    def on_commit(self, batch_size: int, seconds: float) -> None:
        """The store committed one group of writes."""

    def on_http_request(self, route: str, status: int, seconds: float) -> None:
        """The gateway answered a request (route is the route template, never a raw path)."""

    def on_sagas_pruned(self, counts: dict[str, int]) -> None:
        """A retention round removed finished sagas: ``{journey_type: how many}``."""


class Observers(RuntimeObserver):
    """Several observers behind one (e.g. metrics and logs); a hook that raises is skipped."""

    def __init__(self, *observers: RuntimeObserver) -> None:
        self.observers = tuple(observers)
        for name in _HOOKS:
            setattr(self, name, self._fan_out(name))

    def _fan_out(self, name: str) -> Callable[..., None]:
        hooks = [getattr(o, name) for o in self.observers]

        def call(*args: object) -> None:
            for hook in hooks:
                try:
                    hook(*args)
                except Exception:  # noqa: BLE001 - a hook must never break the runtime
                    pass

        return call

    def __getattr__(self, name: str) -> object:
        """Anything else (e.g. ``SagaMetrics.registry``) from the first observer that has it."""
        for o in self.__dict__.get("observers", ()):
            if hasattr(o, name):
                return getattr(o, name)
        raise AttributeError(name)


_HOOKS = tuple(n for n in vars(RuntimeObserver) if n.startswith("on_"))
