"""SSE over a sharded folder written by two processes (``serve --workers``): this one owns shards
{0, 2} and serves the gateway, a second process (``WORKER``) owns {1, 3} and writes sagas there.
The global stream's ids are feed vectors; both streams get the other process's commits live
(FeedTail polls), resume after a Last-Event-ID without loss or repeats, and refuse a pruned (410)
or malformed (422) one."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from saga_journey.http.app import GATEWAY
from saga_journey.http.events import FeedPosition, FeedTail, Item, Subscriber
from saga_journey.persistence.shard_map import decode_feed_id, saga_shard
from saga_journey.runtime import SagaOrchestrator
from saga_journey.runtime.journeys import TEMPLATES

from .conftest import Calls, auth
from .test_events import ADMIN, COMPLETE, WAIT, _advance, _setup, _start, read_events

SHARDS = 4
OURS = frozenset({0, 2})
THEIRS = frozenset({1, 3})

# The second worker: opens the folder owning {1, 3}, then runs one command per stdin line
# (start ID / advance ID / prune KEEP) and answers "ok" once it committed.
WORKER = r"""
import sys, time
from saga_journey.persistence.store import PruneWrite
from saga_journey.runtime import SagaOrchestrator
from saga_journey.runtime.journeys import TEMPLATES

handlers = {h: lambda ctx: None for steps in TEMPLATES.values() for _, h in steps}
orch = SagaOrchestrator.open(sys.argv[1], handlers=handlers, owned_shards=frozenset({1, 3}))
UC = {"tenant_id": "acme", "user_id": "u1"}
print("ready", flush=True)
for line in sys.stdin:
    cmd, arg = line.split()
    if cmd == "start":
        orch.execute_saga_journey_sync("orders", "u1", {}, UC, saga_id=arg)
    elif cmd == "advance":
        orch.advance_saga_step_sync(arg, None, "u1", {"status": "complete"}, UC)
    elif cmd == "prune":
        orch.store.write([PruneWrite(time.time(), None, 10, feed_keep=int(arg), feed_budget=10_000)])
    print("ok", cmd, arg, flush=True)
orch.close()
"""


class Worker:
    """The second process: ``await worker.do("start", id)`` returns once it committed."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def line(self) -> str:
        assert self.proc.stdout is not None
        text = (await asyncio.wait_for(self.proc.stdout.readline(), WAIT)).decode().strip()
        assert text, "the worker process ended"
        return text

    async def do(self, cmd: str, arg: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{cmd} {arg}\n".encode())
        await self.proc.stdin.drain()
        assert await self.line() == f"ok {cmd} {arg}"


def ids_in(shards: frozenset[int], prefix: str, n: int = 2) -> list[str]:
    """``n`` saga ids of tenant acme, one per shard of ``shards`` in turn."""
    wanted = sorted(shards) * n
    out: list[str] = []
    i = 0
    while len(out) < n:
        candidate = f"{prefix}-{i}"
        if saga_shard("acme", candidate, SHARDS) == wanted[len(out)]:
            out.append(candidate)
        i += 1
    return out


@pytest.fixture
async def orch(tmp_path: Path, calls: Calls) -> AsyncIterator[SagaOrchestrator]:
    """Overrides conftest's: the gateway's orchestrator owns OURS of a sharded folder."""
    handlers = {h: calls.handler(h) for steps in TEMPLATES.values() for _, h in steps}
    o = SagaOrchestrator.open(str(tmp_path / "data"), handlers=handlers, shards=SHARDS, owned_shards=OURS)
    yield o
    await asyncio.get_running_loop().run_in_executor(None, o.close)


@pytest.fixture
async def worker(client, tmp_path: Path) -> AsyncIterator[Worker]:
    await _setup(client)  # the journey, in the catalog (written by the owner of shard 0: this process)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WORKER, str(tmp_path / "data"),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    w = Worker(proc)
    try:
        assert await w.line() == "ready"
        yield w
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), WAIT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0


