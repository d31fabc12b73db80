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

A sharded store (``serve --workers``) has no global commit order: its feed has one position per
shard, and a global event id is the vector of them (``shard_map.encode_feed_id``; one shard keeps
plain integers). An event is new to a stream when its shard's position is past that shard's part
of the stream's vector. Other worker processes write the shards this one only reads and commit
nothing here, so while anyone listens the tail also polls the feed's end (``POLL_S``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from aiohttp import web

from saga_journey.actors.directory import view_of
from saga_journey.persistence.keys import local_id, scoped_key
from saga_journey.persistence.shard_map import decode_feed_id, encode_feed_id, shard_of
from saga_journey.runtime.errors import CorruptRecordError, InvalidInputError
from saga_journey.runtime.isotime import iso
from saga_journey.runtime.orchestrator import SagaOrchestrator

from .codec import dumps
from .problems import Problem

log = logging.getLogger("saga_journey.http")

PING_S = 15.0
QUEUE_SIZE = 1000
REPLAY_CHUNK = 500
TAIL_CHUNK = 1000
POLL_S = 0.025  # a sharded store: how often a tail with subscribers looks for other processes' commits

Vector = tuple[int, ...]  # a position of the commit feed: one part per shard
FeedRow = tuple[Vector, str, dict[str, Any]]  # the feed vector just after an entry, its key, the entry


class VectorFeed(Protocol):
    """The commit feed of a store of several shards (``ShardedStore``): one position per shard."""

    shards: int

    def feed_vector_end(self) -> Sequence[int]: ...
    def feed_vector_floor(self) -> Sequence[int]: ...
    def feed_vector_scan(self, positions: Sequence[int], limit: int = ..., *,
                         tenant: str | None = ...) -> tuple[list[FeedRow], Sequence[int]]: ...


def vector_feed(orch: SagaOrchestrator) -> VectorFeed | None:
    """The store's vector feed, or None for a store of one shard (its feed is the int one)."""
    store: Any = orch.store
    return store if getattr(store, "shards", 1) > 1 else None


def shards_of(orch: SagaOrchestrator) -> int:
    feed = vector_feed(orch)
    return 1 if feed is None else feed.shards


def feed_end(orch: SagaOrchestrator) -> Vector:
    feed = vector_feed(orch)
    return (orch.store.feed_end(),) if feed is None else tuple(feed.feed_vector_end())


def feed_floor(orch: SagaOrchestrator) -> Vector:
    feed = vector_feed(orch)
    return (orch.store.feed_floor(),) if feed is None else tuple(feed.feed_vector_floor())


def feed_scan(orch: SagaOrchestrator, after: Vector, limit: int, tenant: str | None = None) -> tuple[list[FeedRow], Vector]:
    """The feed entries after ``after`` and the vector of the positions looked at (the one-shard
    store's int feed in the same shape)."""
    feed = vector_feed(orch)
    if feed is not None:
        rows, scanned = feed.feed_vector_scan(after, limit, tenant=tenant)
        return rows, tuple(scanned)
    flat, last = orch.store.feed_scan(after[0], limit, tenant=tenant)
    return [((p,), k, e) for p, k, e in flat], (last,)


@dataclass(slots=True)
class Item:
    """One committed history entry as sent: shared by every subscriber that gets it."""

    key: str  # the saga's internal (tenant-scoped) key
    entry: dict[str, Any]
    view: dict[str, Any] | None
    vector: Vector = ()  # the feed position just after it (per-saga replay: none)
    shard: int = 0  # the shard it was committed in: its own position is vector[shard]
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

    def frame(self, ident: bytes) -> bytes:
        return b"id: %s\nevent: %s\ndata: %s\n\n" % (ident, str(self.entry.get("type")).encode(), self.data())


@dataclass(frozen=True, slots=True)
class SeqPosition:
    """A per-saga stream: the last history seq sent."""

    seq: int

    def after(self, item: Item) -> bool:
        return item.seq > self.seq

    def then(self, item: Item) -> SeqPosition:
        return SeqPosition(max(self.seq, item.seq))

    def ident(self) -> bytes:
        return b"%d" % self.seq


