"""``SagaClient``: the blocking twin of ``AsyncSagaClient``.

It runs an ``AsyncSagaClient`` on a private event loop in a daemon thread, so it works the
same from plain scripts, from threads and from code that already runs an event loop (it never
touches the caller's loop). Every method has the async client's signature and return value.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from .async_client import AsyncSagaClient
from .sse import SagaEvent

T = TypeVar("T")


def _blocking(name: str) -> Callable[..., Any]:
    target = getattr(AsyncSagaClient, name)

    @functools.wraps(target)
    def call(self: SagaClient, *args: Any, **kwargs: Any) -> Any:
        return self._run(getattr(self._client, name)(*args, **kwargs))

    return call


def _iterating(name: str) -> Callable[..., Iterator[Any]]:
    target = getattr(AsyncSagaClient, name)

    @functools.wraps(target)
    def call(self: SagaClient, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return self._iterate(getattr(self._client, name)(*args, **kwargs))

    return call


class SagaClient:
    """``with SagaClient(url, token) as c: c.get_saga_status(saga_id)``; options as for
    ``AsyncSagaClient``."""

    def __init__(self, url: str | None = None, token: str | None = None, **options: Any) -> None:
        self._client = AsyncSagaClient(url, token, **options)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="saga-journey-client", daemon=True)
        self._thread.start()
        self._closed = False

    @property
    def url(self) -> str:
        return self._client.url

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError("SagaClient is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _iterate(self, agen: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self._run(_next(agen))
                except StopAsyncIteration:
                    return
        finally:
            if not self._closed:
                self._run(agen.aclose())  # type: ignore[attr-defined]

    def close(self) -> None:
        if self._closed:
            return
        self._run(self._client.close())
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> SagaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    journey_templates = _blocking("journey_templates")
    design_saga_journey = _blocking("design_saga_journey")
    list_journeys = _blocking("list_journeys")
    get_journey = _blocking("get_journey")
    execute_saga_journey = _blocking("execute_saga_journey")
    advance_saga_step = _blocking("advance_saga_step")
    compensate_saga = _blocking("compensate_saga")
    retry_compensation = _blocking("retry_compensation")
    skip_compensation = _blocking("skip_compensation")
    get_saga_status = _blocking("get_saga_status")
    get_saga_execution_history = _blocking("get_saga_execution_history")
    list_sagas = _blocking("list_sagas")
    wait_for_saga = _blocking("wait_for_saga")
    backup = _blocking("backup")
    prune = _blocking("prune")
    iter_sagas = _iterating("iter_sagas")
    events: Callable[..., Iterator[SagaEvent]] = _iterating("events")
    saga_events: Callable[..., Iterator[SagaEvent]] = _iterating("saga_events")


async def _next(agen: AsyncIterator[T]) -> T:
    """``agen.__anext__()`` as a coroutine (what ``run_coroutine_threadsafe`` takes)."""
    return await agen.__anext__()