async def next_events(resp: Any, n: int) -> list[dict[str, Any]]:
    """``read_events`` bounded as a whole (each ``: ping`` would restart its per-line timeout)."""
    return await asyncio.wait_for(read_events(resp, n), WAIT)


def pairs(got: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(e["data"]["saga_id"], e["data"]["seq"]) for e in got]


def check_order(got: list[dict[str, Any]], tenant: str = "acme") -> None:
    """Per shard, positions strictly increase (each event once); per saga, seqs are in order."""
    last: dict[int, int] = {}
    seqs: dict[str, int] = {}
    for e in got:
        vector = decode_feed_id(e["id"], SHARDS)
        shard = saga_shard(tenant, e["data"]["saga_id"], SHARDS)
        assert vector[shard] > last.get(shard, 0), got
        last[shard] = vector[shard]
        assert e["data"]["seq"] == seqs.get(e["data"]["saga_id"], 0) + 1, got
        seqs[e["data"]["saga_id"]] = e["data"]["seq"]


async def test_the_global_stream_gets_the_other_process_commits_live_and_resumes_exactly_once(client, worker):
    r1, r3 = ids_in(THEIRS, "remote")
    l0, l2 = ids_in(OURS, "local")
    resp = await client.get("/v1/events", headers=ADMIN)  # from now
    assert resp.status == 200
    await worker.do("start", r1)
    got = await next_events(resp, 1)  # no commit here: the other process's come through the poll
    await _start(client, l0)
    await worker.do("start", r3)
    got += await next_events(resp, 2)
    assert sorted(pairs(got)) == sorted([(r1, 1), (l0, 1), (r3, 1)])
    assert all(len(decode_feed_id(e["id"], SHARDS)) == SHARDS for e in got)
    resp.close()  # mid-stream: the third event is not acknowledged by the id we resume from
    got = got[:2]
    await worker.do("advance", r1)
    await worker.do("advance", r3)
    await _advance(client, l0)
    await _start(client, l2)
    resp = await client.get("/v1/events", headers={**ADMIN, "Last-Event-ID": got[-1]["id"]})
    assert resp.status == 200
    got += await next_events(resp, 5)  # the third, then the four written while away
    await worker.do("advance", r1)  # live again, after the replay
    await _advance(client, l2)
    got += await next_events(resp, 2)
    await worker.do("advance", r3)
    got += await next_events(resp, 1)
    resp.close()
    expected = [(r1, 1), (l0, 1), (r3, 1), (r1, 2), (r3, 2), (l0, 2), (l2, 1), (r1, 3), (l2, 2), (r3, 3)]
    assert sorted(pairs(got)) == sorted(expected)  # every event, once
    check_order(got)


async def test_the_per_saga_stream_of_a_saga_another_process_owns(client, worker):
    (saga,) = ids_in(THEIRS, "theirs", 1)
    await worker.do("start", saga)
    await worker.do("advance", saga)
    resp = await client.get(f"/v1/sagas/{saga}/events", headers=ADMIN)
    assert resp.status == 200
    assert [e["id"] for e in await next_events(resp, 2)] == ["1", "2"]  # replayed from its history
    await worker.do("advance", saga)
    live = await next_events(resp, 1)
    assert live[0]["id"] == "3" and live[0]["data"]["saga"]["saga_id"] == saga
    resp.close()
    await worker.do("advance", saga)
    resp = await client.get(f"/v1/sagas/{saga}/events", headers={**ADMIN, "Last-Event-ID": "2"})
    assert [e["id"] for e in await next_events(resp, 2)] == ["3", "4"]
    resp.close()