@dataclass(frozen=True, slots=True)
class FeedPosition:
    """A global stream: per shard, the feed position up to which every entry was sent or skipped."""

    vector: Vector

    def after(self, item: Item) -> bool:
        return item.vector[item.shard] > self.vector[item.shard]

    def then(self, item: Item) -> FeedPosition:
        # every entry up to item.vector was offered before item (the tail reads in shard order)
        return FeedPosition(tuple(map(max, self.vector, item.vector)))

    def ident(self) -> bytes:
        return encode_feed_id(self.vector).encode()


P = TypeVar("P", SeqPosition, FeedPosition)  # where a stream is: the last id sent, which items are new


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
        self.position: Vector = (0,)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self._closed = False
        self._remove: Callable[[], None] | None = None
        self._poller: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._remove = self.orch.transitions.add(self._on_transition)

    def close(self) -> None:
        self._closed = True
        if self._remove is not None:
            self._remove()
            self._remove = None
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        for sub in list(self.subscribers):
            sub.closing = True
            sub.wake.set()
        self.subscribers.clear()

    def subscribe(self, sub: Subscriber) -> None:
        if self._closed:  # shutting down: the stream replays what it has, then ends
            sub.closing = True
            return
        if not self.subscribers:
            self.position = feed_end(self.orch)
            if shards_of(self.orch) > 1 and (self._poller is None or self._poller.done()):
                self._poller = asyncio.get_running_loop().create_task(self._poll())
        self.subscribers.add(sub)

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def _on_transition(self, *_: Any) -> None:
        if self.subscribers and not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon_threadsafe(self._drain)

    async def _poll(self) -> None:
        """While anyone listens: drain when a shard's feed moved (other processes write some
        shards and this one is not notified of their commits). A few LMDB reads per turn."""
        while self.subscribers and not self._closed:
            await asyncio.sleep(POLL_S)
            try:
                if self.subscribers and not self._scheduled and any(map(int.__gt__, feed_end(self.orch), self.position)):
                    self._drain()
            except Exception as exc:  # e.g. a read racing the store's close: the next turn tries again
                log.warning("event feed poll failed: %s", exc, extra={"error": str(exc)})

    def _drain(self) -> None:
        self._scheduled = False
        if not self.subscribers:
            return
        before = self.position
        rows, scanned = feed_scan(self.orch, before, TAIL_CHUNK)
        shards = len(before)
        views: dict[str, dict[str, Any] | None] = {}
        for vector, key, entry in rows:
            if key not in views:
                views[key] = load_view(self.orch, key)
            item = Item(key, entry, views[key], vector, shard_of(key, shards))
            for sub in list(self.subscribers):
                if not sub.offer(item):
                    self.subscribers.discard(sub)
        self.position = scanned
        budget = max(1, TAIL_CHUNK // shards)  # what the scan looks at per shard
        if any(s - b >= budget for s, b in zip(scanned, before)):  # more committed meanwhile: go on next turn
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._drain)


def load_view(orch: SagaOrchestrator, key: str) -> dict[str, Any] | None:
    try:
        snap = orch.store.load_saga(key)
        return None if snap is None else view_of(snap, orch.store)
    except CorruptRecordError:
        return None


def feed_id(vector: Vector) -> int | str:
    """A feed position as shown in a problem: the plain integer of a one-shard store."""
    return vector[0] if len(vector) == 1 else encode_feed_id(vector)


def check_resumable(orch: SagaOrchestrator, after: Vector | int) -> None:
    """A global stream resumed after ``after`` (a feed vector; a one-shard store's may be its
    int): refused (410) once the feed retention removed events past it (in any shard), so the
    client knows to list again instead of silently missing events."""
    after = (after,) if isinstance(after, int) else after
    floor = feed_floor(orch)
    if any(map(int.__lt__, after, floor)):
        raise Problem(
            410, "events_pruned",
            f"Last-Event-ID {feed_id(after)} is older than the retained event feed (events up to {feed_id(floor)} were "
            "removed by the feed retention): list the sagas again, then follow the stream from now",
            floor=feed_id(floor),
        )


