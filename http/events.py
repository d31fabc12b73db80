"""Server-Sent Events: ``GET /v1/events`` (every saga of the tenant) and ``GET /v1/sagas/{id}/events``.

Delivery has two sources. Replay reads the store: the commit feed (global positions) for the
global stream, the saga's history for the per-saga stream. Live delivery tails the same feed:
``FeedTail`` listens to the orchestrator's committed transitions and, once per loop turn, reads
the feed entries after the last one it saw and offers them to every subscriber. A stream
subscribes first, then replays, then sends live items whose id is past the last replayed one:
nothing is missed and nothing is sent twice. Each subscriber's queue is bounded; one that falls
``queue_size`` items behind is dropped with a final comment and must reconnect with its
Last-Event-ID (it loses nothing by that).

What resuming guarantees once the store prunes: every event after the Last-Event-ID of every
saga still stored, exactly once, in commit order. Events of sagas pruned meanwhile are not sent
(the sagas are gone). The feed itself keeps at most ``feed_retention_entries``; a Last-Event-ID
older than what it kept is answered ``410 events_pruned`` (and a replay overtaken by the feed
retention ends with ``event: reset``): the client must list the sagas again, then follow from now.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from saga_journey.actors.directory import view_of
from saga_journey.persistence.keys import local_id, scoped_key
from saga_journey.runtime.errors import CorruptRecordError
from saga_journey.runtime.isotime import iso
from saga_journey.runtime.orchestrator import SagaOrchestrator

from .codec import dumps
from .problems import Problem

log = logging.getLogger("saga_journey.http")

PING_S = 15.0
QUEUE_SIZE = 1000
REPLAY_CHUNK = 500
TAIL_CHUNK = 1000


@dataclass(slots=True)
class Item:
    """One committed history entry as sent: shared by every subscriber that gets it."""

    position: int
    key: str  # the saga's internal (tenant-scoped) key
    entry: dict[str, Any]
    view: dict[str, Any] | None
    _data: bytes | None = None

    @property
    def seq(self) -> int:
        return int(self.entry.get("seq", 0))

    def data(self) -> bytes:
        if self._data is None:
            body = {**self.entry, "saga_id": local_id(self.key), "seq": self.seq,
                    "event": self.entry.get("type"), "at": self.entry.get("at"),
                    "at_iso": iso(self.entry.get("at")), "status": self.entry.get("status_after"),
                    "saga": self.view}
            self._data = dumps(body)
        return self._data

    def frame(self, ident: int) -> bytes:
        return b"id: %d\nevent: %s\ndata: %s\n\n" % (ident, str(self.entry.get("type")).encode(), self.data())


@dataclass
class Filter:
    """The list filters, applied to one event (status: the status after it)."""

    status: str | None = None
    parked: bool | None = None
    journey_type: str | None = None
    journey_id: str | None = None
    user_id: str | None = None
    updated_after: float | None = None
    updated_before: float | None = None
    saga_ids: frozenset[str] = frozenset()

    def matches(self, item: Item) -> bool:
        view = item.view or {}
        at = item.entry.get("at")
        at = at if isinstance(at, (int, float)) else 0.0
        return (
            (not self.saga_ids or local_id(item.key) in self.saga_ids)
            and (self.status is None or item.entry.get("status_after") == self.status)
            and (self.parked is None or bool(view.get("parked")) == self.parked)
            and (self.journey_type is None or view.get("journey_type") == self.journey_type)
            and (self.journey_id is None or view.get("journey_id") == self.journey_id)
            and (self.user_id is None or view.get("user_id") == self.user_id)
            and (self.updated_after is None or at >= self.updated_after)
            and (self.updated_before is None or at < self.updated_before)
        )


@dataclass(eq=False)
class Subscriber:
    scope: str  # scoped_key(tenant, "") or a saga's key
    match: Callable[[Item], bool]
    limit: int = QUEUE_SIZE
    queue: deque[Item] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: bool = False  # fell behind: sent what it has, then told to reconnect
    closing: bool = False  # the server is shutting down

    def offer(self, item: Item) -> bool:
        """Queue ``item`` if it is for this subscriber; False once the queue overflowed."""
        if not (item.key == self.scope or (self.scope.endswith("/") and item.key.startswith(self.scope))):
            return True
        if not self.match(item):
            return True
        if len(self.queue) >= self.limit:
            self.dropped = True
            self.wake.set()
            return False
        self.queue.append(item)
        self.wake.set()
        return True


class FeedTail:
    """Reads the commit feed as transitions commit and fans each entry out to subscribers."""

    def __init__(self, orch: SagaOrchestrator, queue_size: int = QUEUE_SIZE) -> None:
        self.orch = orch  # may be None in a Gateway built only to list its routes
        self.queue_size = queue_size
        self.subscribers: set[Subscriber] = set()
        self.position = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self._closed = False
        self._remove: Callable[[], None] | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._remove = self.orch.transitions.add(self._on_transition)

    def close(self) -> None:
        self._closed = True
        if self._remove is not None:
            self._remove()
            self._remove = None
        for sub in list(self.subscribers):
            sub.closing = True
            sub.wake.set()
        self.subscribers.clear()

    def subscribe(self, sub: Subscriber) -> None:
        if self._closed:  # shutting down: the stream replays what it has, then ends
            sub.closing = True
            return
        if not self.subscribers:
            self.position = self.orch.store.feed_end()
        self.subscribers.add(sub)

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def _on_transition(self, *_: Any) -> None:
        if self.subscribers and not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        if not self.subscribers:
            return
        before = self.position
        rows, scanned = self.orch.store.feed_scan(before, TAIL_CHUNK)
        views: dict[str, dict[str, Any] | None] = {}
        for position, key, entry in rows:
            self.position = position
            if key not in views:
                views[key] = load_view(self.orch, key)
            item = Item(position, key, entry, views[key])
            for sub in list(self.subscribers):
                if not sub.offer(item):
                    self.subscribers.discard(sub)
        self.position = max(self.position, scanned)
        more = scanned - before >= TAIL_CHUNK
        if more:  # more committed meanwhile: go on next turn
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._drain)


def load_view(orch: SagaOrchestrator, key: str) -> dict[str, Any] | None:
    try:
        snap = orch.store.load_saga(key)
        return None if snap is None else view_of(snap, orch.store)
    except CorruptRecordError:
        return None


def check_resumable(orch: SagaOrchestrator, after: int) -> None:
    """A global stream resumed after ``after``: refused (410) once the feed retention removed
    events past it, so the client knows to list again instead of silently missing events."""
    floor = orch.store.feed_floor()
    if after < floor:
        raise Problem(
            410, "events_pruned",
            f"Last-Event-ID {after} is older than the retained event feed (events up to {floor} were "
            "removed by the feed retention): list the sagas again, then follow the stream from now",
            floor=floor,
        )


class FeedPruned(Exception):
    """The feed retention removed entries past a replay's position while it replayed."""