async def test_resuming_below_a_shard_floor_is_410_and_a_bad_vector_is_422(client, worker):
    for saga in ids_in(THEIRS, "p", 4):
        await worker.do("start", saga)
    now = client.app[GATEWAY].orch.store.feed_vector_end()
    await worker.do("prune", "1")  # each of their shards keeps its newest feed entry
    r = await client.get("/v1/events", headers={**ADMIN, "Last-Event-ID": "0.0.0.0"})
    assert r.status == 410
    body = await r.json()
    assert body["code"] == "events_pruned" and decode_feed_id(body["floor"], SHARDS)[1] == now[1] - 1
    r = await client.get("/v1/events", headers={**ADMIN, "Last-Event-ID": ".".join(map(str, now))})
    assert r.status == 200  # at the end: resumable
    r.close()
    for bad in ("5", "1.2.3", "1.2.3.4.5", "a.b.c.d", "1.-2.3.4", "1..3.4"):
        r = await client.get(f"/v1/events?last_event_id={bad}", headers=ADMIN)
        assert r.status == 422, bad
        assert (await r.json())["code"] == "invalid_input"


def test_a_stream_position_never_goes_back_in_any_shard():
    """A replay may have read a shard further than the tail that later offers live items: an
    item is new only by its own shard's part, and the id sent merges the two (no part goes back,
    so resuming from it repeats nothing)."""
    replayed = FeedPosition((5, 3, 0, 9))
    stale = Item("acme/a", {"seq": 1}, None, (5, 3, 0, 2), shard=1)  # shard 1 at 3: replayed already
    fresh = Item("acme/b", {"seq": 1}, None, (7, 1, 1, 2), shard=2)
    assert not replayed.after(stale) and replayed.after(fresh)
    sent = replayed.then(fresh)
    assert sent.vector == (7, 3, 1, 9) and sent.ident() == b"7.3.1.9"
    assert not sent.after(fresh)


async def test_the_tail_polls_only_while_it_has_subscribers(client, tmp_path: Path):
    tail = client.app[GATEWAY].tail
    sub = Subscriber("acme/", lambda item: True)
    tail.subscribe(sub)
    poller = tail._poller
    assert poller is not None and not poller.done()
    tail.unsubscribe(sub)
    await asyncio.wait_for(poller, WAIT)  # ends at its next turn
    one = SagaOrchestrator.open(str(tmp_path / "one"))  # the one-environment layout: no poll at all
    try:
        plain = FeedTail(one)
        plain.start()
        plain.subscribe(Subscriber("acme/", lambda item: True))
        assert plain._poller is None and plain.position == (0,)
        plain.close()
    finally:
        await asyncio.get_running_loop().run_in_executor(None, one.close)


async def test_serve_workers_streams_every_workers_events_and_resumes_on_any_worker(tmp_path: Path) -> None:
    """End to end: ``serve --workers 2``; a stream lands on one worker and gets both workers'
    commits; resuming (on whichever worker the connection lands) sends the rest once."""
    from .test_workers import TENANT, Served, call, worker_of

    served = await Served(tmp_path / "data", "--create", "--workers", "2", "--shards", str(SHARDS)).start()
    try:
        async with aiohttp.ClientSession(served.base) as s:
            status, journey, _ = await call(s, "POST", "/v1/journeys", {"journey_type": "order_processing", "journey_id": "orders"})
            assert status == 201, journey
            candidates = [f"w-{n}" for n in range(64)]
            ids = [sid for w in (0, 1) for sid in [c for c in candidates if worker_of(c, 2) == w][:2]]
            resp = await s.get("/v1/events")
            assert resp.status == 200
            for sid in ids:
                assert (await call(s, "POST", "/v1/sagas", {"journey_id": "orders", "saga_id": sid}))[0] == 201
                assert (await call(s, "POST", f"/v1/sagas/{sid}/advance", COMPLETE))[0] == 200
            got = await next_events(resp, 8)
            resp.close()
            got = got[:6]
            for sid in ids:
                assert (await call(s, "POST", f"/v1/sagas/{sid}/advance", COMPLETE))[0] == 200
            resp = await s.get("/v1/events", headers={"Last-Event-ID": got[-1]["id"]})
            assert resp.status == 200
            got += await next_events(resp, 6)
            resp.close()
        assert sorted(pairs(got)) == sorted((sid, seq) for sid in ids for seq in (1, 2, 3))
        check_order(got, TENANT)
    finally:
        assert await served.stop() == 0