class FeedPruned(Exception):
    """The feed retention removed entries past a replay's position while it replayed."""


def _raw_last_event_id(request: web.Request) -> str | None:
    raw = request.headers.get("Last-Event-ID", request.query.get("last_event_id"))
    return None if raw is None or raw == "" else raw


def last_event_id(request: web.Request) -> int | None:
    """The Last-Event-ID of a per-saga stream (a seq), or of the feed of a one-shard store."""
    raw = _raw_last_event_id(request)
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 19:
        raise Problem(422, "invalid_input", "Last-Event-ID must be an id this stream sent (a non-negative integer)")
    return int(raw)


def last_feed_id(request: web.Request, orch: SagaOrchestrator) -> Vector | None:
    """The Last-Event-ID of the global stream: a feed vector (one shard: a plain integer)."""
    shards = shards_of(orch)
    if shards == 1:
        start = last_event_id(request)
        return None if start is None else (start,)
    raw = _raw_last_event_id(request)
    if raw is None:
        return None
    try:
        return decode_feed_id(raw, shards)
    except InvalidInputError as exc:
        raise Problem(422, "invalid_input", f"Last-Event-ID must be an id this stream sent: {exc}") from None


async def _open(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
    })
    await resp.prepare(request)
    await resp.write(b": connected\n\n")
    return resp


async def stream(request: web.Request, tail: FeedTail, sub: Subscriber,
                 replay: Callable[[P], tuple[list[Item], P, bool]], start: P) -> web.StreamResponse:
    """Subscribe, replay after ``start``, then go live; ids are seqs (per saga) or feed positions."""
    tail.subscribe(sub)
    try:
        resp = await _open(request)
        last = start
        while True:  # replay until the store has nothing more after ``last``
            try:
                items, end, more = await asyncio.get_running_loop().run_in_executor(None, replay, last)
            except FeedPruned:
                await resp.write(b"event: reset\ndata: {\"reason\": \"events_pruned\"}\n\n")
                return resp
            for item in items:
                last = last.then(item)
                await resp.write(item.frame(last.ident()))
            last = end  # past the items and what the replay looked at and skipped
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
                if last.after(item):
                    last = last.then(item)
                    await resp.write(item.frame(last.ident()))
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


def global_replay(orch: SagaOrchestrator, tenant: str,
                  match: Callable[[Item], bool]) -> Callable[[FeedPosition], tuple[list[Item], FeedPosition, bool]]:
    shards = shards_of(orch)

    def replay(after: FeedPosition) -> tuple[list[Item], FeedPosition, bool]:
        rows, scanned = feed_scan(orch, after.vector, REPLAY_CHUNK, tenant=tenant)
        if any(map(int.__lt__, after.vector, feed_floor(orch))):  # read after the scan: it saw no gap if this passes
            raise FeedPruned(after)
        items = [Item(k, e, load_view(orch, k), v, shard_of(k, shards)) for v, k, e in rows]
        end = FeedPosition(tuple(map(max, after.vector, scanned)))
        return [i for i in items if match(i)], end, end != after

    return replay


def saga_replay(orch: SagaOrchestrator, key: str) -> Callable[[SeqPosition], tuple[list[Item], SeqPosition, bool]]:
    def replay(after: SeqPosition) -> tuple[list[Item], SeqPosition, bool]:
        entries = orch.store.load_history(key, after_seq=after.seq, limit=REPLAY_CHUNK)
        view = load_view(orch, key) if entries else None
        items = [Item(key, e, view) for e in entries]
        last = SeqPosition(items[-1].seq) if items else after
        return items, last, len(entries) == REPLAY_CHUNK

    return replay


def scope_of(tenant: str, saga_id: str | None = None) -> str:
    return scoped_key(tenant, saga_id or "")