def last_event_id(request: web.Request) -> int | None:
    raw = request.headers.get("Last-Event-ID", request.query.get("last_event_id"))
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 19:
        raise Problem(422, "invalid_input", "Last-Event-ID must be an id this stream sent (a non-negative integer)")
    return int(raw)


async def _open(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
    })
    await resp.prepare(request)
    await resp.write(b": connected\n\n")
    return resp


async def stream(request: web.Request, tail: FeedTail, sub: Subscriber,
                 replay: Callable[[int], tuple[list[Item], int, bool]], start: int, per_saga: bool) -> web.StreamResponse:
    """Subscribe, replay after ``start``, then go live; ids are seqs (per saga) or positions."""
    tail.subscribe(sub)
    try:
        resp = await _open(request)
        last = start
        while True:  # replay until the store has nothing more after ``last``
            try:
                items, last, more = await asyncio.get_running_loop().run_in_executor(None, replay, last)
            except FeedPruned:
                await resp.write(b"event: reset\ndata: {\"reason\": \"events_pruned\"}\n\n")
                return resp
            for item in items:
                await resp.write(item.frame(item.seq if per_saga else item.position))
            if not more:
                break
        while not sub.closing:
            try:
                await asyncio.wait_for(sub.wake.wait(), PING_S)
            except TimeoutError:
                await resp.write(b": ping\n\n")
                continue
            sub.wake.clear()
            while sub.queue:
                item = sub.queue.popleft()
                ident = item.seq if per_saga else item.position
                if ident > last:
                    await resp.write(item.frame(ident))
                    last = ident
            if sub.dropped:
                await resp.write(b": dropped: this client fell behind; reconnect with Last-Event-ID\n\n")
                break
        if sub.closing:
            await resp.write(b": server shutting down; reconnect with Last-Event-ID\n\n")
        return resp
    except (ConnectionResetError, ConnectionError):
        return web.StreamResponse()  # the client went away: nothing more to send
    finally:
        tail.unsubscribe(sub)


def global_replay(orch: SagaOrchestrator, tenant: str, match: Callable[[Item], bool]) -> Callable[[int], tuple[list[Item], int, bool]]:
    def replay(after: int) -> tuple[list[Item], int, bool]:
        rows, scanned = orch.store.feed_scan(after, REPLAY_CHUNK, tenant=tenant)
        if after < orch.store.feed_floor():  # read after the scan: the scan saw no gap if this passes
            raise FeedPruned(after)
        items = [Item(p, k, e, load_view(orch, k)) for p, k, e in rows]
        return [i for i in items if match(i)], max(after, scanned), scanned > after

    return replay


def saga_replay(orch: SagaOrchestrator, key: str) -> Callable[[int], tuple[list[Item], int, bool]]:
    def replay(after: int) -> tuple[list[Item], int, bool]:
        entries = orch.store.load_history(key, after_seq=after, limit=REPLAY_CHUNK)
        view = load_view(orch, key) if entries else None
        items = [Item(0, key, e, view) for e in entries]
        last = items[-1].seq if items else after
        return items, last, len(entries) == REPLAY_CHUNK

    return replay


def scope_of(tenant: str, saga_id: str | None = None) -> str:
    return scoped_key(tenant, saga_id or "")


